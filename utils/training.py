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
from .errors import UserError


class RunError(UserError):
    """A training run that cannot start or go on; the message is one line."""


def prepare_run_folder(save_path, resume, info):
    """Check that a new run does not reuse a folder (and that --resume has one), then create it."""
    last = os.path.join(save_path, 'epoch-last.pth')
    if resume and not os.path.isfile(last):
        raise RunError(f"--resume: {last} not found, nothing to resume")
    if not resume and os.path.exists(save_path) and (not os.path.isdir(save_path) or os.listdir(save_path)):
        raise RunError(f"{save_path} already exists; --resume continues that run, --name starts a new one "
                       f"(nothing was changed)")
    dist.barrier(info)  # every process has checked before the folder appears
    if info.is_main:
        os.makedirs(save_path, exist_ok=True)
    dist.barrier(info)


def parse_duration(text):
    """'90', '90s', '9m' or '2h' -> seconds (the argparse type of --time-limit)."""
    match = re.fullmatch(r'\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*', text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds, or one ending in s, m or h")
    return float(match[1]) * {'': 1, 's': 1, 'm': 60, 'h': 3600}[match[2]]


class TimeLimit:
    """--time-limit: stop at the end of an epoch when one more epoch, as long as the longest so
    far, would end past the limit (counted from `start`). Every process takes the same decision."""

    def __init__(self, seconds, start, info):
        self.end = start + seconds if seconds else None
        self.longest, self.info = 0.0, info

    def reached(self, epoch_seconds):
        if self.end is None:
            return False
        self.longest = max(self.longest, epoch_seconds)
        too_late = time.time() + self.longest > self.end
        return dist.all_min(0 if too_late else 1, self.info) == 0


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


def restore_rng(states, info, log):
    if len(states) == info.world_size:
        rng.set_state(states[info.rank])
    else:
        log.log(f"checkpoint has random states of {len(states)} processes, this run has {info.world_size}: "
                f"processes are seeded afresh (the run goes on, but not bit for bit as before)")


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
FIXED_ON_RESUME = ('model', 'data_norm', 'optimizer.name', 'train_dataset.batch_size', 'train_dataset.wrapper',
                   'seed')


def flatten(cfg, prefix=''):
    out = {}
    for key, value in (cfg or {}).items():
        name = f'{prefix}{key}'
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + '.'))
        else:
            out[name] = value
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
