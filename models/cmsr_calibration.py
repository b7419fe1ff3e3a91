"""CMSR calibration: the official LMF algorithm (init_cmsr.py with the models'
update_scale2mean) that makes a Scale2Mod table for target scale S from LR images and a trained
latent-modulated model, without ground truth (the reference is the model's own render at S);
and a diagnostic of the premise behind it (modulation strength tracks local detail).

Per image (LR h x w; the output grid is its H x W pixel centres, H = round(h S)):
  - cell (2/H, 2/W) * max(S / 4, 1) (the training scales' cell clip); the modulations are made
    once with it, and give the reference render at S and each output pixel's strength (mean
    |shift| of its nearest LR pixel);
  - candidate values v = 0, 0.01, ..., 1 (LM-LTE 0 .. 0.5, steps of 0.005), one list per image;
    the bin of v holds the output pixels whose strength is within 0.001 of v;
  - for each decode scale d of the table below S' = sqrt(H W / (h w)), ascending: render the
    pixel centres of an int(h d) x int(w d) grid with the SAME modulations (the level's own
    cell, unclipped, only in the render), resample it bilinearly to the output grid, and walk
    the remaining candidates in order: an empty bin is skipped, a bin whose MSE against the
    reference (over its pixels and 3 channels, normalised space) is at most the threshold is
    accepted and leaves the list, the first failing bin stops the walk. The entry for d becomes
    min(entry, the last accepted value), where the walk starts from the current entry (so an
    image whose first tested bin fails leaves it unchanged); every smaller d above it is lowered
    to it;
  - candidates left at the end: the entry for S becomes the largest of them (normally 1).
The table carries from image to image, so each entry is the least any image set it to.
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from utils.coords import coord_seq
from .base import grid_coord
from .cmsr import decode_grid, decode_levels, level_mask, resample

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


# --- the diagnostic: does the strength follow local detail? -----------------------------------

def ranks(x):
    """Ranks 0..n-1 of a 1-D tensor (ties broken by position)."""
    out = torch.empty_like(x, dtype=torch.float64)
    out[x.argsort()] = torch.arange(len(x), dtype=torch.float64, device=x.device)
    return out


def spearman(a, b):
    """Spearman's rank correlation of two equally long 1-D tensors."""
    ra, rb = ranks(a.flatten()), ranks(b.flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def local_std(grey):
    """The standard deviation of each pixel's 3x3 neighbourhood of a (h, w) image (edges replicated)."""
    patches = F.unfold(F.pad(grey[None, None], (1, 1, 1, 1), mode='replicate'), 3)
    return patches.std(1, unbiased=False).view(grey.shape)


@torch.no_grad()
def flat_strengths(model, cell, levels=33, size=8):
    """The strength the model gives flat grey patches of `levels` grey values 0..1 (raw, before
    normalisation), at a patch's centre pixel, with the hypernet cell `cell` (2,): (levels,)."""
    grey = torch.linspace(0, 1, levels, device=cell.device)
    model.gen_feat(((grey.view(-1, 1, 1, 1) - 0.5) / 0.5).expand(levels, 3, size, size))
    return model.shift_strength(cell.view(1, 1, 2).expand(levels, 1, 2))[:, 0, size // 2, size // 2]


def premise(model, lr, strength, cell):
    """Spearman correlations, over an image's LR pixels, of the modulation strength (h, w) with
    the LR's local 3x3 standard deviation (of the grey level, mean RGB in [0, 1]) and with the
    strength a flat patch of the same grey gets: (with detail, with grey)."""
    grey = lr.mean(0)
    flat = flat_strengths(model, cell)
    pos = grey.flatten() * (len(flat) - 1)  # linear interpolation between the grey levels
    low = pos.floor().long().clamp(max=len(flat) - 2)
    same_grey = torch.lerp(flat[low], flat[low + 1], (pos - low).to(flat.dtype))
    return spearman(strength, local_std(grey)), spearman(strength, same_grey)


def level_shares(tables, scale, strength):
    """The share of the output pixels each level of the table for `scale` takes for an image
    whose LR pixels have these strengths (h, w): {decode scale: share} (every pixel of an LR
    pixel goes to the same level, so LR pixels count alike)."""
    levels, thresholds = decode_levels(tables, scale)
    return {d: float(level_mask(strength, thresholds, i, len(levels)).float().mean()) for i, d in enumerate(levels)}
