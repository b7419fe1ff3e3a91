"""Folders of images; items are RGB uint8 arrays (H, W, 3), so wrappers convert only their crop to float.
cache (README.md, Data): 'none', 'in_memory' or 'decoded' (official alias 'bin'), whose .npy files are
rewritten when the image is newer. Grayscale becomes RGB, alpha is dropped, EXIF orientation is applied."""
import json
import os

import numpy as np
from torch.utils.data import Dataset
from tqdm import tqdm

from utils.errors import message
from utils.files import atomic_write
from utils.image import ImageError, image_files, read_image
from . import catalog
from .datasets import DataError, register

CACHE_MODES = ('none', 'in_memory', 'decoded', 'bin')
PROGRESS_FROM = 100  # images; fewer load in a few seconds


def read_rgb_uint8(path):
    """The image file at `path` as an RGB uint8 array (H, W, 3)."""
    try:
        pixels = read_image(path).pixels
    except ImageError as e:
        raise DataError(message(e)) from None
    return (pixels.expand(3, -1, -1) * 255).round_().byte().permute(1, 2, 0).contiguous().numpy()  # gray -> RGB


def list_images(root_path, split_file=None, split_key=None):
    """Sorted image paths in a folder (or a list of folders), or those a split file names."""
    folders = [root_path] if isinstance(root_path, str) else list(root_path)
    paths = []
    for folder in folders:
        if not os.path.isdir(folder):
            hint = catalog.not_shipped(folder) or "set root_path in the config's dataset args"
            raise DataError(f"{folder}: no such image folder ({hint})")
        if split_file is None:
            paths += image_files(folder)
        else:
            with open(split_file) as f:
                paths += [os.path.join(folder, name) for name in json.load(f)[split_key]]
    if not paths:
        raise DataError(f"{', '.join(folders)}: no image files found")
    return paths


@register('image-folder')
class ImageFolder(Dataset):
    def __init__(self, root_path, split_file=None, split_key=None, first_k=None, repeat=1, cache='none'):
        if cache not in CACHE_MODES:
            raise DataError(f"image-folder {root_path}: cache {cache!r} is not one of {', '.join(CACHE_MODES)}")
        self.files = list_images(root_path, split_file, split_key)[:first_k]
        self.repeat = repeat
        self.cache = 'decoded' if cache == 'bin' else cache
        if self.cache == 'in_memory':
            self.images = [read_rgb_uint8(p) for p in progress(self.files, 'decoding')]
        elif self.cache == 'decoded':
            self.npy_files = [decoded_cache(p) for p in progress(self.files, 'checking the decoded cache of')]

    def __len__(self):
        return len(self.files) * self.repeat

    def describe(self, idx):
        return self.files[idx % len(self.files)]

    def name(self, idx):
        return os.path.splitext(os.path.basename(self.describe(idx)))[0]

    def __getitem__(self, idx):
        i = idx % len(self.files)
        if self.cache == 'in_memory':
            return self.images[i]
        if self.cache == 'decoded':
            return np.load(self.npy_files[i], mmap_mode='r')
        return read_rgb_uint8(self.files[i])


def progress(files, what):
    """A progress bar over `files` when there are enough of them for it to matter."""
    folders = sorted({os.path.dirname(f) for f in files})
    where = folders[0] if len(folders) == 1 else f"{len(folders)} folders"
    return tqdm(files, desc=f"{what} {where}", unit='img', leave=False, disable=len(files) < PROGRESS_FROM)


def decoded_cache(path):
    """The .npy cache file of the image at `path`, written (atomically) when missing or stale."""
    folder, name = os.path.split(os.path.abspath(path))
    cache_dir = os.path.join(os.path.dirname(folder), '_cache_' + os.path.basename(folder))
    npy = os.path.join(cache_dir, name + '.npy')
    if not os.path.exists(npy) or os.path.getmtime(npy) < os.path.getmtime(path):
        image = read_rgb_uint8(path)
        try:
            os.makedirs(cache_dir, exist_ok=True)
            atomic_write(npy, lambda f: np.save(f, image))
        except OSError as e:
            raise DataError(f"{npy}: cannot write the decoded cache ({e.strerror}); use cache: in_memory or none") from None
    return npy


@register('paired-image-folders')
class PairedImageFolders(Dataset):
    """Items are (image from root_path_1, image from root_path_2), paired by sorted order."""

    def __init__(self, root_path_1, root_path_2, **kwargs):
        self.dataset_1 = ImageFolder(root_path_1, **kwargs)
        self.dataset_2 = ImageFolder(root_path_2, **kwargs)
        if len(self.dataset_1) != len(self.dataset_2):
            raise DataError(f"paired-image-folders: {root_path_1} has {len(self.dataset_1.files)} images "
                            f"but {root_path_2} has {len(self.dataset_2.files)}")

    def __len__(self):
        return len(self.dataset_1)

    def describe(self, idx):
        return f"{self.dataset_1.describe(idx)} / {self.dataset_2.describe(idx)}"

    def name(self, idx):
        return self.dataset_2.name(idx)

    def __getitem__(self, idx):
        return self.dataset_1[idx], self.dataset_2[idx]
