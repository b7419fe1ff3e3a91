from .models import register, make
from . import edsr, rdn, rcan, swinir, mlp, liif, metasr, lte, lmmlp, lmliif, lmlte, ciaosr, lmciaosr
