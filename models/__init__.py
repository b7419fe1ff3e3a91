from .models import register, make
from . import edsr, rdn, mlp, liif, metasr, lmmlp, lmliif
