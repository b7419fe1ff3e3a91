"""LR synthesis, augmentation and query sampling on the training device, batched: with `lr_on_device` the
wrapper serves the uint8 HR crop (padded) and the sample's random draws, in the CPU path's order;
`finish_batch` makes the LR (Pillow's bicubic bit for bit), flips and gathers the sampled pixels on the
device: the batch equals the CPU path's (a test compares them)."""
import functools

import torch

from datasets.pil_resize import pil_bicubic_batch


def to_device(batch, device, inp_size=None):
    """A collated batch moved to `device`; with `inp_size`, an HR-only batch finished there."""
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return finish_batch(batch, inp_size) if inp_size else batch


def finish_batch(batch, inp_size):
    """{'hr' (B, S, S, 3) uint8, 'hr_size' (B,), 'flips' (B, 3) bool, 'keep' (B, Q)} on the device
    -> {'inp' (B, 3, inp, inp), 'coord' (B, Q, 2), 'cell' (B, Q, 2), 'gt' (B, Q, 3)}, as the CPU path."""
    hr = batch['hr'].permute(0, 3, 1, 2)
    size = batch['hr_size']
    lr = to_unit(pil_bicubic_batch(hr, torch.stack([size, size], dim=1).cpu(), (inp_size, inp_size)))
    hflip, vflip, dflip = batch['flips'].unbind(1)
    lr = flip_batch(lr, hflip, vflip, dflip)

    # sampled pixel k of the augmented S x S crop sits at (k // S, k % S); undo the augmentation
    # to find it in the stored crop: transpose first, then the column and the row flips
    keep, S = batch['keep'], size.view(-1, 1)
    r, c = keep // S, keep % S
    a = torch.where(dflip.view(-1, 1), c, r)
    b = torch.where(dflip.view(-1, 1), r, c)
    b = torch.where(vflip.view(-1, 1), S - 1 - b, b)
    a = torch.where(hflip.view(-1, 1), S - 1 - a, a)
    B, Q = keep.shape
    index = (a * hr.shape[-1] + b).unsqueeze(1).expand(B, 3, Q)
    gt = to_unit(hr.flatten(2).gather(2, index)).transpose(1, 2)

    # pixel centres as utils.coords.coord_seq computes them: (-1 + 1/S) + (2/S) * i in float32
    S_f = S.double()
    base, step = (-1 + 1 / S_f).float(), (2 / S_f).float()
    coord = torch.stack([step * r.float() + base, step * c.float() + base], dim=-1)
    cell = step.unsqueeze(-1).expand(B, Q, 2).contiguous()
    return {'inp': lr, 'coord': coord, 'cell': cell, 'gt': gt.contiguous()}


def to_unit(x):
    """uint8 -> float32 k / 255 as the CPU path divides. CUDA divides by a scalar as a product
    with its reciprocal, 1 ulp off for most k (seen on an H200), so look the values up instead."""
    return unit_table(x.device)[x.long()]


@functools.lru_cache(maxsize=None)
def unit_table(device):
    """k / 255 for k = 0..255, divided on the CPU, kept on `device` (made once, not per batch)."""
    return (torch.arange(256, dtype=torch.float32) / 255).to(device)


def flip_batch(x, hflip, vflip, dflip):
    """The official augmentation per sample of a (B, C, n, n) batch: row flip, column flip, transpose."""
    x = torch.where(hflip.view(-1, 1, 1, 1), x.flip(-2), x)
    x = torch.where(vflip.view(-1, 1, 1, 1), x.flip(-1), x)
    return torch.where(dflip.view(-1, 1, 1, 1), x.transpose(-2, -1), x)
