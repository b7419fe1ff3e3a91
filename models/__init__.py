from .models import register, make, models
from . import edsr, rdn, mlp, liif, metasr
