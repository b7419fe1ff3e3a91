"""The pieces of train.py's loop that are not the loop: run folders, time limits, loss checks."""
import argparse
import math
import os
import re
import time

import torch
import torch.nn.functional as F

from . import dist, rng
from .device import autocast
from .config import ConfigError, is_whole
from .errors import UserError, first_line


class RunError(UserError):
    """A training run that cannot start or go on; the message is one line."""


def resume_point(save_path, resume):
    """The checkpoint --resume continues from, or None (a run stopped before its first one restarts)."""
    last = os.path.join(save_path, 'epoch-last.pth')
    return last if resume and os.path.isfile(last) else None


def prepare_run_folder(save_path, resume, info):
    """Make the run folder (a new run never reuses one); the line to log when --resume has nothing to continue."""
    if os.path.exists(save_path) and not os.path.isdir(save_path):
        raise RunError(f"{save_path} exists and is not a folder (nothing was changed)")
    if not resume and os.path.exists(save_path) and os.listdir(save_path):
        raise RunError(f"{save_path} already exists; --resume continues that run (or restarts it when it has no "
                       f"checkpoint yet), --name starts a new one (nothing was changed)")
    note = None
    if resume and resume_point(save_path, resume) is None:
        note = (f"--resume: no checkpoint in {save_path} yet (the run stopped before its first one): "
                f"starting the run from the beginning" if os.path.isdir(save_path) else
                f"--resume: no run folder {save_path} yet: starting the run from the beginning")
    dist.barrier(info)  # every process has checked before the folder appears
    try:
        if info.is_main:
            os.makedirs(save_path, exist_ok=True)
    except OSError as e:
        raise RunError(f"{save_path}: cannot make the run folder ({first_line(e)})") from None
    dist.barrier(info)
    return note


def parse_duration(text):
    """'90', '90s', '9m' or '2h' -> seconds (the argparse type of --time-limit)."""
    match = re.fullmatch(r'\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*', text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds, or one ending in s, m or h")
    return float(match[1]) * {'': 1, 's': 1, 'm': 60, 'h': 3600}[match[2]]


class TimeLimit:
    """--time-limit: stop when one more epoch, as long as the longest so far, would end past it (every process alike)."""

    def __init__(self, seconds, start, info):
        self.end = start + seconds if seconds else None
        self.longest, self.info = 0.0, info

    def reached(self, epoch_seconds):
        if self.end is None:
            return False
        self.longest = max(self.longest, epoch_seconds)
        too_late = time.time() + self.longest > self.end
        return dist.all_min(0 if too_late else 1, self.info) == 0


def check_freeze(freeze, trainable):
    """Config `freeze: {MODULE: EPOCHS, ...}` (that submodule, e.g. `encoder`, untrained in epochs 1..EPOCHS),
    checked against `trainable`, the names of the parameters that train at all."""
    if freeze is None:
        return {}
    if not (isinstance(freeze, dict) and all(isinstance(k, str) and k and is_whole(v, 0) for k, v in freeze.items())):
        raise RunError(f"freeze {freeze!r}: expected {{MODULE: EPOCHS, ...}}, e.g. {{encoder: 10}}")
    for module in freeze:
        if not any(name.startswith(module + '.') for name in trainable):
            raise RunError(f"freeze: the model has no trained parameters under {module!r}")
    return freeze


def set_frozen(model, freeze, epoch, trainable):
    """Train the parameters of `trainable` that `freeze` does not hold at `epoch` (fixed ones, like EDSR's
    mean shifts, stay fixed); True when that changed anything (a DDP wrapper must then be rebuilt)."""
    frozen = tuple(module + '.' for module, epochs in freeze.items() if epoch <= epochs)
    changed = False
    for name, param in model.named_parameters():
        train = name in trainable and not (frozen and name.startswith(frozen))
        changed |= param.requires_grad != train
        param.requires_grad_(train)
    return changed


def check_finite(losses, iteration, epoch, save_path, info):
    """The losses of the last iterations as floats; stop every process if one is NaN or infinite."""
    values = torch.stack(losses).tolist()
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    first = dist.all_min(math.inf if bad is None else iteration - len(values) + 1 + bad, info)
    if first < math.inf:
        what = values[bad] if bad is not None else 'not finite'
        last = os.path.join(save_path, 'epoch-last.pth')
        kept = (f"training stopped. {last} from the last finished epoch is intact" if os.path.exists(last)
                else "training stopped, before any checkpoint was written")
        raise RunError(f"loss is {what} at iteration {int(first)} (epoch {epoch}); {kept} "
                       f"(try a lower learning rate or grad_clip)")
    return values


def restore_rng(states, info):
    """Set this process's random states from a checkpoint's; the line to log when they cannot be."""
    if len(states) == info.world_size:
        return rng.set_state(states[info.rank])
    return (f"checkpoint has random states of {len(states)} processes, this run has {info.world_size}: "
            f"processes are seeded afresh (the run goes on, but not bit for bit as before)")


def check_count(value, key, what='a positive whole number'):
    """`value`, a config value that must be a positive int (a ConfigError naming `key` otherwise)."""
    if not is_whole(value):
        raise ConfigError(f"{key} {value!r}: expected {what}")
    return value


def train_step(model, optimizer, batch, norm, precision, speed, grad_clip=None):
    """One optimisation step on a batch {inp, coord, cell, gt} (L1 loss on the normalised target,
    as the official code); returns the loss, still on the device."""
    inp, gt = norm.normalise(batch)
    speed.step_begin()
    with autocast(inp.device, precision):
        pred = model(speed.batch_input(inp), batch['coord'], batch['cell'])
    loss = F.l1_loss(pred.float(), gt)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


# what a resumed run cannot change: the network, what its weights mean, and how batches are drawn
FIXED_ON_RESUME = ('model', 'data_norm', 'optimizer.name', 'train_dataset.batch_size', 'train_dataset.wrapper', 'seed')


def flatten(cfg, prefix=''):
    out = {}
    for key, value in (cfg or {}).items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def resume_changes(saved, current):
    """Lines 'key: old -> new' for each config value a resumed run changes; a change to what
    cannot change (FIXED_ON_RESUME) is a RunError, raised before anything is written."""
    old, new = flatten(saved), flatten(current)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k, '(absent)') != new.get(k, '(absent)'))
    for key in changed:
        fixed = next((f for f in FIXED_ON_RESUME if key == f or key.startswith(f + '.')), None)
        if fixed:
            raise RunError(f"--resume: {key} changed ({old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}), "
                           f"but {fixed} cannot change within a run; start a new run with --name (nothing was changed)")
    return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}" for k in changed]
