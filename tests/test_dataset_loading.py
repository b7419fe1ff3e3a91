"""datasets/loading.py: EpochSampler's order and shares across ranks, and make_sr_dataset from a
config (its seed; wrapper arguments it cannot use, named by config key)."""
import pytest

from dataset_helpers import CPU, folder, noise
from datasets.loading import EpochSampler, make_sr_dataset
from utils.config import ConfigError
from utils.dist import DistInfo


def ranks(n, world, seed=0, shuffle=True, pad=True, epoch=0):
    out = []
    for r in range(world):
        sampler = EpochSampler(n, DistInfo(r, world, CPU), seed, shuffle=shuffle, pad=pad)
        sampler.set_epoch(epoch)
        keys = list(sampler)
        assert len(sampler) == len(keys)
        assert all(isinstance(k, tuple) and k[0] == epoch and type(k[1]) is int for k in keys)
        out.append([i for _, i in keys])
    return out


def test_epoch_sampler_single_process():
    (a,) = ranks(10, 1, epoch=0)
    (b,) = ranks(10, 1, epoch=1)
    assert sorted(a) == sorted(b) == list(range(10))
    assert a != b and a != list(range(10))
    assert ranks(10, 1, epoch=1) == [b]
    assert ranks(10, 1, seed=5, epoch=1) != [b]
    assert ranks(10, 1, shuffle=False, pad=False) == [list(range(10))]


def test_epoch_sampler_two_ranks():
    r0, r1 = ranks(8, 2, epoch=3)
    assert len(r0) == len(r1) == 4
    assert not set(r0) & set(r1)
    assert sorted(r0 + r1) == list(range(8))
    (whole,) = ranks(8, 1, epoch=3)  # the same permutation, split element by element
    assert r0 == whole[0::2] and r1 == whole[1::2]
    assert ranks(8, 2, epoch=4) != [r0, r1]

    r0, r1 = ranks(7, 2, epoch=3, pad=False)
    assert (len(r0), len(r1)) == (4, 3) and sorted(r0 + r1) == list(range(7))

    r0, r1 = ranks(7, 2, epoch=3, pad=True)  # padded from the start of the permutation
    (whole,) = ranks(7, 1, epoch=3)
    assert len(r0) == len(r1) == 4
    assert set(r0 + r1) == set(range(7))
    assert r0 == whole[0::2] and r1 == whole[1::2] + [whole[0]]

    r = ranks(5, 4, pad=True)
    assert [len(x) for x in r] == [2] * 4 and set(sum(r, [])) == set(range(5))


def test_make_sr_dataset(tmp_path):
    root = folder(tmp_path / 'i', {'a.png': noise((30, 30, 3))})
    cfg = {'train_dataset': {
        'dataset': {'name': 'image-folder', 'args': {'root_path': root, 'repeat': 2}},
        'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'inp_size': 8, 'scale_max': 3}}}}
    ds = make_sr_dataset(cfg, 'train_dataset', seed=7)
    assert type(ds).__name__ == 'SRImplicitDownsampled' and ds.seed == 7 and len(ds) == 2
    assert ds[0]['inp'].shape == (3, 8, 8)
    cfg['train_dataset']['wrapper']['args']['seed'] = 3
    assert make_sr_dataset(cfg, 'train_dataset', seed=7).seed == 3


@pytest.mark.parametrize('name, args, message', [
    ('sr-implicit-downsampled', {'scale_max': -1}, 'scale_max -1: expected a number >= scale_min (1)'),
    ('sr-implicit-downsampled', {'scale_min': 2, 'scale_max': 1.5}, 'scale_max 1.5: expected a number >= scale_min (2)'),
    ('sr-implicit-downsampled', {'scale_min': 0.5}, 'scale_min 0.5: expected a number >= 1'),
    ('sr-implicit-downsampled', {'scale_max': 'four'}, "scale_max 'four': expected a number >= scale_min"),
    ('sr-implicit-downsampled', {'inp_size': 0}, 'inp_size 0: expected a positive whole number of LR pixels'),
    ('sr-implicit-downsampled', {'inp_size': 24.5}, 'inp_size 24.5: expected a positive whole number'),
    ('sr-implicit-downsampled', {'sample_q': -5}, 'sample_q -5: expected a positive whole number of query pixels'),
    ('sr-implicit-downsampled', {'augment': 'yes'}, "augment 'yes': expected true or false"),
    ('sr-implicit-downsampled', {'fit_scale': 1}, 'fit_scale 1: expected true or false'),
    ('sr-implicit-downsampled', {'seed': -1}, 'seed -1: expected a whole number >= 0'),
    ('sr-implicit-paired', {'inp_size': -3}, 'inp_size -3: expected a positive whole number'),
    ('sr-implicit-uniform-varied', {'size_min': 10, 'size_max': 5}, 'size_max 5: expected a whole number >= size_min (10)'),
    ('sr-implicit-uniform-varied', {'size_min': 0}, 'size_min 0: expected a positive whole number'),
])
def test_bad_wrapper_args_name_their_config_key(tmp_path, name, args, message):
    """A wrapper argument it cannot use fails when the data set is made (train.py: before the run
    folder exists), with the config key, the value and what is expected."""
    root = folder(tmp_path / 'i', {'a.png': noise((30, 30, 3))})
    if name == 'sr-implicit-downsampled':
        inner = {'name': 'image-folder', 'args': {'root_path': root}}
    else:
        inner = {'name': 'paired-image-folders', 'args': {'root_path_1': root, 'root_path_2': root}}
    cfg = {'train_dataset': {'dataset': inner, 'wrapper': {'name': name, 'args': args}}}
    with pytest.raises(ConfigError) as e:
        make_sr_dataset(cfg, 'train_dataset', seed=0)
    assert str(e.value).startswith('train_dataset.wrapper.args.' + message), str(e.value)
