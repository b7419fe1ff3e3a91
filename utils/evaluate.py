"""PSNR with the official protocol, for validation during training and for test.py.

eval_type (official names): 'benchmark-S' -> Y channel, S pixels shaved;
'div2k-S' -> RGB, 6 + S pixels shaved; None -> RGB, nothing shaved.
"""
import torch

from models.upscale import upscale
from .config import ConfigError
from .device import autocast
from .metrics import psnr


def parse_eval_type(eval_type):
    """eval_type -> (shave, y_channel)."""
    if eval_type is None:
        return 0, False
    kind, _, scale = str(eval_type).partition('-')
    if kind not in ('benchmark', 'div2k') or not scale.isdigit():
        raise ConfigError(f"eval_type {eval_type!r}: expected benchmark-<scale> or div2k-<scale>, e.g. benchmark-4")
    return (int(scale), True) if kind == 'benchmark' else (6 + int(scale), False)


def norm_pair(data_norm):
    """The (sub, div) of a data_norm config, which must be one value shared by input and target."""
    data_norm = data_norm or {}
    pairs = {(tuple(data_norm.get(k, {}).get('sub', [0.5])), tuple(data_norm.get(k, {}).get('div', [0.5])))
             for k in ('inp', 'gt')}
    (sub, div), = pairs if len(pairs) == 1 else [((None,), (None,))]
    if len(sub) != 1 or len(div) != 1 or sub[0] is None:
        raise ConfigError(f"data_norm {data_norm}: whole-image evaluation needs one sub and div shared by inp and gt")
    return sub[0], div[0]


def normalise(batch, data_norm):
    """(inp, gt) of a sample batch normalised as data_norm says (gt only when present)."""
    def stats(key, shape):
        spec = (data_norm or {}).get(key, {})
        sub, div = (torch.tensor(spec.get(k, [0.5]), device=batch['inp'].device).view(shape) for k in ('sub', 'div'))
        return sub, div
    inp_sub, inp_div = stats('inp', (1, -1, 1, 1))
    gt_sub, gt_div = stats('gt', (1, 1, -1))
    return (batch['inp'] - inp_sub) / inp_div, (batch['gt'] - gt_sub) / gt_div, (gt_sub, gt_div)


@torch.no_grad()
def sampled_psnr(model, loader, data_norm, device, precision='fp32'):
    """(sum, count) of per-sample RGB PSNR on sampled query points (the official validation)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        inp, _, (gt_sub, gt_div) = normalise(batch, data_norm)
        with autocast(device, precision):
            pred = model(inp, batch['coord'], batch['cell'])
        pred = (pred.float() * gt_div + gt_sub).clamp_(0, 1)
        mse = (pred.double() - batch['gt'].double()).pow(2).flatten(1).mean(1)
        total += (-10 * torch.log10(mse)).sum().item()
        count += len(mse)
    return total, count


@torch.no_grad()
def image_psnr(model, lr, hr, eval_type, data_norm, device, precision='fp32', tile=256, chunk=None):
    """(PSNR, SR image) of one whole image: LR (3, h, w) upscaled to HR's size, clamped to [0, 1]."""
    shave, y_channel = parse_eval_type(eval_type)
    model.eval()
    with autocast(device, precision):
        sr = upscale(model, lr.to(device), hr.shape[-2:], tile=tile, chunk=chunk, data_norm=norm_pair(data_norm))
    sr = sr.float().clamp_(0, 1)
    return psnr(sr, hr.to(device), shave=shave, y_channel=y_channel), sr
