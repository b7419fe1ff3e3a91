"""Optimizers and learning-rate schedules from the config.

optimizer: {name: adam | adamw | sgd, args: {lr: ..., ...}}
multi_step_lr: {milestones: [...], gamma: ...}   (the official key; stepped once per epoch)
cosine_lr: {warmup_epochs: N}   (stepped every iteration: linear warm-up from lr/warm-up length
    over the first N epochs, then a half cosine from lr to zero at the end of epoch_max; the
    short-budget schedule)
Neither: constant lr.
"""
import math

import torch

from .config import ConfigError, get_key

OPTIMIZERS = {'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW, 'sgd': torch.optim.SGD}


def make_optimizer(params, spec):
    name = spec.get('name')
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name {name!r} is not one of {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[name](params, **(spec.get('args') or {}))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer.args {spec.get('args')}: {e}") from None


def cosine_factor(iteration, warmup, total):
    """lr multiplier after `iteration` steps: (i + 1) / warmup during warm-up, then a half cosine to 0 at `total`."""
    if iteration < warmup:
        return (iteration + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (iteration - warmup) / max(1, total - warmup))))


def make_scheduler(optimizer, cfg, iterations_per_epoch):
    """(scheduler or None, per_iteration): the config's schedule and whether train.py steps it
    after every iteration (else after every epoch)."""
    multi_step, cosine = cfg.get('multi_step_lr'), cfg.get('cosine_lr')
    if multi_step is not None and cosine is not None:
        raise ConfigError("multi_step_lr and cosine_lr are both set: choose one schedule")
    if multi_step is not None:
        try:
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, **multi_step), False
        except TypeError as e:
            raise ConfigError(f"multi_step_lr {multi_step}: {e}") from None
    if cosine is None:
        return None, False
    extra = set(cosine) - {'warmup_epochs'} if isinstance(cosine, dict) else None
    warmup_epochs, epoch_max = cosine.get('warmup_epochs', 0) if isinstance(cosine, dict) else None, get_key(cfg, 'epoch_max')
    if extra or not isinstance(warmup_epochs, int) or not 0 <= warmup_epochs < epoch_max:
        raise ConfigError(f"cosine_lr {cosine}: expected {{warmup_epochs: N}} with 0 <= N < epoch_max ({epoch_max})")
    warmup, total = warmup_epochs * iterations_per_epoch, epoch_max * iterations_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: cosine_factor(i, warmup, total)), True
