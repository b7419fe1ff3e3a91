from .models import register, make
from . import edsr, rdn, swinir, mlp, liif, metasr, lte, lmmlp, lmliif, lmlte
