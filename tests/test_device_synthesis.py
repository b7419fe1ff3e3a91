"""The device-side batch (LR synthesis, flips, sampling) equals the CPU path, bit for bit (run on the CPU)."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

import datasets
from datasets.device_synthesis import finish_batch
from datasets.loading import use_lr_on_device


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """Natural-ish images of several sizes and aspect ratios (smooth gradients plus noise)."""
    path = tmp_path_factory.mktemp('imgs')
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(200, 230), (260, 197), (193, 193), (300, 250)]):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], -1)
        img = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f'{i}.png')
    return str(path)


def wrapper(folder, **args):
    inner = datasets.make({'name': 'image-folder', 'args': {'root_path': folder, 'repeat': 4}})
    spec = {'inp_size': 48, 'scale_max': 4, 'augment': True, 'sample_q': 2304, **args}
    return datasets.make({'name': 'sr-implicit-downsampled', 'args': spec}, args={'dataset': inner})


@pytest.mark.parametrize('args', [{}, {'augment': False}, {'inp_size': 32, 'scale_min': 2, 'scale_max': 3.3},
                                  {'sample_q': 100, 'seed': 7}, {'inp_size': 60, 'fit_scale': True}])
def test_device_batch_equals_cpu_batch(folder, args):
    cpu_set, device_set = wrapper(folder, **args), wrapper(folder, **args)
    device_set.hr_only = True
    for epoch in (1, 5):
        keys = [(epoch, i) for i in range(len(cpu_set))]
        expected = default_collate([cpu_set[k] for k in keys])
        served = default_collate([device_set[k] for k in keys])
        assert set(served) == {'hr', 'hr_size', 'flips', 'keep'} and served['hr'].dtype == torch.uint8
        got = finish_batch(served, device_set.inp_size)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), (args, epoch, key)
    assert len(set(served['hr_size'].tolist())) > 1  # the batch really mixed crop sizes


def test_lr_on_device_choice(folder):
    cpu, cuda = torch.device('cpu'), torch.device('cuda')
    assert not use_lr_on_device('auto', wrapper(folder), cpu)
    ds = wrapper(folder)
    assert use_lr_on_device('auto', ds, cuda) and ds.hr_only
    assert not use_lr_on_device(False, wrapper(folder), cuda)
    whole_images = wrapper(folder, inp_size=None, sample_q=None)
    assert not use_lr_on_device('auto', whole_images, cuda) and not whole_images.hr_only
    with pytest.raises(Exception, match='lr_on_device'):
        use_lr_on_device(True, whole_images, cpu)
    with pytest.raises(Exception, match='lr_on_device'):
        use_lr_on_device('yes', wrapper(folder), cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_cuda_batch_matches_cpu_batch(folder):
    cpu_set, device_set = wrapper(folder), wrapper(folder)
    device_set.hr_only = True
    keys = [(3, i) for i in range(len(cpu_set))]
    expected = default_collate([cpu_set[k] for k in keys])
    served = {k: v.cuda() for k, v in default_collate([device_set[k] for k in keys]).items()}
    got = finish_batch(served, device_set.inp_size)
    assert torch.equal(got['inp'].cpu(), expected['inp'])  # the bicubic LR: exact on the GPU too
    for key in ('coord', 'cell', 'gt'):  # coordinates may round differently in the last bit
        torch.testing.assert_close(got[key].cpu(), expected[key], rtol=0, atol=1e-6)
