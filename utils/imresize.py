"""MATLAB's bicubic `imresize`, reproduced bit for bit for uint8 images.

The low-resolution images of the SR benchmarks (Set5, Set14, B100, Urban100, DIV2K's
LR_bicubic) were made with MATLAB's `imresize(hr, 1/s, 'bicubic')`, antialiasing on. Other
bicubic resizers (PIL, OpenCV, torch) give different pixels and so different PSNRs; this one
gives the very same uint8 pixels as the published LR files (tests/test_imresize.py checks Set5
and Set14 at x2, x3, x4), so LR inputs for new data sets or scales can be made here.

The algorithm is MATLAB's: taps and weights as its `contributions` (`_contributions` here), indices
outside the image mirrored; the two 1-D passes run the smaller scale factor first (rows first on a
tie). Each pass sums its taps in float64 and, as MATLAB's imresizemex does, gives back the input's
class: a uint8 image is rounded (half away from zero) and saturated after each of the two passes.
"""
import math
import numbers

import numpy as np


def _cubic(x):
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((1 < ax) & (ax <= 2)))


def _contributions(in_len, out_len, scale):
    """(weights, 0-based indices), each (out_len, taps): MATLAB's `contributions`."""
    kernel = (lambda x: scale * _cubic(scale * x)) if scale < 1 else _cubic   # antialias: stretch the kernel
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / np.sum(weights, axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_rows(img, weights, indices, out_dtype):
    """Resize along axis 0; sum the taps in order in float64, then cast like MATLAB."""
    out = np.zeros((weights.shape[0],) + img.shape[1:], dtype=np.float64)
    extra = (slice(None),) + (None,) * (img.ndim - 1)
    for k in range(weights.shape[1]):
        out += weights[:, k][extra] * img[indices[:, k]]
    return _cast(out, out_dtype)


def _cast(x, dtype):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = np.clip(x, info.min, info.max)
        return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)).astype(dtype)
    return x.astype(dtype)


def imresize(img, scale=None, size=None):
    """MATLAB's `imresize(img, scale)` / `imresize(img, [h w])`, bicubic with antialiasing.

    img: numpy array H x W or H x W x C, uint8 (or another integer type) or float.
    scale: a positive number; the output is ceil(H*scale) x ceil(W*scale), as in MATLAB.
    size: (h, w) positive integers; the scale per axis is then h/H and w/W, as in MATLAB.
    Exactly one of scale and size. Returns an array of img's dtype (integers rounded, saturated)."""
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected an H x W or H x W x C image, got shape {img.shape}")
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"imresize: expected an integer or float image, got dtype {img.dtype}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"imresize: empty image of shape {img.shape}")
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale and size")
    in_h, in_w = img.shape[:2]
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"imresize: scale must be a positive finite number, got {scale!r}")
        scales = (float(scale), float(scale))
        size = (int(math.ceil(in_h * scales[0])), int(math.ceil(in_w * scales[1])))
    else:
        try:
            ok = len(size) == 2 and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in size)
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"imresize: size must be (height, width), two positive integers, got {size!r}")
        size = (int(size[0]), int(size[1]))
        scales = (size[0] / in_h, size[1] / in_w)

    out = img
    for axis in (0, 1) if scales[0] <= scales[1] else (1, 0):
        weights, indices = _contributions(img.shape[axis], size[axis], scales[axis])
        out = np.swapaxes(_resize_rows(np.swapaxes(out, 0, axis), weights, indices, img.dtype), 0, axis)
    return np.ascontiguousarray(out)


def modcrop(img, scale):
    """`img` cropped from the top-left so that its height and width are multiples of `scale`."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"modcrop: scale must be a positive integer, got {scale!r}")
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"modcrop: expected an H x W or H x W x C image, got shape {img.shape}")
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return img[:h, :w]
