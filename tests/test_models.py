import itertools
import os

import imageio.v3 as iio
import pytest
import torch

import models
from models.upscale import upscale
from models.checkpoint import load_model
from utils.coords import make_coord
from utils.metrics import psnr
from shared import DATA, OFFICIAL_CKPT, REPO, need
from tiny_models import tiny


def liif(local_ensemble=True, feat_unfold=True, cell_decode=True):
    return tiny('liif', imnet_spec={'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [64, 64, 64]}},
                local_ensemble=local_ensemble, feat_unfold=feat_unfold, cell_decode=cell_decode)


def grid_queries(H, W, batch):
    coord = make_coord((H, W)).expand(batch, -1, -1)
    cell = torch.tensor([2 / H, 2 / W]).expand_as(coord)
    return coord, cell


@pytest.mark.parametrize('flags', list(itertools.product([True, False], repeat=3)))
@pytest.mark.parametrize('lr_size, hr_size', [((13, 17), (52, 68)),     # x4, non-square, odd
                                               ((9, 9), (22, 31)),       # x2.44 / x3.44 per axis
                                               ((16, 7), (40, 7)),       # x2.5 and x1 (ties at x2.5)
                                               ((5, 6), (33, 27))])      # x6.6 / x4.5
def test_fast_decoder_equals_plain(flags, lr_size, hr_size):
    model = liif(*flags)
    inp = torch.rand(2, 3, *lr_size) * 2 - 1
    coord, cell = grid_queries(*hr_size, batch=2)
    with torch.no_grad():
        model.gen_feat(inp)
        plain = model.query_rgb_plain(coord, cell)
        fast = model.query_rgb_fast(coord, cell)
    assert fast.shape == plain.shape == (2, hr_size[0] * hr_size[1], 3)
    assert plain.abs().max() > 1e-2  # a non-trivial output
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)


def test_without_imnet_both_forms_return_the_nearest_latent():
    model = tiny('liif', imnet_spec=None)
    inp = torch.rand(1, 3, 6, 5)
    coord, cell = grid_queries(12, 10, batch=1)
    with torch.no_grad():
        feat = model.gen_feat(inp)
        fast, plain = model.query_rgb_fast(coord, cell), model.query_rgb_plain(coord, cell)
    torch.testing.assert_close(fast, plain, atol=0, rtol=0)
    # at x2 each output pixel copies its LR pixel's latent
    expected = feat.repeat_interleave(2, -2).repeat_interleave(2, -1).flatten(2).transpose(1, 2)
    torch.testing.assert_close(fast, expected, atol=0, rtol=0)


OFFICIAL_KEYS = {
    'edsr-baseline': ['sub_mean.weight', 'add_mean.bias', 'head.0.weight', 'body.0.body.0.weight',
                      'body.15.body.2.bias', 'body.16.weight', 'tail.0.0.weight', 'tail.0.2.weight', 'tail.1.weight'],
    'edsr': ['body.31.body.2.weight', 'body.32.weight', 'tail.0.0.weight'],
    'rdn': ['SFENet1.weight', 'SFENet2.bias', 'RDBs.15.convs.7.conv.0.weight', 'RDBs.0.LFF.weight',
            'GFF.0.weight', 'GFF.1.bias', 'UPNet.0.weight', 'UPNet.2.weight', 'UPNet.4.weight'],
}


@pytest.mark.parametrize('name', sorted(OFFICIAL_KEYS))
def test_encoders_keep_official_parameter_names(name):
    encoder = models.make({'name': name, 'args': {'scale': 4}})
    keys = encoder.state_dict().keys()
    assert set(OFFICIAL_KEYS[name]) <= keys
    out = encoder(torch.rand(1, 3, 5, 6))
    assert out.shape == (1, 3, 20, 24)


def test_encoder_shapes_and_sizes():
    edsr_b = models.make({'name': 'edsr-baseline', 'args': {'no_upsampling': True}})
    assert edsr_b.out_dim == 64 and len(edsr_b.body) == 17
    # 1,220,440 parameters in the official EDSR-baseline, of which the two MeanShift convs' 24 are frozen
    assert sum(p.numel() for p in edsr_b.parameters()) == 1_220_440
    assert sum(p.numel() for p in edsr_b.parameters() if p.requires_grad) == 1_220_416
    rdn = models.make({'name': 'rdn', 'args': {'no_upsampling': True}})
    assert rdn.out_dim == 64 and len(rdn.RDBs) == 16 and len(rdn.RDBs[0].convs) == 8
    assert rdn(torch.rand(1, 3, 7, 9)).shape == (1, 64, 7, 9)
    rdn_a = models.make({'name': 'rdn', 'args': {'no_upsampling': True, 'RDNconfig': 'A'}})
    assert len(rdn_a.RDBs) == 20 and len(rdn_a.RDBs[0].convs) == 6


def test_mlp_keys_and_shape():
    mlp = models.make({'name': 'mlp', 'args': {'in_dim': 580, 'out_dim': 3, 'hidden_list': [256] * 4}})
    assert list(mlp.state_dict()) == [f'layers.{i}.{p}' for i in (0, 2, 4, 6, 8) for p in ('weight', 'bias')]
    assert mlp(torch.rand(2, 7, 580)).shape == (2, 7, 3)
    assert sum(p.numel() for p in mlp.parameters()) == 346_883


def test_unknown_model_name_lists_registered_names():
    with pytest.raises(KeyError, match="unknown model 'edsr-huge'.*edsr-baseline.*liif.*rdn"):
        models.make({'name': 'edsr-huge', 'args': {}})


def read(path):
    return torch.from_numpy(iio.imread(path)).permute(2, 0, 1).float() / 255


SHIPPED = os.path.join(REPO, 'save', 'pretrained')


@pytest.mark.parametrize('path, name, expected', [
    (OFFICIAL_CKPT, 'liif', 32.2375),  # the official implementation's mean on Set5 x4
    # the shipped weights, as their model card says
    pytest.param(f'{SHIPPED}/edsr-baseline-liif.pth', 'liif', 31.8343, marks=pytest.mark.slow),
    pytest.param(f'{SHIPPED}/edsr-baseline-lmliif.pth', 'lmliif', 31.6534, marks=pytest.mark.slow),
], ids=['official', 'shipped', 'shipped-lmliif'])
def test_checkpoint_loads_strictly_and_reproduces_its_set5_x4(path, name, expected):
    model = load_model(need(path))
    assert isinstance(model, models.models.registry.entries[name])
    values = []
    for image in ('baby', 'bird', 'butterfly', 'head', 'woman'):
        lr = read(need(f'{DATA}/benchmark/Set5/LR_bicubic/X4/{image}x4.png'))
        hr = read(need(f'{DATA}/benchmark/Set5/HR/{image}.png'))
        hr = hr[:, :lr.shape[1] * 4, :lr.shape[2] * 4]
        values.append(psnr(upscale(model, lr, hr.shape[-2:]), hr, shave=4, y_channel=True))
    assert min(values) >= 26.5 and values[1] >= 30, values  # bird; butterfly is the hardest (LIIFs 27.9, LM-LIIF 26.9)
    assert abs(sum(values) / len(values) - expected) < 1e-3, values


@pytest.mark.parametrize('shape, kwargs, message', [((1, 8, 8), {}, r'one RGB image.*\(1, 8, 8\)'),
                                                    ((2, 3, 8, 8), {}, r'one RGB image'),
                                                    ((3, 8, 8), {'tile': 0}, r'positive tile'),
                                                    ((3, 8, 8), {'size': (0, 5)}, r'positive tile, chunk and size')])
def test_upscale_rejects_bad_arguments(shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        upscale(liif(), torch.rand(shape), **{'size': (16, 16), **kwargs})


def test_upscale_image_keeps_grayscale_and_alpha():
    from models.upscale import upscale_image
    model = liif()
    gray, alpha = torch.rand(1, 9, 7), torch.rand(1, 9, 7)
    pixels, up_alpha = upscale_image(model, gray, alpha, (20, 15))
    assert pixels.shape == up_alpha.shape == (1, 20, 15)
    torch.testing.assert_close(pixels, upscale(model, gray.expand(3, -1, -1), (20, 15)).mean(0, keepdim=True))
    torch.testing.assert_close(up_alpha, upscale(model, alpha.expand(3, -1, -1), (20, 15)).mean(0, keepdim=True))
    _, opaque = upscale_image(model, torch.rand(3, 9, 7), torch.ones(1, 9, 7), (20, 15))
    assert torch.equal(opaque, torch.ones(1, 20, 15))
