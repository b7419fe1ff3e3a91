"""The model contract (models/base.py) over every registered model, from one table of tiny specs
(tests/tiny_models.py): the fast form equals the paper's equations, gradients flow through it,
tiled whole-image inference equals one forward, compiled equals eager, and weights survive a
strict state-dict and an official-format checkpoint round trip. A family or an encoder that
registers adds its line to the table and needs no test code here."""
import pytest
import torch

import models
from models.base import LocalImplicitSR
from models.checkpoint import load_model, save_checkpoint
from models.cmsr import CMSR
from models.upscale import upscale
from utils.coords import make_coord
from utils.speedups import compile_unsupported
from tiny_lmliif import quartile_table
from tiny_models import DECODERS, ENCODERS, PARTS, encoder_spec, spec, tiny

TOL = 1e-5

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: a second thread only adds contention


def queries(B=2, Q=150, seed=0):
    """Corners, edges and random points; one cell per image (x2.2 by x2.8, x1.1 by x1.4 of 9 x 11)."""
    gen = torch.Generator().manual_seed(seed)
    corners = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [-1.0, 0.3]])
    coord = torch.cat([corners.expand(B, -1, -1), torch.rand(B, Q - len(corners), 2, generator=gen) * 2 - 1], dim=1)
    cell = torch.tensor([[2 / 20, 2 / 31], [2 / 10, 2 / 15]])[:B].unsqueeze(1).expand(B, Q, 2)
    return torch.rand(B, 3, 9, 11, generator=gen) * 2 - 1, coord, cell.contiguous()


def whole_output(model, inp, size):
    """One official forward over the whole output grid, as upscale() returns it (3, H, W) in [0, 1]."""
    coord = make_coord(size).unsqueeze(0)
    cell = torch.tensor([2 / size[0], 2 / size[1]]).expand_as(coord)
    with torch.no_grad():
        pred = model(((inp - 0.5) / 0.5).unsqueeze(0), coord, cell)
    return (pred[0] * 0.5 + 0.5).clamp(0, 1).t().reshape(3, *size)


def test_every_registered_model_is_in_the_table():
    registered = set(models.models.registry.entries)
    listed = set(ENCODERS) | set(DECODERS) | set(PARTS)
    assert registered - listed == set(), "registered but missing from tests/tiny_models.py"
    assert listed - registered == set(), "in tests/tiny_models.py but not registered"


@pytest.mark.parametrize('name', sorted(ENCODERS))
def test_encoders_declare_the_contract(name):
    torch.manual_seed(0)
    encoder = models.make(encoder_spec(name)).eval()
    assert isinstance(encoder.window, int) and encoder.window >= 1
    assert encoder.receptive_radius is None or isinstance(encoder.receptive_radius, int)
    x = torch.rand(1, 3, 2 * encoder.window, 3 * encoder.window)
    with torch.no_grad():
        assert encoder(x).shape == (1, encoder.out_dim, *x.shape[-2:])


@pytest.mark.parametrize('name', sorted(DECODERS))
@torch.no_grad()
def test_fast_form_equals_the_equations(name):
    model = tiny(name).eval()
    assert isinstance(model, LocalImplicitSR)
    inp, coord, cell = queries()
    model.decoder = 'plain'
    plain = model(inp, coord, cell)
    assert plain.shape == (2, coord.shape[1], 3) and plain.std() > 1e-2  # a non-trivial output
    model.decoder = 'fast'
    assert (model(inp, coord, cell) - plain).abs().max() < TOL
    assert (model(inp, coord, cell, bsize=40) - plain).abs().max() < TOL  # in chunks


@pytest.mark.parametrize('name', sorted(name for name in DECODERS if tiny(name).supports_cmsr))
@torch.no_grad()
def test_a_masked_grid_render_equals_its_points_one_by_one(name):
    """CMSR decodes a level's selected points in runs of rows (`render_grid` with a mask): the
    same values as rendering the points one by one, for any mask (runs cut where it changes)."""
    model = tiny(name).eval()
    inp = queries()[0][:1]
    model.gen_feat(inp)
    ys, xs = make_coord((23, 29), flatten=False)[:, 0, 0], make_coord((23, 29), flatten=False)[0, :, 1]
    mask = torch.rand(23, 29, generator=torch.Generator().manual_seed(1)) < 0.4
    mask[5:9] = mask[5]  # rows with one mask, as the rows over one LR row in CMSR
    cell, hyper_cell = torch.tensor([2 / 23, 2 / 29]), torch.tensor([[[2 / 23, 2 / 29]]])
    for decoder in ('fast', 'plain'):
        model.decoder = decoder
        masked = model.render_grid(ys, xs, cell, hyper_cell, mask=mask)
        coord = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1)[mask].unsqueeze(0)
        points = model.render_points(coord, cell.expand_as(coord), hyper_cell)[0]
        assert masked.shape == (int(mask.sum()), 3) and (masked - points).abs().max() < TOL, decoder
        assert (model.render_grid(ys, xs, cell, hyper_cell)[mask] - points).abs().max() < TOL, decoder


@pytest.mark.parametrize('name', sorted(DECODERS))
def test_gradients_of_the_fast_form_equal_the_equations(name):
    model = tiny(name).train()
    inp, coord, cell = queries(seed=1)
    grads = {}
    for form in ('plain', 'fast'):
        model.zero_grad()
        model.decoder = form
        model(inp, coord, cell).square().mean().backward()
        grads[form] = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert grads['fast'].keys() == grads['plain'].keys() == trainable  # every trained weight is reached
    for k in trainable:
        assert grads['plain'][k].abs().max() > 0, k
        torch.testing.assert_close(grads['fast'][k], grads['plain'][k], atol=1e-5, rtol=1e-4, msg=k)


@pytest.mark.parametrize('name', sorted(DECODERS))
def test_tables_made_without_gradients_are_not_reused_when_they_are_wanted(name):
    model = tiny(name).train()
    inp, coord, cell = queries(seed=2)
    model.gen_feat(inp)
    with torch.no_grad():
        model.query_rgb(coord, cell)
    model.query_rgb(coord, cell).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize('name', sorted(DECODERS))
@pytest.mark.parametrize('size', [(111, 87), (20, 15)])  # x3 by x3, and a downscale
def test_tiled_upscale_equals_one_forward(name, size):
    model = tiny(name).eval()
    inp = torch.rand(3, 37, 29, generator=torch.Generator().manual_seed(2))
    whole = whole_output(model, inp, size)
    assert (upscale(model, inp, size, tile=1000) - whole).abs().max() < TOL
    tiled = upscale(model, inp, size, tile=7, chunk=97)
    assert tiled.shape == (3, *size) and not tiled.requires_grad
    assert (tiled - whole).abs().max() < TOL


@pytest.mark.parametrize('name', sorted(DECODERS))
def test_bf16_autocast_is_close_to_float32(name):
    model = tiny(name).eval()
    inp = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(4))
    fp32 = upscale(model, inp, (30, 25))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        bf16 = upscale(model, inp, (30, 25))
    assert bf16.dtype == torch.float32 and 0 < (bf16 - fp32).abs().max() < 0.05


@pytest.mark.parametrize('encoder', sorted(ENCODERS))
def test_tiled_upscale_equals_one_forward_for_every_encoder(encoder):
    """Tiles of 8 LR pixels cropped with the encoder's receptive radius (and window alignment)."""
    model = tiny('liif', encoder).eval()
    inp = torch.rand(3, 48, 44, generator=torch.Generator().manual_seed(3))
    whole = upscale(model, inp, (96, 110), tile=1000)
    assert (upscale(model, inp, (96, 110), tile=8, chunk=500) - whole).abs().max() < TOL
    if model.encoder.window == 1:  # window encoders are padded first, as their official evaluation
        assert (whole - whole_output(model, inp, (96, 110))).abs().max() < TOL


def test_an_encoder_that_upsamples_is_encoded_whole():
    """Its features are not on the input's grid (receptive_radius None): one tile, the features' grid."""
    torch.manual_seed(0)
    model = models.make({'name': 'liif', 'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': False, 'scale': 2, 'n_resblocks': 1,
                                                            'n_feats': 8}},
        'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}}}).eval()
    assert model.encoder.receptive_radius is None
    inp = torch.rand(3, 11, 9, generator=torch.Generator().manual_seed(5))
    assert (upscale(model, inp, (33, 27), tile=4) - whole_output(model, inp, (33, 27))).abs().max() < TOL


@pytest.mark.parametrize('name', sorted(DECODERS))
@torch.no_grad()
def test_strict_state_dict_round_trip(name):
    model, other = tiny(name).eval(), tiny(name, seed=1).eval()
    inp, coord, cell = queries()
    expected = model(inp, coord, cell)
    assert (other(inp, coord, cell) - expected).abs().max() > 1e-3
    other.load_state_dict(model.state_dict(), strict=True)
    assert list(other.state_dict()) == list(model.state_dict())
    assert torch.equal(other(inp, coord, cell), expected)


@pytest.mark.parametrize('name', sorted(DECODERS))
@torch.no_grad()
def test_official_format_checkpoint_round_trip(name, tmp_path):
    model = tiny(name).eval()
    save_checkpoint(str(tmp_path / 'model.pth'), spec(name), model)
    ckpt = torch.load(tmp_path / 'model.pth', weights_only=True)
    assert set(ckpt) == {'model'} and ckpt['model']['name'] == name and set(ckpt['model']) == {'name', 'args', 'sd'}
    loaded = load_model(str(tmp_path / 'model.pth'))
    assert type(loaded) is type(model) and not loaded.training
    inp, coord, cell = queries()
    assert torch.equal(loaded(inp, coord, cell), model(inp, coord, cell))


@pytest.mark.slow
@pytest.mark.parametrize('name, backend', [(name, {'liif': 'inductor', 'lmliif': 'aot_eager'}.get(name, 'eager'))
                                           for name in sorted(DECODERS)])
def test_compiled_decoder_equals_eager(name, backend):
    """compile_decoder (test.py/demo.py --compile): the same images, tiles of any position and
    size sharing a few graphs (the window geometry is an argument, not a constant). Inductor's
    code generation takes a minute a model on 2 cores, AOT autograd's tracing 10 s: one family
    goes through inductor, one (latent-modulated, with CMSR) through AOT autograd, the others
    through dynamo's graphs run eagerly (what decides how a decoder traces and how many graphs)."""
    if compile_unsupported(torch.device('cpu')):
        pytest.skip(compile_unsupported(torch.device('cpu')))
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    model = tiny(name).eval()
    inp, coord, cell = queries()
    images = [(torch.rand(3, 37, 29), (111, 87)), (torch.rand(3, 20, 26), (50, 61))]
    def run():
        outs = [model(inp, coord, cell)] + [upscale(model, x, size, tile=8, chunk=300) for x, size in images]
        if model.supports_cmsr:  # CMSR's levels go through the compiled form too
            lr = ((images[0][0] - 0.5) / 0.5).unsqueeze(0)
            model.cmsr = CMSR(quartile_table(model, lr, torch.tensor([2 / (37 * 6), 2 / (29 * 6)])))
            outs.append(upscale(model, images[0][0], (37 * 6, 29 * 6)))
            assert model.cmsr.last['levels'] == [1, 2, 4, 6]
            model.cmsr = None
        return outs

    with torch.no_grad():
        eager = run()
        model.compile_decoder(backend)
        compiled = run()
    for out, expected in zip(compiled, eager):
        assert (out - expected).abs().max() < TOL
    assert 1 <= counters['stats']['unique_graphs'] <= 6
