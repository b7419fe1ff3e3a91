"""Building the configured data sets and their loaders: a config entry {dataset, wrapper,
batch_size} -> wrapper data set -> DataLoader over this process's share, epoch by epoch."""
import math
import os

import numpy as np
from torch.utils.data import DataLoader, Sampler

from utils.config import ConfigError, get_key, is_whole
from utils.errors import first_line
from .datasets import ArgError, DataError, make


def make_sr_dataset(cfg, key, seed):
    """The wrapper data set of config entry `key` ({dataset: spec, wrapper: spec, ...})."""
    spec = get_key(cfg, key)
    wrapper_args = {'dataset': build(spec, key, 'dataset', {})}
    if 'seed' not in (spec['wrapper'].get('args') or {}):
        wrapper_args['seed'] = seed
    return build(spec, key, 'wrapper', wrapper_args)


def build(spec, key, part, args):
    if not isinstance(spec.get(part), dict) or 'name' not in spec[part]:
        raise ConfigError(f"config key {key}.{part} missing or without a name")
    try:
        return make(spec[part], args)
    except KeyError as e:
        raise ConfigError(f"{key}.{part}: {e.args[0]}") from None
    except ArgError as e:
        raise ConfigError(f"{key}.{part}.args.{e}") from None
    except DataError as e:
        raise DataError(f"{key}: {e}") from None
    except TypeError as e:
        raise ConfigError(f"{key}.{part}: {spec[part]['name']!r} rejects its args ({first_line(e)})") from None


def use_lr_on_device(choice, dataset, device):
    """Whether training batches are finished on the device (`device_synthesis`), for config `lr_on_device`:
    'auto' (on a GPU, when the wrapper can serve HR crops only), true or false; switches the wrapper."""
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
    """(epoch, index) pairs: a permutation seeded by (seed, epoch), or the plain order, of which process
    r takes elements r, r + W, ...; with `pad` extended from its start so that every process gets as
    many (DDP needs equal steps). Samples are seeded by (epoch, index): workers live across epochs."""

    def __init__(self, n, info, seed, shuffle, pad):
        self.n, self.info, self.seed, self.shuffle, self.pad = n, info, seed, shuffle, pad
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def indices(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        if self.pad:
            order = np.resize(order, math.ceil(self.n / self.info.world_size) * self.info.world_size)
        return order[self.info.rank::self.info.world_size]

    def __iter__(self):
        return ((self.epoch, int(i)) for i in self.indices())

    def __len__(self):
        return len(self.indices())


def make_loader(dataset, cfg, key, info, seed, shuffle, num_workers=None):
    """A DataLoader over this process's share of config entry `key`; its batch_size is the global batch."""
    batch = cfg[key].get('batch_size', 1)
    if not is_whole(batch):
        raise ConfigError(f"{key}.batch_size {batch!r}: expected a positive whole number")
    if batch % info.world_size:
        raise ConfigError(f"{key}.batch_size {batch} cannot be split evenly across {info.world_size} processes")
    if num_workers is None:
        num_workers = min(8, (os.cpu_count() or 1) // info.world_size)
    sampler = EpochSampler(len(dataset), info, seed, shuffle=shuffle, pad=shuffle)
    return DataLoader(dataset, batch_size=batch // info.world_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=info.device.type == 'cuda', persistent_workers=num_workers > 0)
