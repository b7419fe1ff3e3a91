from .datasets import register, make, DataError
from . import image_folder, wrappers
