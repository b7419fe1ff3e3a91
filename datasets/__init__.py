from .datasets import register, make, ArgError, DataError
from . import image_folder, wrappers
