"""Optimizers and learning-rate schedules from the official config keys.

optimizer: {name: adam | adamw | sgd, args: {lr: ..., ...}}
multi_step_lr: {milestones: [...], gamma: ...}   (stepped once per epoch; absent: constant lr)
"""
import torch

from .config import ConfigError

OPTIMIZERS = {'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW, 'sgd': torch.optim.SGD}


def make_optimizer(params, spec):
    name = spec.get('name')
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name {name!r} is not one of {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[name](params, **(spec.get('args') or {}))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer.args {spec.get('args')}: {e}") from None


def make_scheduler(optimizer, multi_step_lr):
    if multi_step_lr is None:
        return None
    try:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, **multi_step_lr)
    except TypeError as e:
        raise ConfigError(f"multi_step_lr {multi_step_lr}: {e}") from None
