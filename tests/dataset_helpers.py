"""Synthetic noise images, folders of them and the data sets datasets/ makes from them, for the
datasets/ tests; and what a wrapper's sample says of its HR crop."""
import os

import numpy as np
import torch
from PIL import Image

import datasets

CPU = torch.device('cpu')


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_png(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)
    return str(path)


def folder(path, images):
    """Write {name: uint8 array} as images into `path`; returns the folder as a str."""
    for name, arr in images.items():
        write_png(os.path.join(path, name), arr)
    return str(path)


def image_folder(root, **args):
    return datasets.make({'name': 'image-folder', 'args': {'root_path': root, **args}})


def wrapper(name, inner, **args):
    return datasets.make({'name': name, 'args': args}, {'dataset': inner})


def hr_shape(sample):
    """(H, W) of the HR crop a sample's cell belongs to."""
    c = sample['cell'][0].double()
    H, W = 2 / c[0].item(), 2 / c[1].item()
    assert abs(H - round(H)) < 1e-3 and abs(W - round(W)) < 1e-3
    return round(H), round(W)


def gt_image(sample, H, W):
    """The gt of a sample with all pixels, as (3, H, W)."""
    return sample['gt'].reshape(H, W, 3).permute(2, 0, 1)


def same_sample(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
