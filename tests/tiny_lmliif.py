"""A tiny random LM-LIIF and small synthetic images, for the tests of CMSR, its CLIs and
whole-image inference (tests/test_cmsr_*.py, test_lmliif_*.py)."""
import os

import numpy as np
import torch
from PIL import Image

from models.checkpoint import save_checkpoint
from tiny_models import spec, tiny


def tiny_lmliif(seed=0):
    return tiny('lmliif', seed=seed).eval()


def write_checkpoint(path, seed=0):
    save_checkpoint(str(path), spec('lmliif'), tiny('lmliif', seed=seed))
    return str(path)


def write_images(folder, n=3, size=(72, 96), seed=0):
    """n RGB PNGs of `size` (h, w): waves of several frequencies and noise, some detail everywhere."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[0], 0:size[1]]
    for i in range(n):
        wave = np.sin(x / (2 + i) + y / 5.0)[..., None] * np.array([100, 50, -70])
        img = (127 + wave + rng.normal(0, 20, (*size, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f'{i}.png'))
    return str(folder)


def quartile_table(model, inp, cell):
    """A table whose thresholds are the quartiles of this image's strengths (as the official
    dump's synthetic table), so that every decode level gets pixels: x6 -> levels 1, 2, 4, 6."""
    model.gen_feat(inp)
    strength = model.shift_strength(cell.view(1, 1, 2)).flatten()
    q = [round(v, 4) for v in strength.quantile(torch.tensor([0.25, 0.5, 0.75])).tolist()]
    return {6: {1: q[0], 2: q[1], 4: q[2], 6: 1}, 12: {1: q[0], 2: q[1], 4: q[2], 6: 1, 12: 1}}
