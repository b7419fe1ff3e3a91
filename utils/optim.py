"""Optimizers and learning-rate schedules from the config (README.md, Training): optimizer {name: adam |
adamw | sgd, args: {lr: ..., ...}}; multi_step_lr {milestones: [...], gamma: ...} (the official key,
stepped once per epoch) or cosine_lr {warmup_epochs: N} (stepped every iteration: a linear warm-up, then
a half cosine to zero at the end of epoch_max); neither: a constant lr."""
import contextlib
import inspect
import math

import torch

from .config import ConfigError, get_key, is_number
from .errors import message

OPTIMIZERS = {'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW, 'sgd': torch.optim.SGD}


# optimizer arguments by meaning (the same name means the same thing in every torch optimizer)
OPTIMIZER_ARGS = {
    **{key: (lambda v: is_number(v) and v > 0, 'a positive number') for key in ('lr', 'eps')},
    **{key: (lambda v: is_number(v) and v >= 0, 'a number >= 0') for key in ('weight_decay', 'momentum', 'dampening')},
    'betas': (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(is_number(b) and 0 <= b < 1 for b in v),
              'two numbers in [0, 1), e.g. [0.9, 0.999]'),
    **{flag: (lambda v: isinstance(v, bool), 'true or false') for flag in ('amsgrad', 'nesterov', 'maximize')},
}


def check_optimizer(spec):
    """Check the config's `optimizer` ({name, args}) without building the model: train.py calls
    this before the run folder is made. Each problem is one line naming the key."""
    if not isinstance(spec, dict):
        raise ConfigError(f"optimizer {spec!r}: expected {{name: {' | '.join(OPTIMIZERS)}, args: {{lr: ...}}}}")
    name, args = spec.get('name'), spec.get('args') or {}
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name {name!r} is not one of {', '.join(OPTIMIZERS)}")
    if not isinstance(args, dict):
        raise ConfigError(f"optimizer.args {args!r}: expected a mapping, e.g. {{lr: 1.0e-4}}")
    accepted = [a for a in inspect.signature(OPTIMIZERS[name]).parameters if a != 'params']
    for key, value in args.items():
        if key not in accepted:
            raise ConfigError(f"optimizer.args.{key}: not an argument of {name} (its arguments: {', '.join(accepted)})")
        valid, expected = OPTIMIZER_ARGS.get(key, (lambda v: True, None))
        if not valid(value):
            hint = ''
            with contextlib.suppress(ValueError):  # PyYAML reads 1e-4 (no dot) as text
                if isinstance(value, str) and math.isfinite(float(value)):
                    hint = f" (YAML reads {value} as text: write it with a dot, e.g. {float(value):.1e})"
            raise ConfigError(f"optimizer.args.{key} {value!r}: expected {expected}{hint}")
    try:  # what the table above does not know, torch checks (on one stand-in parameter)
        OPTIMIZERS[name]([torch.zeros(1, requires_grad=True)], **args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer.args {args}: {message(e)}") from None


def make_optimizer(params, spec):
    check_optimizer(spec)
    return OPTIMIZERS[spec['name']](params, **(spec.get('args') or {}))


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
