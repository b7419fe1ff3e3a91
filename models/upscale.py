"""Whole-image inference in bounded memory: the output is decoded tile by tile, each tile's
encoder run on an input crop wide enough (the encoder's receptive radius plus the decoder's
reach) that its features equal those of the whole image, and each tile's queries decoded in
chunks. The result matches an untiled run up to float rounding, whatever the tile size.

A model with `query_grid(ys, xs, cell)` (LM-LIIF) is given each chunk as rows x columns of the
output grid rather than as a list of coordinates. A model whose `cmsr_active(Q, h, w)` says it
renders through CMSR (LM-LIIF with a Scale2Mod table, beyond x4) is run once on the whole image:
CMSR chooses per LR pixel the resolution at which to render and merges the levels over the
whole output grid (models/cmsr.py), so it is not tiled; its queries are still decoded in chunks,
and its memory grows with the output (coordinates, the levels' images), not with the tile."""
import math

import torch
import torch.nn as nn
from tqdm import tqdm

from utils.coords import coord_seq, make_coord, nearest_index


def receptive_radius(module):
    """Input pixels on each side that an output pixel of `module` can depend on: the sum of the
    reach of all its convolutions (exact for a chain of convs, an upper bound otherwise)."""
    return sum(max(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
               for m in module.modules() if isinstance(m, nn.Conv2d))


def owned_range(owner, start, stop):
    """The contiguous range of output rows (or columns) whose nearest LR row lies in [start, stop)."""
    inside = ((owner >= start) & (owner < stop)).nonzero()
    return (int(inside[0]), int(inside[-1]) + 1) if len(inside) else None


def default_chunk(device, model=None):
    """Queries per decoder call: on a CPU small enough that the members' activations stay in
    cache (measured fastest on a 2-core AMD EPYC), on a GPU large enough to fill it. A model
    decoding grids (`query_grid`, LM-LIIF: 16-wide activations) gets a block of several output
    rows, so that rows sharing an LR row share its modulations (32768: 1.4 s against 2.9 s
    for 2048 in an x8 decode of 180x320 on that CPU)."""
    if torch.device(device).type != 'cpu':
        return 131072
    return 32768 if hasattr(model, 'query_grid') else 2048


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
    if tile < 1 or (chunk is not None and chunk < 1) or min(size) < 1:
        raise ValueError(f"upscale needs a positive tile, chunk and size; got {tile}, {chunk}, {tuple(size)}")
    inp = inp.reshape(1, *inp.shape[-3:])
    h, w = inp.shape[-2:]
    H, W = size
    sub, div = data_norm
    cmsr_active = getattr(model, 'cmsr_active', None)
    cell = torch.tensor([2 / H * cell_scale, 2 / W * cell_scale], device=inp.device)  # every query's
    if cmsr_active is not None and cmsr_active(H * W, h, w):  # CMSR decodes scattered points: list chunks
        return whole_image(model, inp, size, chunk or default_chunk(inp.device), data_norm, progress, cell)
    chunk = chunk or default_chunk(inp.device, model)
    query_grid = getattr(model, 'query_grid', None)
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
        if query_grid is not None:
            n_cols = min(len(tile_x), chunk)
            n_rows = max(1, chunk // n_cols)
            for i in range(0, len(tile_y), n_rows):
                for j in range(0, len(tile_x), n_cols):
                    pred = query_grid(tile_y[i:i + n_rows], tile_x[j:j + n_cols], cell).float()
                    r, c = rows[0] + i, cols[0] + j
                    out[:, r:r + pred.shape[0], c:c + pred.shape[1]] = (pred * div + sub).clamp(0, 1).permute(2, 0, 1)
                    bar.update(pred.shape[0] * pred.shape[1])
            continue
        coord = torch.stack(torch.meshgrid(tile_y, tile_x, indexing='ij'), -1).view(1, -1, 2)
        cells = cell.expand_as(coord)
        pred = []
        for i in range(0, coord.shape[1], chunk):
            pred.append(model.query_rgb(coord[:, i:i + chunk], cells[:, i:i + chunk]).float())
            bar.update(pred[-1].shape[1])
        pred = (torch.cat(pred, dim=1)[0] * div + sub).clamp(0, 1)
        out[:, rows[0]:rows[1], cols[0]:cols[1]] = pred.t().reshape(3, len(tile_y), len(tile_x))
    bar.close()
    return out


def whole_image(model, inp, size, chunk, data_norm, progress, cell):
    """`upscale` in one model call on the whole image (for CMSR), its queries in chunks;
    `cell` (2,) is every query's."""
    H, W = size
    sub, div = data_norm
    coord = make_coord((H, W), device=inp.device).unsqueeze(0)
    cell = cell.expand_as(coord)
    with tqdm(total=H * W, unit='px', unit_scale=True, desc='upscale', disable=not progress) as bar:
        pred = model((inp - sub) / div, coord, cell, bsize=chunk).float()
        bar.update(H * W)
    return (pred[0] * div + sub).clamp(0, 1).t().reshape(3, H, W)


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
