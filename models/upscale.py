"""Whole-image inference in bounded memory: the output is decoded tile by tile, each tile's
encoder run on an input crop wide enough (the encoder's receptive radius plus the decoder's
reach) that its features equal those of the whole image, and each tile's queries decoded in
chunks. The result matches an untiled run up to float rounding, whatever the tile size."""
import math

import torch
import torch.nn as nn
from tqdm import tqdm

from utils.coords import coord_seq, nearest_index


def receptive_radius(module):
    """Input pixels on each side that an output pixel of `module` can depend on: the sum of the
    reach of all its convolutions (exact for a chain of convs, an upper bound otherwise)."""
    return sum(max(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
               for m in module.modules() if isinstance(m, nn.Conv2d))


def owned_range(owner, start, stop):
    """The contiguous range of output rows (or columns) whose nearest LR row lies in [start, stop)."""
    inside = ((owner >= start) & (owner < stop)).nonzero()
    return (int(inside[0]), int(inside[-1]) + 1) if len(inside) else None


def default_chunk(device):
    """Queries per decoder call: on a CPU small enough that the members' activations stay in
    cache (measured fastest on a 2-core AMD EPYC), on a GPU large enough to fill it."""
    return 2048 if torch.device(device).type == 'cpu' else 131072


@torch.no_grad()
def upscale(model, inp, size, tile=256, chunk=None, data_norm=(0.5, 0.5), progress=False, cell_scale=1.0):
    """Super-resolve `inp` ((3, h, w) or (1, 3, h, w), values in [0, 1]) to `size` = (H, W).

    tile: LR tile side; the encoder sees at most (tile + 2 * halo)^2 pixels at a time.
    chunk: queries decoded per model call (default: `default_chunk`).
    data_norm: (sub, div) applied to the input and undone on the output.
    cell_scale: the cell the decoder is told is this many output pixels wide (LTE/LMF's
    "cell clip" for scales beyond training passes max(s / 4, 1)); 1 is the true pixel size.
    Returns a (3, H, W) float tensor in [0, 1] on the input's device.
    """
    if inp.dim() not in (3, 4) or inp.shape[-3] != 3 or (inp.dim() == 4 and inp.shape[0] != 1):
        raise ValueError(f"upscale takes one RGB image, (3, h, w) or (1, 3, h, w); got {tuple(inp.shape)}")
    chunk = chunk or default_chunk(inp.device)
    if tile < 1 or chunk < 1 or min(size) < 1:
        raise ValueError(f"upscale needs a positive tile, chunk and size; got {tile}, {chunk}, {tuple(size)}")
    inp = inp.reshape(1, *inp.shape[-3:])
    h, w = inp.shape[-2:]
    H, W = size
    sub, div = data_norm
    ys, xs = coord_seq(H, device=inp.device), coord_seq(W, device=inp.device)
    owner_y, owner_x = nearest_index(ys, h), nearest_index(xs, w)
    # latents beyond a query's nearest one that the decoder reads (neighbour + 3x3 unfold;
    # more when downscaling, where a query cell spans several latents)
    reach = 2 + math.ceil(max(h / H, w / W))
    halo = receptive_radius(model.encoder) + reach
    tiles = [(r, c) for r in range(0, h, tile) for c in range(0, w, tile)]
    out = torch.empty(3, H, W, device=inp.device)
    bar = tqdm(total=H * W, unit='px', unit_scale=True, desc='upscale', disable=not progress)
    for r0, c0 in tiles:
        rows = owned_range(owner_y, r0, min(r0 + tile, h))
        cols = owned_range(owner_x, c0, min(c0 + tile, w))
        if rows is None or cols is None:
            continue
        top, left = max(r0 - halo, 0), max(c0 - halo, 0)
        crop = inp[..., top:min(r0 + tile + halo, h), left:min(c0 + tile + halo, w)]
        model.gen_feat((crop - sub) / div, window=(top, left, h, w))
        tile_y, tile_x = ys[rows[0]:rows[1]], xs[cols[0]:cols[1]]
        coord = torch.stack(torch.meshgrid(tile_y, tile_x, indexing='ij'), -1).view(1, -1, 2)
        cell = torch.tensor([2 / H * cell_scale, 2 / W * cell_scale], device=inp.device).expand_as(coord)
        pred = []
        for i in range(0, coord.shape[1], chunk):
            pred.append(model.query_rgb(coord[:, i:i + chunk], cell[:, i:i + chunk]).float())
            bar.update(pred[-1].shape[1])
        pred = (torch.cat(pred, dim=1)[0] * div + sub).clamp(0, 1)
        out[:, rows[0]:rows[1], cols[0]:cols[1]] = pred.t().reshape(3, len(tile_y), len(tile_x))
    bar.close()
    return out


def upscale_image(model, pixels, alpha, size, **kwargs):
    """`upscale` for an image of 1 (grayscale) or 3 channels and an optional alpha plane (1, h, w):
    a single plane goes through the model replicated to RGB and comes back as the mean of the three
    outputs; alpha is upscaled the same way, separately (a constant alpha stays exactly constant).
    Returns (pixels (C, H, W), alpha (1, H, W) or None), float on `pixels`' device."""
    def run(planes):
        out = upscale(model, planes.expand(3, -1, -1), size, **kwargs).float()
        return out.mean(0, keepdim=True) if planes.shape[0] == 1 else out

    if alpha is not None:
        lo, hi = alpha.min(), alpha.max()
        alpha = torch.full((1, *size), float(lo), device=alpha.device) if lo == hi else run(alpha)
    return run(pixels), alpha
