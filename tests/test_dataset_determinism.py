"""The wrappers' random crops, scales and flips are a function of the (epoch, index) key and the
seed: the same sample whatever was drawn before, and the same batches with data-loading workers."""
import random

import numpy as np
import torch

from dataset_helpers import CPU, image_folder, same_sample, wrapper
from datasets.loading import EpochSampler
from utils.dist import DistInfo


def test_deterministic_by_key(big_image):
    root, _ = big_image

    def make(**args):
        return wrapper('sr-implicit-downsampled', image_folder(root, repeat=8), inp_size=16, scale_min=1,
                       scale_max=4, augment=True, sample_q=64, **args)

    ds, twin = make(), make()
    a = ds[(3, 5)]
    for k in range(4):  # other samples drawn in between
        ds[(k, k)]
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    assert same_sample(a, ds[(3, 5)])
    assert same_sample(a, twin[(3, 5)])
    assert not torch.equal(a['inp'], ds[(4, 5)]['inp'])  # another epoch: another crop
    assert not torch.equal(a['inp'], ds[(3, 6)]['inp'])
    assert same_sample(ds[5], ds[(0, 5)])
    assert same_sample(ds[np.int64(5)], ds[(0, 5)])
    other_seed = make(seed=1)
    assert not torch.equal(a['inp'], other_seed[(3, 5)]['inp'])
    assert same_sample(make(seed=1)[(3, 5)], other_seed[(3, 5)])


def test_dataloader_workers_same_batches(big_image):
    root, _ = big_image
    ds = wrapper('sr-implicit-downsampled', image_folder(root, repeat=6), inp_size=8, scale_min=1,
                 scale_max=3, augment=True, sample_q=32)
    info = DistInfo(0, 1, CPU)

    def batches(workers):
        sampler = EpochSampler(len(ds), info, seed=0, shuffle=True, pad=True)
        sampler.set_epoch(2)
        loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers)
        return list(loader)

    zero = batches(0)
    assert len(zero) == 2 and zero[0]['inp'].shape == (3, 3, 8, 8) and zero[0]['gt'].shape == (3, 32, 3)
    two = batches(2)
    assert len(two) == len(zero) and all(same_sample(a, b) for a, b in zip(zero, two))
