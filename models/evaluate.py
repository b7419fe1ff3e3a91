"""Scoring a model with the official protocol, for validation and test.py. eval_type (official
names): 'benchmark-S': Y channel, S pixels shaved; 'div2k-S': RGB, 6 + S shaved; None: RGB, none
shaved. SSIM is always on Y."""
import math
import os

import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils.config import ConfigError
from utils.device import autocast
from utils.image import write_image
from utils.metrics import psnr, ssim
from .upscale import upscale


def parse_eval_type(eval_type):
    """eval_type -> (shave, y_channel). A non-integer scale (benchmark-2.5) shaves ceil(scale)."""
    if eval_type is None:
        return 0, False
    kind, _, scale = str(eval_type).partition('-')
    try:
        shave = math.ceil(float(scale))
    except ValueError:
        shave = -1
    if kind not in ('benchmark', 'div2k') or not 0 < shave < 1000:
        raise ConfigError(f"eval_type {eval_type!r}: expected benchmark-<scale> or div2k-<scale>, e.g. benchmark-4")
    return (shave, True) if kind == 'benchmark' else (6 + shave, False)


@torch.no_grad()
def sampled_psnr(model, loader, norm, device, precision='fp32'):
    """(sum, count) of per-sample RGB PSNR on sampled query points (the official validation);
    `norm` is the run's `DataNorm`."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        inp, _ = norm.normalise(batch)
        with autocast(device, precision):
            pred = norm.to_rgb(model(inp, batch['coord'], batch['cell']))
        mse = (pred.double() - batch['gt'].double()).pow(2).flatten(1).mean(1)
        total += (-10 * torch.log10(mse)).sum().item()
        count += len(mse)
    return total, count


@torch.no_grad()
def score_image(model, lr, hr, eval_type, norm, device, precision='fp32', with_ssim=False, cell_clip=None,
                tile=256, chunk=None):
    """Scores of one whole image, and its SR: LR (3, h, w) upscaled to HR's size (3, H, W).

    The SR is clamped to [0, 1] (by `upscale`) and not rounded (the official protocol). `cell_clip` = the
    largest training scale (LTE/LMF use 4): beyond it the decoder is given the cell of that scale."""
    shave, y_channel = parse_eval_type(eval_type)
    model.eval()
    with autocast(device, precision):
        sr = upscale(model, lr.to(device), hr.shape[-2:], tile=tile, chunk=chunk, data_norm=norm.scalars(),
                     cell_clip=cell_clip)
    hr = hr.to(device)
    scores = {'psnr': psnr(sr, hr, shave=shave, y_channel=y_channel)}
    if with_ssim:
        scores['ssim'] = ssim(sr, hr, shave=shave, y_channel=True)
    return scores, sr


def evaluate(model, dataset, eval_type, norm, device, precision='fp32', cell_clip=None, save_dir=None,
             desc='test'):
    """Per-image {'image', 'psnr', 'ssim'} over an SR wrapper's whole images, with a progress bar;
    with `save_dir`, each SR image is written there as <name>.png (8-bit)."""
    rows = []
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    bar = tqdm(range(len(dataset)), desc=desc, unit='img', leave=False)
    for i in bar:
        lr, hr = dataset.pair(i)
        scores, sr = score_image(model, lr, hr, eval_type, norm, device, precision, with_ssim=True,
                                 cell_clip=cell_clip)
        name = dataset.dataset.name(i)
        rows.append({'image': name, **scores})
        bar.set_postfix(psnr=f"{sum(r['psnr'] for r in rows) / len(rows):.4f}", refresh=False)
        if save_dir:
            write_image(os.path.join(save_dir, name + '.png'), sr.cpu())
    return rows


@torch.no_grad()
def preview(model, dataset, norm, device):
    """LR (nearest-upscaled) | SR | HR side by side, for the first sample of `dataset`."""
    lr, hr = dataset.pair(0)
    sr = upscale(model.eval(), lr.to(device), hr.shape[-2:], data_norm=norm.scalars()).cpu()
    lr_big = F.interpolate(lr[None], size=hr.shape[-2:], mode='nearest')[0]
    return torch.cat([lr_big, sr, hr], dim=2)
