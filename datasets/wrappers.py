"""SR wrappers: images to LIIF samples {'inp': LR (3, h, w), 'coord', 'cell': (Q, 2), 'gt': (Q, 3)} with the
official semantics (Q: `sample_q` HR pixels without replacement, or all); `pair(idx)` gives the whole (LR, HR)
images. Randomness is seeded by (seed, epoch, idx) only, not by workers, ranks or order (so DDP equals one
process, a resumed run an uninterrupted one); a plain idx is epoch 0."""
import math

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from utils.config import is_number, is_whole
from utils.coords import to_pixel_samples
from .datasets import ArgError, DataError, register


def resize_bicubic(img, size):
    """PIL bicubic resize of an RGB uint8 array (H, W, 3) to `size` = (h, w): how the official
    code makes LR images (torchvision's ToPILImage + Resize, which is exactly this on uint8)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size[1], size[0]), Image.BICUBIC))


def to_tensor(img):
    """RGB uint8 array (H, W, 3) -> float tensor (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)  # a writable copy


# the wrappers' arguments by meaning (a name means the same in every wrapper), checked when a
# wrapper is made, so that a bad config value fails before training starts, naming its key
ARGS = {
    'inp_size': (lambda v: v is None or is_whole(v), 'a positive whole number of LR pixels, or null (whole images)'),
    'sample_q': (lambda v: v is None or is_whole(v), 'a positive whole number of query pixels, or null (all of them)'),
    'augment': (lambda v: isinstance(v, bool), 'true or false'),
    'fit_scale': (lambda v: isinstance(v, bool), 'true or false'),
    'seed': (lambda v: is_whole(v, 0), 'a whole number >= 0'),
    'scale_min': (lambda v: is_number(v) and v >= 1, 'a number >= 1 (the HR side over the LR side)'),
    'scale_max': (lambda v: v is None or is_number(v), 'a number >= scale_min, or null (scale_min)'),
    'size_min': (lambda v: is_whole(v), 'a positive whole number of pixels'),
    'size_max': (lambda v: v is None or is_whole(v), 'a positive whole number of pixels, or null (size_min)'),
    'gt_resize': (lambda v: v is None or is_whole(v), 'a positive whole number of pixels, or null'),
}


def check_args(**values):
    for name, value in values.items():
        valid, expected = ARGS[name]
        if not valid(value):
            raise ArgError(name, value, expected)


class SRWrapper(Dataset):
    """Shared sampling: augmentation, pixel sampling, cells. Subclasses implement `crop(idx, rng)`."""

    def __init__(self, dataset, augment=False, sample_q=None, seed=0):
        check_args(augment=augment, sample_q=sample_q, seed=seed)
        self.dataset = dataset
        self.augment = augment
        self.sample_q = sample_q
        self.seed = seed

    def __len__(self):
        return len(self.dataset)

    def rng(self, idx, epoch=0):
        return np.random.default_rng([self.seed, epoch, idx])

    def pair(self, idx):
        return tuple(map(to_tensor, self.crop(idx, self.rng(idx))))

    def __getitem__(self, key):
        epoch, idx = key if isinstance(key, tuple) else (0, key)
        rng = self.rng(idx, epoch)
        lr, hr = map(to_tensor, self.crop(idx, rng))
        if self.augment:
            hflip, vflip, dflip = rng.random(3) < 0.5
            lr, hr = (augment(x, hflip, vflip, dflip) for x in (lr, hr))
        coord, rgb = to_pixel_samples(hr.contiguous())
        if self.sample_q is not None:
            keep = torch.from_numpy(self.sample_pixels(idx, rng, hr.shape[-2:]))
            coord, rgb = coord[keep], rgb[keep]
        cell = torch.tensor([2 / hr.shape[-2], 2 / hr.shape[-1]]).expand_as(coord).contiguous()
        return {'inp': lr, 'coord': coord, 'cell': cell, 'gt': rgb}

    def sample_pixels(self, idx, rng, shape):
        """`sample_q` distinct pixel indices of an HR crop of `shape`."""
        n = shape[0] * shape[1]
        if self.sample_q > n:
            raise DataError(f"{self.dataset.describe(idx)}: sample_q {self.sample_q} is more than the "
                            f"{n} pixels of its {shape[0]}x{shape[1]} HR crop")
        return rng.choice(n, self.sample_q, replace=False)

    def too_small(self, idx, image, crop):
        return DataError(f"{self.dataset.describe(idx)}: image is {image[0]}x{image[1]}, "
                         f"smaller than the {crop[0]}x{crop[1]} crop it needs")


def augment(x, hflip, vflip, dflip):
    """The official augmentation: flip rows, flip columns, transpose (each independently)."""
    x = x.flip(-2) if hflip else x
    x = x.flip(-1) if vflip else x
    return x.transpose(-2, -1) if dflip else x


@register('sr-implicit-downsampled')
class SRImplicitDownsampled(SRWrapper):
    """HR from one image, LR made by PIL bicubic at a scale s ~ U(scale_min, scale_max): with `inp_size`, a
    random HR crop of round(inp_size * s) pixels and its inp_size LR; without, the whole image, HR cropped so
    that LR = floor(HR / s) exactly. fit_scale: images too small for scale_max draw s from the scales that fit."""

    def __init__(self, dataset, inp_size=None, scale_min=1, scale_max=None, augment=False, sample_q=None, seed=0,
                 fit_scale=False):
        super().__init__(dataset, augment, sample_q, seed)
        check_args(inp_size=inp_size, scale_min=scale_min, scale_max=scale_max, fit_scale=fit_scale)
        if scale_max is not None and scale_max < scale_min:
            raise ArgError('scale_max', scale_max, f"a number >= scale_min ({scale_min:g})")
        if inp_size is not None and sample_q is not None and sample_q > round(inp_size * scale_min) ** 2:
            side = round(inp_size * scale_min)
            raise ArgError('sample_q', sample_q, f"at most {side * side}, the pixels of the smallest HR crop "
                                                 f"({side}x{side}: inp_size {inp_size} x scale_min {scale_min:g})")
        self.inp_size = inp_size
        self.scale_min = scale_min
        self.scale_max = scale_min if scale_max is None else scale_max
        self.fit_scale = fit_scale
        # set by train.py (lr_on_device): serve HR crops and random draws only, and let
        # datasets.device_synthesis.finish_batch make the LR and the samples on the device
        self.hr_only = False

    def supports_hr_only(self):
        return self.inp_size is not None and self.sample_q is not None

    def __getitem__(self, key):
        if not self.hr_only:
            return super().__getitem__(key)
        epoch, idx = key if isinstance(key, tuple) else (0, key)
        rng = self.rng(idx, epoch)  # the draws of the CPU path, in its order
        _, hr = self.crop(idx, rng, make_lr=False)
        flips = rng.random(3) < 0.5 if self.augment else np.zeros(3, dtype=bool)
        keep = self.sample_pixels(idx, rng, hr.shape[:2])
        side = round(self.inp_size * self.scale_max)
        padded = np.zeros((side, side, 3), dtype=np.uint8)
        padded[:hr.shape[0], :hr.shape[1]] = hr
        return {'hr': torch.from_numpy(padded), 'hr_size': hr.shape[0], 'flips': torch.from_numpy(flips),
                'keep': torch.from_numpy(keep)}

    def crop(self, idx, rng, make_lr=True):
        img = self.dataset[idx]
        H, W = img.shape[:2]
        top = self.scale_max
        if self.fit_scale and self.inp_size is not None:
            top = min(top, min(H, W) / self.inp_size)
            if top < self.scale_min:
                smallest = round(self.inp_size * self.scale_min)
                raise self.too_small(idx, (H, W), (smallest, smallest))
        s = rng.uniform(self.scale_min, top)
        if self.inp_size is None:
            h_lr, w_lr = math.floor(H / s + 1e-9), math.floor(W / s + 1e-9)
            if min(h_lr, w_lr) < 1:
                raise DataError(f"{self.dataset.describe(idx)}: image is {H}x{W}, too small for scale {s:g}")
            hr = img[:round(h_lr * s), :round(w_lr * s)]
            return resize_bicubic(hr, (h_lr, w_lr)), hr
        w_lr = self.inp_size
        w_hr = round(w_lr * s)
        if H < w_hr or W < w_hr:
            hint = '' if self.fit_scale else ' (fit_scale: true lets small images draw smaller scales)'
            raise DataError(f"{self.too_small(idx, (H, W), (w_hr, w_hr))}{hint}")
        x0, y0 = rng.integers(0, H - w_hr + 1), rng.integers(0, W - w_hr + 1)
        hr = img[x0:x0 + w_hr, y0:y0 + w_hr]
        return (resize_bicubic(hr, (w_lr, w_lr)) if make_lr else None), hr


@register('sr-implicit-paired')
class SRImplicitPaired(SRWrapper):
    """(LR, HR) pairs from a paired data set; the integer scale s comes from their heights. With `inp_size`:
    aligned random crops (LR inp_size, HR inp_size * s); without, the whole LR and the HR cropped to s times it."""

    def __init__(self, dataset, inp_size=None, augment=False, sample_q=None, seed=0):
        super().__init__(dataset, augment, sample_q, seed)
        check_args(inp_size=inp_size)
        self.inp_size = inp_size

    def crop(self, idx, rng):
        lr, hr = self.dataset[idx]
        s = hr.shape[0] // lr.shape[0]
        h_lr, w_lr = lr.shape[:2]
        if s < 1 or hr.shape[1] < w_lr * s:
            raise DataError(f"{self.dataset.describe(idx)}: HR {hr.shape[0]}x{hr.shape[1]} is not an "
                            f"integer multiple of LR {h_lr}x{w_lr}")
        if self.inp_size is None:
            return lr, hr[:h_lr * s, :w_lr * s]
        w = self.inp_size
        if h_lr < w or w_lr < w:
            raise self.too_small(idx, (h_lr, w_lr), (w, w))
        x0, y0 = rng.integers(0, h_lr - w + 1), rng.integers(0, w_lr - w + 1)
        return lr[x0:x0 + w, y0:y0 + w], hr[x0 * s:(x0 + w) * s, y0 * s:(y0 + w) * s]


@register('sr-implicit-uniform-varied')
class SRImplicitUniformVaried(SRWrapper):
    """Paired (LR, HR) where the HR's shorter side is resized to a size that grows uniformly with
    the index from size_min to size_max (the official wrapper for fixed-LR, varied-scale sets).
    `augment` here is the official one for this wrapper: a random column flip only."""

    def __init__(self, dataset, size_min, size_max=None, augment=False, gt_resize=None, sample_q=None, seed=0):
        super().__init__(dataset, False, sample_q, seed)
        check_args(augment=augment, size_min=size_min, size_max=size_max, gt_resize=gt_resize)
        if size_max is not None and size_max < size_min:
            raise ArgError('size_max', size_max, f"a whole number >= size_min ({size_min})")
        self.size_min = size_min
        self.size_max = size_min if size_max is None else size_max
        self.flip = augment
        self.gt_resize = gt_resize

    def crop(self, idx, rng):
        lr, hr = self.dataset[idx]
        p = idx / max(len(self.dataset) - 1, 1)
        hr = resize_short_side(hr, round(self.size_min + (self.size_max - self.size_min) * p))
        if self.flip and rng.random() < 0.5:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        if self.gt_resize is not None:
            hr = resize_short_side(hr, self.gt_resize)
        return lr, hr


def resize_short_side(img, size):
    """Resize so that the shorter side is `size`, keeping the aspect ratio (truncating the longer
    side, as torchvision's Resize(int) does)."""
    H, W = img.shape[:2]
    if H <= W:
        return resize_bicubic(img, (size, int(size * W / H)))
    return resize_bicubic(img, (int(size * H / W), size))
