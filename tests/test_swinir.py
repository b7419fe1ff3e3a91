"""The SwinIR encoder (models/swinir.py) against the official LTE code's dump
(shared/reference/swinir: a small SwinIR, seed 0, attention weights scaled up so every slip shows),
its official defaults, and the tiling contract (`window`, `receptive_radius`)."""
import json
import os

import pytest
import torch

import models
import models.swinir
from models.checkpoint import save_checkpoint
from models.swinir import shifted_window_mask, swinir_radius
from models.upscale import upscale
from PIL import Image
from cli import load_script, run_main
from shared import need, SHARED
from tiny_models import spec

REF = os.path.join(SHARED, 'reference', 'swinir')
SMALL = {'embed_dim': 24, 'depths': [2, 1], 'num_heads': [2, 3]}  # the dump's encoder args

pytestmark = pytest.mark.usefixtures('one_thread')


def load(name):
    return torch.load(need(os.path.join(REF, name)), weights_only=True)


def encoder_sd():
    return {k[len('encoder.'):]: v for k, v in load('sd.pt').items() if k.startswith('encoder.')}


def dump_encoder(seed=0):
    spec = json.load(open(need(os.path.join(REF, 'spec.json'))))['args']['encoder_spec']
    torch.manual_seed(seed)
    return models.make(spec)


def gained_small_encoder(**args):
    """The dump's small encoder, seed 0, with the dump's gains (qkv/proj/fc x10, bias tables x50)
    so that the attention visibly reaches the features; needs no shared file."""
    torch.manual_seed(0)
    enc = models.make({'name': 'swinir', 'args': {**SMALL, **args}})
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if name.endswith(('qkv.weight', 'proj.weight', 'fc1.weight', 'fc2.weight')):
                p.mul_(10)
            elif name.endswith('relative_position_bias_table'):
                p.mul_(50)
    return enc.eval()


def test_matches_official_dump():
    enc = dump_encoder().eval()
    enc.load_state_dict(encoder_sd(), strict=True)
    with torch.no_grad():
        out = enc(load('enc_inp.pt'))   # 10 x 13: reflect-padded to 16 x 16, never cropped back
        feat = enc(load('inp.pt'))      # 16 x 24
    ref_out, ref_feat = load('enc_out.pt'), load('feat.pt')
    assert out.shape == ref_out.shape == (1, 64, 16, 16)
    assert feat.shape == ref_feat.shape == (1, 64, 16, 24)
    assert (out - ref_out).abs().max() < 1e-5
    assert (feat - ref_feat).abs().max() < 1e-5
    # the stored masks (for img_size 48) are the ones this file computes
    assert torch.equal(enc.layers[0].residual_group.blocks[1].attn_mask, shifted_window_mask(48, 48, 8, 4))


def test_other_seed_round_trip():
    enc = dump_encoder(seed=1).eval()
    x = load('enc_inp.pt')
    with torch.no_grad():
        before = enc(x)
        enc.load_state_dict(encoder_sd(), strict=True)
        after = enc(x)
    assert (before - load('enc_out.pt')).abs().max() > 1e-2  # the seed did matter
    assert (after - load('enc_out.pt')).abs().max() < 1e-5
    sd = enc.state_dict()
    assert sd.keys() == encoder_sd().keys()
    assert all(torch.equal(sd[k], v) for k, v in encoder_sd().items())


def test_official_defaults():
    torch.manual_seed(0)
    enc = models.make({'name': 'swinir', 'args': {}})
    assert sum(p.numel() for p in enc.parameters()) == 11_603_044
    assert (enc.out_dim, enc.window) == (64, 8)
    assert enc.receptive_radius == 1 + 36 * 7 + 6 + 2 + 8 == swinir_radius([6] * 6, 8)
    sd = enc.state_dict()
    index = [k for k in sd if k.endswith('relative_position_index')]
    masks = [k for k in sd if k.endswith('attn_mask')]
    assert len(index) == 36 and all(sd[k].shape == (64, 64) and sd[k].dtype == torch.int64 for k in index)
    assert len(masks) == 18 and all(sd[k].shape == (36, 64, 64) and sd[k].dtype == torch.float32 for k in masks)
    assert all(int(k.split('.')[4]) % 2 == 1 for k in masks)  # layers.i.residual_group.blocks.j
    assert sum(b.numel() for b in enc.buffers()) == 2_801_664
    assert sd['layers.5.residual_group.blocks.5.attn.relative_position_bias_table'].shape == (225, 6)
    assert sd['conv_before_upsample.0.weight'].shape == (64, 180, 3, 3)
    assert sd['layers.0.residual_group.blocks.0.mlp.fc1.weight'].shape == (360, 180)
    # stochastic depth: linear 0 -> 0.1 over the 36 blocks, the first one an identity
    rates = [getattr(b.drop_path, 'p', 0.) for layer in enc.layers for b in layer.residual_group.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.1, 36).tolist())
    assert isinstance(enc.layers[0].residual_group.blocks[0].drop_path, torch.nn.Identity)


def test_rejects_other_upsamplers():
    with pytest.raises(ValueError, match='encoder only'):
        models.make({'name': 'swinir', 'args': {**SMALL, 'upsampler': 'pixelshuffle'}})


def crop_features(enc, x, rows, cols, top=None, left=None):
    """Features over rows x cols (kept region) from one crop with `receptive_radius` margin,
    clamped at the image, its top/left floored to a multiple of `window` unless given.
    Returns them and whether the crop reaches the bottom and the right edge."""
    h, w = x.shape[-2:]
    r, win = enc.receptive_radius, enc.window
    top = max(0, rows[0] - r) // win * win if top is None else top
    left = max(0, cols[0] - r) // win * win if left is None else left
    bottom, right = min(h, rows[1] + r), min(w, cols[1] + r)
    assert rows[0] - top >= r or top == 0
    assert cols[0] - left >= r or left == 0
    with torch.no_grad():
        f = enc(x[..., top:bottom, left:right])
    return f[..., rows[0] - top:rows[1] - top, cols[0] - left:cols[1] - left], (bottom == h, right == w)


def test_tiled_equals_whole():
    enc = gained_small_encoder()
    assert enc.receptive_radius == 34
    torch.manual_seed(1)
    x = torch.rand(1, 3, 40, 52) * 2 - 1
    with torch.no_grad():
        whole = enc(x)                                   # 40 x 56 features (52 padded to 56)
    assert whole.shape == (1, 64, 40, 56)
    # crop [0,38) x [0,44): reaches neither edge (its own reflect padding is wrong content)
    f, edges = crop_features(enc, x, (0, 4), (0, 10))
    assert edges == (False, False)
    assert (f - whole[..., 0:4, 0:10]).abs().max() < 1e-5
    # crop [0,40) x [8,52): aligned left corner 8, reaches the bottom and the right edge;
    # there even the features of the padded columns 52..55 agree
    f, edges = crop_features(enc, x, (0, 40), (42, 56))
    assert edges == (True, True)
    assert (f - whole[..., 0:40, 42:56]).abs().max() < 1e-5
    # the same kept region from a crop whose left corner (4) is not a window multiple: the
    # windows no longer line up with the whole image's, although the margin is larger
    f, _ = crop_features(enc, x, (0, 40), (42, 52), left=4)
    assert (f - whole[..., 0:40, 42:52]).abs().max() > 1e-2


def test_drop_path_train_mode_only():
    enc = gained_small_encoder(drop_path_rate=0.5)
    plain = gained_small_encoder(drop_path_rate=0.)
    plain.load_state_dict(enc.state_dict(), strict=True)
    x = torch.rand(4, 3, 8, 16) * 2 - 1
    with torch.no_grad():
        evals = enc(x), enc(x), plain(x)
        torch.manual_seed(0)
        train = enc.train()(x)
        plain_train = plain.train()(x)
    assert torch.equal(evals[0], evals[1]) and torch.equal(evals[0], evals[2])
    assert torch.equal(plain_train, evals[2])        # no other randomness at the default drop rates
    assert (train - evals[0]).abs().max() > 1e-2     # DropPath acts in train mode


@pytest.mark.parametrize('size', [(1, 1), (1, 6), (4, 4), (3, 5)])
def test_images_under_half_a_window_upscale(size, tmp_path):
    """The official padding mirrors an image once (2 n pixels), too few for a window of 8 when
    n < 4, and its reflection padding then fails; upscale() mirrors again until the window fills."""
    model = models.make(spec('liif', 'swinir')).eval()
    model.encoder = gained_small_encoder(window_size=8)  # the official window
    lr = torch.rand(3, *size, generator=torch.Generator().manual_seed(0))
    out = upscale(model, lr, (size[0] * 4, size[1] * 4))
    assert out.shape == (3, size[0] * 4, size[1] * 4) and torch.isfinite(out).all()
    # and demo.py, end to end (the tiny SwinIR's window is 4)
    save_checkpoint(str(tmp_path / 'swinir.pth'), spec('liif', 'swinir'), models.make(spec('liif', 'swinir')))
    Image.fromarray((lr.permute(1, 2, 0).numpy() * 255).astype('uint8')).save(tmp_path / 'tiny.png')
    proc = run_main(load_script('demo'), '--input', tmp_path / 'tiny.png', '--output', tmp_path / 'out.png',
                    '--scale', '3', '--model', tmp_path / 'swinir.pth', '--device', 'cpu')
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / 'out.png').size == (size[1] * 3, size[0] * 3)
