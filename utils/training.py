"""The pieces of train.py's loop that are not the loop: run folders, data loaders, loss checks."""
import argparse
import math
import os
import re
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

import datasets
from models.upscale import upscale
from . import dist, rng
from .config import ConfigError, get_key
from .errors import first_line


class RunError(Exception):
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


def make_sr_dataset(cfg, key, seed):
    """The wrapper data set of config entry `key` ({dataset: spec, wrapper: spec, ...})."""
    spec = get_key(cfg, key)
    inner = build(spec, key, 'dataset', {})
    wrapper_args = {'dataset': inner}
    if 'seed' not in (spec['wrapper'].get('args') or {}):
        wrapper_args['seed'] = seed
    return build(spec, key, 'wrapper', wrapper_args)


def build(spec, key, part, args):
    if not isinstance(spec.get(part), dict) or 'name' not in spec[part]:
        raise ConfigError(f"config key {key}.{part} missing or without a name")
    try:
        return datasets.make(spec[part], args)
    except KeyError as e:
        raise ConfigError(f"{key}.{part}: {e.args[0]}") from None
    except datasets.DataError as e:
        raise datasets.DataError(f"{key}: {e}") from None
    except TypeError as e:
        raise ConfigError(f"{key}.{part}: {spec[part]['name']!r} rejects its args ({first_line(e)})") from None


def use_lr_on_device(choice, dataset, device):
    """Whether the training batches are finished on the device (`datasets.device_synthesis`).

    choice (config `lr_on_device`): 'auto' (on when training on a GPU and the wrapper can serve
    HR crops only), true, or false. Switches the wrapper to HR-only items when on."""
    supported = getattr(dataset, 'supports_hr_only', lambda: False)()
    if choice not in ('auto', True, False):
        raise ConfigError(f"lr_on_device {choice!r}: expected auto, true or false")
    if choice is True and not supported:
        raise ConfigError("lr_on_device: true needs the sr-implicit-downsampled wrapper with inp_size and sample_q")
    on = supported and (choice is True or (choice == 'auto' and device.type == 'cuda'))
    if on:
        dataset.hr_only = True
    return on


class EpochSampler(Sampler):
    """Yields (epoch, index) pairs: a permutation of the data set seeded by (seed, epoch) (or the
    plain order), the same in every process, of which process r takes elements r, r + W, ...

    With `pad`, the permutation is extended from its start so every process gets the same number
    of samples (training: DDP needs equal steps); the SR wrappers seed each sample by (epoch,
    index), so workers can stay alive across epochs."""

    def __init__(self, n, info, seed, shuffle, pad):
        self.n, self.info, self.seed, self.shuffle, self.pad = n, info, seed, shuffle, pad
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def indices(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        if self.pad:
            total = math.ceil(self.n / self.info.world_size) * self.info.world_size
            order = np.resize(order, total)
        return order[self.info.rank::self.info.world_size]

    def __iter__(self):
        return ((self.epoch, int(i)) for i in self.indices())

    def __len__(self):
        if self.pad:
            return math.ceil(self.n / self.info.world_size)
        return len(range(self.info.rank, self.n, self.info.world_size))


def make_loader(dataset, spec, info, seed, shuffle, num_workers=None):
    """A DataLoader over this process's share; spec['batch_size'] is the global batch."""
    batch = spec.get('batch_size', 1)
    if batch % info.world_size:
        raise ConfigError(f"batch_size {batch} cannot be split evenly across {info.world_size} processes")
    if num_workers is None:
        num_workers = min(8, (os.cpu_count() or 1) // info.world_size)
    sampler = EpochSampler(len(dataset), info, seed, shuffle=shuffle, pad=shuffle)
    return DataLoader(dataset, batch_size=batch // info.world_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=info.device.type == 'cuda', persistent_workers=num_workers > 0)


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
        raise RunError(f"loss is {what} at iteration {int(first)} (epoch {epoch}); training stopped. "
                       f"{os.path.join(save_path, 'epoch-last.pth')} from the last finished epoch is intact "
                       f"(try a lower learning rate or grad_clip)")
    return values


def restore_rng(states, info, log):
    if len(states) == info.world_size:
        rng.set_state(states[info.rank])
    else:
        log.log(f"checkpoint has random states of {len(states)} processes, this run has {info.world_size}: "
                f"processes are seeded afresh (the run goes on, but not bit for bit as before)")


@torch.no_grad()
def preview(model, dataset, norm, device):
    """LR (nearest-upscaled) | SR | HR side by side, for the first sample of `dataset`."""
    lr, hr = dataset.pair(0)
    sr = upscale(model.eval(), lr.to(device), hr.shape[-2:], data_norm=norm.scalars()).cpu()
    lr_big = F.interpolate(lr[None], size=hr.shape[-2:], mode='nearest')[0]
    return torch.cat([lr_big, sr, hr], dim=2)
