"""Whole-image inference in bounded memory, through the model contract (models/base.py) only: the
output is decoded tile by tile, each tile's encoder run on a crop wide enough (the model's
receptive radius plus the decoder's reach, its corner on the encoder's window grid) that its
features equal the whole image's, and decoded in blocks of rows: the untiled result, whatever the
tile. Window encoders (SwinIR) get the official evaluation's mirror padding first, the output grid
keeping its pixel centres in the padded frame. A model that must see the whole image is encoded
whole; one that must decode it in one piece (CMSR) is also decoded in one call."""
import math

import torch
from tqdm import tqdm

from utils.coords import coord_seq, nearest_index
from utils.data_norm import normalise


def owned_range(owner, start, stop):
    """The contiguous range of output rows (or columns) whose nearest LR row lies in [start, stop)."""
    inside = ((owner >= start) & (owner < stop)).nonzero()
    return (int(inside[0]), int(inside[-1]) + 1) if len(inside) else None


def default_chunk(device, model):
    """Queries per decoder call: on a CPU the model's `cpu_chunk` (small enough that the
    members' activations stay in cache; larger for the 16-wide LM decoders, whose output rows
    share modulations), on a GPU large enough to fill it."""
    return model.cpu_chunk if torch.device(device).type == 'cpu' else 131072


def mirror_pad(x, window):
    """The official evaluation's padding for window encoders (SwinIR): the image continued by its
    mirror image (edge repeated) to (n // window + 1) * window rows and columns; an image under
    half a window is mirrored again until it fills them (the official code fails there)."""
    if window == 1:
        return x
    H, W = ((n // window + 1) * window for n in x.shape[-2:])
    while x.shape[-2] < H:
        x = torch.cat([x, x.flip(-2)], dim=-2)
    while x.shape[-1] < W:
        x = torch.cat([x, x.flip(-1)], dim=-1)
    return x[..., :H, :W]


def output_axis(n_out, n_in, n_padded):
    """The centres of n_out output pixels over an axis of n_in LR pixels, in the frame of the
    padded axis (n_padded pixels). When the padded output grid has whole pixels (integer
    scales, as the official evaluation), that grid: the first n_out centres are the output's."""
    if n_padded == n_in:
        return coord_seq(n_out)
    if n_out * n_padded % n_in == 0:
        return coord_seq(n_out * n_padded // n_in)
    return (coord_seq(n_out) + 1) * (n_in / n_padded) - 1


@torch.no_grad()
def upscale(model, inp, size, tile=256, chunk=None, data_norm=(0.5, 0.5), progress=False, cell_clip=None):
    """Super-resolve `inp` ((3, h, w) or (1, 3, h, w), values in [0, 1]) to `size` = (H, W).

    tile: LR tile side (the encoder sees at most (tile + 2 * halo)^2 pixels); chunk: queries per
    model call (default: `default_chunk`); data_norm: (sub, div) applied to the input and undone
    on the output (numbers or per channel); cell_clip: beyond this scale the decoder gets the cell
    of this scale (LTE's and LMF's evaluation, with 4); None: the true pixel size.
    Returns a (3, H, W) float tensor in [0, 1] on the input's device.
    """
    if inp.dim() not in (3, 4) or inp.shape[-3] != 3 or (inp.dim() == 4 and inp.shape[0] != 1):
        raise ValueError(f"upscale takes one RGB image, (3, h, w) or (1, 3, h, w); got {tuple(inp.shape)}")
    if tile < 1 or (chunk is not None and chunk < 1) or min(size) < 1:
        raise ValueError(f"upscale needs a positive tile, chunk and size; got {tile}, {chunk}, {tuple(size)}")
    H, W = size
    sub, div = (torch.as_tensor(v, dtype=torch.float32, device=inp.device).view(-1) for v in data_norm)
    encoder = model.encoder
    h, w = inp.shape[-2:]
    x = mirror_pad(normalise(inp.reshape(1, 3, h, w), data_norm), encoder.window)
    hp, wp = x.shape[-2:]
    ys, xs = output_axis(H, h, hp).to(inp.device), output_axis(W, w, wp).to(inp.device)
    # the output pixel's size in the padded frame, widened beyond the cell clip
    cell = torch.tensor([2 * h / (H * hp), 2 * w / (W * wp)], device=inp.device)
    cell = cell * max(max(H / h, W / w) / cell_clip, 1) if cell_clip else cell
    chunk = chunk or default_chunk(inp.device, model)
    whole = model.decodes_whole(hp, wp, len(ys), len(xs))
    if not whole:  # the padded part of the output is not needed
        ys, xs = ys[:H], xs[:W]
    if whole or model.receptive_radius is None:
        tile = max(hp, wp)
    block = len(ys) * len(xs) if whole else chunk  # queries per query_grid call
    # latents beyond a query's nearest one that the decoder reads (more when downscaling, where a
    # query cell spans several latents), plus how far the encoder's features see
    halo = (model.receptive_radius or 0) + model.reach + math.ceil(max(hp / len(ys), wp / len(xs)))
    owner_y, owner_x = nearest_index(ys, hp), nearest_index(xs, wp)
    out = torch.empty(3, len(ys), len(xs), device=inp.device)
    bar = tqdm(total=len(ys) * len(xs), unit='px', unit_scale=True, desc='upscale', disable=not progress)
    for r0 in range(0, hp, tile):
        for c0 in range(0, wp, tile):
            rows = owned_range(owner_y, r0, min(r0 + tile, hp))
            cols = owned_range(owner_x, c0, min(c0 + tile, wp))
            if rows is None or cols is None:
                continue
            top = max(r0 - halo, 0) // encoder.window * encoder.window
            left = max(c0 - halo, 0) // encoder.window * encoder.window
            bottom, right = min(r0 + tile + halo, hp), min(c0 + tile + halo, wp)
            whole_crop = (top, left, bottom, right) == (0, 0, hp, wp)  # then the features' own grid
            model.gen_feat(x[..., top:bottom, left:right], crop=None if whole_crop else (top, left, hp, wp))
            n_cols = min(cols[1] - cols[0], block)
            n_rows = max(1, block // n_cols)
            for r in range(rows[0], rows[1], n_rows):
                for c in range(cols[0], cols[1], n_cols):
                    pred = model.query_grid(ys[r:min(r + n_rows, rows[1])], xs[c:min(c + n_cols, cols[1])], cell,
                                            chunk=chunk).float()
                    out[:, r:r + pred.shape[0], c:c + pred.shape[1]] = (pred * div + sub).clamp(0, 1).permute(2, 0, 1)
                    bar.update(pred.shape[0] * pred.shape[1])
    bar.close()
    return out[:, :H, :W].contiguous()


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
