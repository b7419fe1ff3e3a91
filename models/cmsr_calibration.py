"""CMSR calibration: the official LMF algorithm (init_cmsr.py and the models' update_scale2mean),
which makes a Scale2Mod table for target scale S from LR images and a trained latent-modulated
model, without ground truth (the reference is the model's own render at S). Per image (LR h x w,
output grid H x W = round(h S) x round(w S)):
  - the modulations, made once with the cell (2/H, 2/W) * max(S / 4, 1), give the reference
    render at S and each output pixel's strength (mean |shift| of its nearest LR pixel);
  - candidate values v = 0, 0.01, ..., 1 (LM-LTE, LM-CiaoSR: 0 .. 0.5 by 0.005), one list per
    image; v's bin holds the output pixels whose strength is within 0.001 of v;
  - each decode scale d of the table below sqrt(H W / (h w)), ascending, renders the pixel
    centres of an int(h d) x int(w d) grid with the same modulations (its own cell, unclipped,
    in the render only), resampled bilinearly to the output grid; the `walk` then updates the
    entry for d and lowers every smaller d's above it;
  - candidates left at the end: the entry for S becomes the largest of them (normally 1).
The table carries from image to image: each entry is the least any image set it to.
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from utils.coords import coord_seq
from .base import grid_coord
from .cmsr import decode_grid, resample

BIN = 0.001  # a candidate's bin: the output pixels whose strength lies within this of it


def candidates(top):
    """The values the walk tries: 0 .. top in 100 steps."""
    return [i * top / 100 for i in range(101)]


@contextmanager
def calibrating(model):
    """The model renders as the official calibration does (LM-CiaoSR: without the LR skip)."""
    model.calibrating = True
    try:
        yield
    finally:
        model.calibrating = False


@torch.no_grad()
def calibrate_image(model, inp, scale, mse_threshold, table, chunk=32768):
    """One image's step of the official calibration (see the module doc): updates `table`
    {decode scale: threshold} for target `scale` with the LR image `inp` (1, 3, h, w,
    normalised). Returns what it saw: {'tested': {d: [(v, pixels, mse, accepted), ...]},
    'strength': the LR pixels' strengths (h, w), 'cell': the hypernet cell}."""
    with calibrating(model):
        return calibration_step(model, inp, scale, mse_threshold, table, chunk)


def calibration_step(model, inp, scale, mse_threshold, table, chunk):
    model.gen_feat(inp)
    h, w = model.feat.shape[-2:]
    H, W = round(h * scale), round(w * scale)
    ys, xs = coord_seq(H, device=inp.device), coord_seq(W, device=inp.device)
    cell = torch.tensor([2 / H, 2 / W], device=inp.device) * max(scale / model.cell_clip, 1)
    hyper_cell = cell.view(1, 1, 2)
    reference = decode_grid(model, ys, xs, cell, chunk, hyper_cell)
    strength = model.shift_strength(hyper_cell)
    coord = grid_coord(ys, xs).view(H, W, 2)
    pixel_strength = F.grid_sample(strength, coord.flip(-1).unsqueeze(0), mode='nearest',
                                   align_corners=False).flatten().float()
    values = candidates(model.calibration_top)
    target = math.sqrt(H * W / (h * w))
    tested = {}
    for d in sorted(k for k in table if k < target):
        qh, qw = int(h * d), int(w * d)
        level_cell = torch.tensor([2 / qh, 2 / qw], device=inp.device)
        level = decode_grid(model, coord_seq(qh, device=inp.device), coord_seq(qw, device=inp.device), level_cell,
                            chunk, hyper_cell)
        err = (resample(level.unsqueeze(0), coord)[0] - reference).square().mean(0).flatten()
        accepted, tested[d] = walk(err, pixel_strength, values, table[d], mse_threshold)
        lower_to(table, d, min(table[d], accepted))
    if values:
        lower_to(table, scale, values[-1])
    return {'tested': tested, 'strength': strength[0, 0], 'cell': cell}


def walk(err, strength, values, entry, mse_threshold):
    """The official walk for one decode scale: over `values` in order, skip a value whose bin
    (output pixels with |strength - v| <= BIN) is empty, accept (and remove from `values`) one
    whose bin's mean error `err` is within `mse_threshold`, stop at the first that is not.
    Returns (the last accepted value, else `entry`; [(v, pixels, mse, accepted), ...])."""
    tested = []
    for v in list(values):
        inside = (strength - v).abs() <= BIN
        if not inside.any():
            continue
        mse = err[inside].mean().item()
        tested.append((v, int(inside.sum()), mse, mse <= mse_threshold))
        if mse > mse_threshold:
            break
        entry = v
        values.remove(v)
    return entry, tested


def lower_to(table, d, value):
    """Set the entry for d and lower every smaller decode scale's above it."""
    table[d] = value
    for k in table:
        if k < d:
            table[k] = min(table[k], value)
