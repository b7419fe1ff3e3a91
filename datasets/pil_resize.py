"""Pillow's bicubic `Image.resize` of uint8 images, reproduced bit for bit in torch.

So that LR inputs made on the training device (batched) equal the CPU path's (wrappers.py,
`resize_bicubic`) pixel for pixel, for any channels and device, in integer arithmetic:
`pil_bicubic` for equal-size images, `pil_bicubic_batch` for a padded batch of crops.

Pillow's algorithm for 8-bit images (its ImagingResample; every point below was checked
against the installed Pillow 13.0.0, see tests/test_pil_resize.py):

* Per axis, taps and weights as `_tables` computes them: the cubic kernel (a = -0.5), stretched
  by in / out when downscaling (antialiasing), divided by the taps' sum (float64), then to fixed
  point with 22 fractional bits, rounded half away from zero; an output is
  (2**21 + sum(w_fixed * pixel)) >> 22 (arithmetic shift, so floor), clipped to [0, 255].
* Two separable 1-D passes through an intermediate uint8 image, so the order of the passes
  changes the result. Pillow 13 does NOT always run the horizontal pass first: for
  (H, W) -> (h, w) it runs the vertical pass first exactly when H - h > 2 * max(W - w, 0)
  (found by experiment, see `vertical_first`; square -> square is horizontal first).
* A pass whose axis keeps its size is skipped (and `resize` to the same size is a copy). Here
  such a pass may instead run with identity taps (weight 2**22 on the pixel itself), which is
  exact: (p * 2**22 + 2**21) >> 22 == p.

Weights are numpy float64 by Pillow's formulas (for 1..399 x 1..399 (in, out) the fixed-point tables
do not depend on summation order or reciprocals); the pixel arithmetic is exact integer arithmetic
(int32 when no partial sum can overflow it, else int64), so device and order do not matter.
"""
import functools

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2      # Pillow's fixed-point precision for 8-bit images
_HALF = 1 << (PRECISION_BITS - 1)
_A = -0.5                        # bicubic kernel parameter; its support is 2


def _cubic(x):
    """The bicubic kernel with a = -0.5 (Keys), float64, written as Pillow evaluates it."""
    x = np.abs(x)
    near = ((_A + 2.0) * x - (_A + 3.0)) * x * x + 1.0      # |x| < 1
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * _A            # 1 <= |x| < 2
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=1024)
def _tables(in_size, out_size):
    """Numpy (indices (out, K), fixed-point weights (out, K), int32_safe) for one axis."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    centre = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    n = np.minimum((centre + support + 0.5).astype(np.int64), in_size) - xmin
    K = int(n.max())
    taps = np.arange(K)
    valid = taps[None, :] < n[:, None]
    w = np.where(valid, _cubic((taps[None, :] + xmin[:, None] - centre[:, None] + 0.5) * (1.0 / filterscale)), 0.0)
    total = np.zeros(out_size)
    for k in range(K):                              # summed tap by tap, left to right
        total = total + w[:, k]
    w = w / np.where(total == 0.0, 1.0, total)[:, None]
    scaled = w * (1 << PRECISION_BITS)
    fixed = np.trunc(np.where(w < 0, scaled - 0.5, scaled + 0.5)).astype(np.int64)
    idx = np.where(valid, taps[None, :] + xmin[:, None], 0)    # padding taps: index 0, weight 0
    # every partial sum lies in [2**21 - 255 * sum(negative w), 2**21 + 255 * sum(positive w)]
    pos = np.where(fixed > 0, fixed, 0).sum(1).max()
    neg = np.where(fixed < 0, -fixed, 0).sum(1).max()
    int32_safe = bool(_HALF + 255 * pos < 2 ** 31 and _HALF - 255 * neg >= -2 ** 31)
    return idx, fixed, int32_safe


@functools.lru_cache(maxsize=1024)
def resize_weights(in_size, out_size):
    """Pillow's bicubic taps for one axis of `in_size` -> `out_size` pixels: (indices, weights), cached CPU
    LongTensors (out_size, K), not to be modified; rows with fewer than K taps are padded with weight 0."""
    idx, fixed, _ = _tables(int(in_size), int(out_size))
    return torch.from_numpy(idx), torch.from_numpy(fixed)


def vertical_first(in_size, out_size):
    """Whether Pillow runs the vertical pass first for (H, W) -> (h, w), as the module doc says (found by
    experiment; tests/test_pil_resize.py pins it down on both sides of the boundary)."""
    (H, W), (h, w) = in_size, out_size
    return H - h > 2 * max(W - w, 0)


def _batch_tables(pairs, device):
    """Tables for per-sample (in, out) pairs (all with the same out), stacked to (B, out, K)
    with a common K, on `device`; and the accumulator dtype."""
    tabs = [_tables(i, o) for i, o in pairs]
    dtype = torch.int32 if all(t[2] for t in tabs) else torch.int64
    if len(set(pairs)) == 1:                     # one table for all: move once, then expand
        idx, w = resize_weights(*pairs[0])
        B = len(pairs)
        return idx.to(device)[None].expand(B, -1, -1), w.to(device, dtype)[None].expand(B, -1, -1), dtype
    K = max(t[0].shape[1] for t in tabs)
    idx = torch.zeros((len(pairs), tabs[0][0].shape[0], K), dtype=torch.int64)
    w = torch.zeros_like(idx)
    for b, (ti, tw, _) in enumerate(tabs):
        idx[b, :, :ti.shape[1]] = torch.from_numpy(ti)
        w[b, :, :tw.shape[1]] = torch.from_numpy(tw)
    return idx.to(device), w.to(device, dtype), dtype


def _pass(x, pairs, dim, loop=None):
    """One 1-D pass over dim 2 (rows) or 3 (columns) of uint8 x (B, C, H, W), sample b pairs[b] = (in, out)
    pixels: gather, multiply, sum in int32/int64, shift, clip. loop: tap by tap (small temporaries, fastest
    on a CPU) rather than all taps at once (fewest kernels, for GPUs); default: on the CPU only."""
    if all(i == o for i, o in pairs):            # Pillow skips the pass: nothing to do
        return x.narrow(dim, 0, pairs[0][1])
    idx, w, dtype = _batch_tables(pairs, x.device)
    B, C, H, W = x.shape
    out, K = idx.shape[1:]
    x = x.to(dtype)
    if loop is None:
        loop = x.device.type == 'cpu'
    tap_shape = (B, 1, 1, out) if dim == 3 else (B, 1, out, 1)   # of one tap's indices and weights
    out_shape = (B, C, H, out) if dim == 3 else (B, C, out, W)
    if loop:
        acc = torch.full(out_shape, _HALF, dtype=dtype, device=x.device)
        for k in range(K):
            g = x.gather(dim, idx[:, :, k].reshape(tap_shape).expand(out_shape))
            acc.addcmul_(g, w[:, :, k].reshape(tap_shape))
    else:
        if dim == 3:
            g = x.gather(3, idx.reshape(B, 1, 1, out * K).expand(B, C, H, out * K))
            acc = (g.view(B, C, H, out, K) * w.view(B, 1, 1, out, K)).sum(4, dtype=dtype)
        else:
            g = x.gather(2, idx.reshape(B, 1, out * K, 1).expand(B, C, out * K, W))
            acc = (g.view(B, C, out, K, W) * w.view(B, 1, out, K, 1)).sum(3, dtype=dtype)
        acc += _HALF
    acc >>= PRECISION_BITS
    return acc.clamp_(0, 255).to(torch.uint8)


def _resize(x, sizes, out_size, vfirst, loop=None):
    """Both passes in the given order; x (B, C, Hmax, Wmax), sample b of size sizes[b]."""
    h, w = out_size
    rows = [(hb, h) for hb, _ in sizes]
    cols = [(wb, w) for _, wb in sizes]
    if vfirst:
        return _pass(_pass(x, rows, 2, loop), cols, 3, loop)
    return _pass(_pass(x, cols, 3, loop), rows, 2, loop)


def pil_bicubic(img, size, _loop=None):
    """Resize a uint8 tensor (C, H, W) or (B, C, H, W), on any device, to `size` = (h, w),
    exactly as `Image.fromarray(hwc).resize((w, h), Image.BICUBIC)` does for each image."""
    if img.dtype != torch.uint8 or img.dim() not in (3, 4):
        raise TypeError(f"expected a uint8 (C, H, W) or (B, C, H, W) tensor, got {img.dtype} {tuple(img.shape)}")
    x = img if img.dim() == 4 else img.unsqueeze(0)
    out = pil_bicubic_batch(x, [x.shape[2:]] * x.shape[0], size, _loop)
    return out if img.dim() == 4 else out.squeeze(0)


def pil_bicubic_batch(crops, sizes, out_size, _loop=None):
    """Each sample b = crops[b, :, :h_b, :w_b] of a padded uint8 batch (B, C, Hmax, Wmax), sizes (h_b, w_b)
    as a (B, 2) LongTensor or list, resized to `out_size` = (h, w) exactly as Pillow: uint8 (B, C, h, w). Each
    pass runs once for the batch (samples that Pillow resizes in the other pass order form a second group)."""
    if crops.dtype != torch.uint8 or crops.dim() != 4:
        raise TypeError(f"expected a uint8 (B, C, H, W) tensor, got {crops.dtype} {tuple(crops.shape)}")
    sizes = [(int(a), int(b)) for a, b in (sizes.tolist() if torch.is_tensor(sizes) else sizes)]
    B, C, Hmax, Wmax = crops.shape
    if len(sizes) != B:
        raise ValueError(f"{len(sizes)} sizes for a batch of {B}")
    for hb, wb in sizes:
        if not (1 <= hb <= Hmax and 1 <= wb <= Wmax):
            raise ValueError(f"sample size {(hb, wb)} outside the padded crops {(Hmax, Wmax)}")
    h, w = int(out_size[0]), int(out_size[1])
    if all(s == (h, w) for s in sizes):
        return crops[:, :, :h, :w].clone()
    vfirst = [vertical_first(s, (h, w)) for s in sizes]
    if all(vfirst) or not any(vfirst):
        return _resize(crops, sizes, (h, w), vfirst[0], _loop)
    out = crops.new_empty((B, C, h, w))
    for flag in (False, True):
        sel = [b for b in range(B) if vfirst[b] == flag]
        sel_t = torch.tensor(sel, device=crops.device)
        out[sel_t] = _resize(crops[sel_t], [sizes[b] for b in sel], (h, w), flag, _loop)
    return out
