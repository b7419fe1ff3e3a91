"""LM-LIIF (models/lmliif.py, lmmlp.py, cmsr.py) against a dump of the official LMF code
(shared/reference/lmliif: random-init weights, inputs and the official outputs), and the fast
decoder against the equations written out here, on other random weights."""
import copy
import functools
import itertools
import json
import os

import pytest
import torch
import torch.nn.functional as F

import models
from models.upscale import upscale
from utils.coords import make_coord
from shared import SHARED, need

REF = os.path.join(SHARED, 'reference', 'lmliif')
TOL = 1e-5


pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: a second thread only adds contention


def ref(name):
    return torch.load(need(os.path.join(REF, name)), weights_only=True)


def official_spec(cmsr_spec=None):
    with open(need(os.path.join(REF, 'spec.json'))) as f:
        spec = json.load(f)
    if cmsr_spec is not None:
        spec['args']['cmsr_spec'] = cmsr_spec
    return spec


@functools.lru_cache(maxsize=1)
def loaded_official_model():
    model = models.make(official_spec())
    model.load_state_dict(ref('sd.pt'), strict=True)
    return model


def official_model(cmsr_spec=None):
    """A fresh copy of the official model with the dump's weights (built and loaded once)."""
    model = copy.deepcopy(loaded_official_model())
    model.cmsr_spec = cmsr_spec  # what the constructor does with it
    return model.eval()


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def cmsr_tables(which):
    with open(need(os.path.join(REF, 'info.json'))) as f:
        tables = json.load(f)['cmsr_tables']
    key = next(k for k in tables if k.startswith(which))
    # JSON keys are strings; the official YAML tables have numbers
    return {float(s): {float(d): t for d, t in table.items()} for s, table in tables[key].items()}


# --- the official dump ----------------------------------------------------------------------

def test_state_dict_loads_strictly_with_official_names():
    sd = ref('sd.pt')
    model = models.make(official_spec())
    assert set(model.state_dict()) == set(sd) and len(sd) == 90
    assert sum(v.numel() for v in sd.values()) == 1386091
    assert all(model.state_dict()[k].shape == v.shape for k, v in sd.items())
    model.load_state_dict(sd, strict=True)
    assert list(model.state_dict())[-2:] == ['imnet.layers.12.weight', 'imnet.layers.12.bias']


@torch.no_grad()
def test_encoder_and_modulations_match_official():
    model = official_model()
    model.gen_feat(ref('inp.pt'))
    assert max_diff(model.feat, ref('feat.pt')) < TOL
    assert max_diff(model.gen_modulations(ref('cell.pt')), ref('mod.pt')) < TOL


@torch.no_grad()
def test_outputs_match_official():
    model = official_model()
    inp, coord, cell = ref('inp.pt'), ref('coord.pt'), ref('cell.pt')
    assert model(inp) is None  # as officially: without queries, forward only encodes
    assert max_diff(model(inp, coord, cell), ref('out_full.pt')) < TOL
    assert max_diff(model(inp, coord, cell, bsize=64), ref('out_bsize64.pt')) < TOL
    model.gen_feat(inp)
    assert max_diff(model.query_rgb(coord, cell), ref('out_query_rgb_eval.pt')) < TOL
    for s in (6, 8, 12):
        assert max_diff(model.query_rgb(ref(f'x{s}_coord.pt'), ref(f'x{s}_cell.pt')), ref(f'x{s}_out_full.pt')) < TOL, s
    model.decoder = 'plain'  # the equations' form too (on other weights: the tests further down)
    assert max_diff(model.query_rgb(coord, cell), ref('out_full.pt')) < TOL
    model.decoder = 'fast'
    model.train()
    assert max_diff(model(inp, coord, cell), ref('out_train_path.pt')) < TOL


@pytest.mark.parametrize('s', [6, 8, 12])
@torch.no_grad()
def test_cmsr_matches_official_on_synthetic_table(s):
    model = official_model({'mse_threshold': 2e-5, 's2m_tables': cmsr_tables('synthetic'), 'log': True})
    out = model(ref('inp.pt'), ref(f'x{s}_coord.pt'), ref(f'x{s}_cell.pt'))
    assert max_diff(out, ref(f'x{s}_out_cmsr_synthetic.pt')) < TOL
    log = model.cmsr_log
    assert log['levels'] == ([1, 2, 4, 6])
    assert sum(log['points']) == 2735 and all(log['points'])  # every level renders (info.json)
    with open(os.path.join(REF, 'info.json')) as f:
        official = json.load(f)['cmsr'][f'x{s}_synthetic']['valid_mask_ratio(total_q/total_qn)']
    assert log['official_ratio'] == pytest.approx(official, rel=1e-9)


@torch.no_grad()
def test_cmsr_with_empty_last_level_returns_the_full_grid():
    """Shipped table, random weights: every pixel goes to decode scale 1 and the last level (6)
    is empty. The official code then returns the (1, 3, 12, 16) level-1 image; ours resamples it
    onto the last level's grid like any level, giving (1, 6912, 3)."""
    cmsr_spec = {'mse_threshold': 2e-5, 's2m_tables': cmsr_tables('shipped'), 'log': True}
    model = models.make(official_spec(cmsr_spec))  # built as test.py builds it, cmsr_spec in the spec
    model.load_state_dict(ref('sd.pt'), strict=True)
    model.eval()
    out = model(ref('inp.pt'), ref('x6_coord.pt'), ref('x6_cell.pt'))
    assert out.shape == (1, 72 * 96, 3)
    assert model.cmsr_log['points'] == [192, 0, 0, 0]
    official = ref('x6_out_cmsr_shipped.pt')
    assert official.shape == (1, 3, 12, 16)
    # the last level's grid: the LR centre grid bilinearly resized to 72 x 96 (border clamped)
    lr_grid = make_coord((12, 16), flatten=False).permute(2, 0, 1).unsqueeze(0)
    grid = F.interpolate(lr_grid, size=(72, 96), mode='bilinear', align_corners=False).permute(0, 2, 3, 1)
    expected = F.grid_sample(official, grid.flip(-1), mode='bilinear', padding_mode='border', align_corners=False)
    assert max_diff(out, expected.flatten(2).permute(0, 2, 1)) < TOL


@torch.no_grad()
def test_cmsr_only_in_eval_with_more_than_16_queries_per_pixel():
    cmsr_spec = {'mse_threshold': 2e-5, 's2m_tables': cmsr_tables('synthetic')}
    model = official_model(cmsr_spec)
    inp = ref('inp.pt')
    model.train()
    assert max_diff(model(inp, ref('x6_coord.pt'), ref('x6_cell.pt')), ref('x6_out_full.pt')) < TOL
    model.eval()
    coord = make_coord((48, 64)).unsqueeze(0)  # x4: exactly 16 queries per LR pixel
    cell = torch.tensor([2 / 48, 2 / 64]).expand_as(coord)
    plain_model = official_model()
    assert max_diff(model(inp, coord, cell), plain_model(inp, coord, cell)) == 0
    with pytest.raises(ValueError, match='batch size 1'):
        model(inp.expand(2, -1, -1, -1), ref('x6_coord.pt').expand(2, -1, -1), ref('x6_cell.pt').expand(2, -1, -1))


# --- other random weights: fast decoder vs the equations written out here ------------------------

def small_spec(local_ensemble=True, feat_unfold=True):
    return {'name': 'lmliif', 'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True, 'n_resblocks': 1, 'n_feats': 8}},
        'imnet_spec': {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': 16, 'hidden_depth': 4,
                                                 'mod_scale': True, 'mod_shift': True}},
        'hypernet_spec': {'name': 'mlp', 'args': {'out_dim': 1, 'hidden_list': [48, 40]}},
        'local_ensemble': local_ensemble, 'feat_unfold': feat_unfold, 'cell_decode': True, 'mod_input': True}}


def equations(model, inp, coord, cell):
    """LM-LIIF as LMF.md writes it: hypernet per LR pixel on [unfolded feat || cell of query p
    (official rule) * (h, w)], then per member nearest modulations, render MLP, area blend."""
    feat = model.encoder(inp)
    B, C, h, w = feat.shape
    rich = F.unfold(feat, 3, padding=1) if model.feat_unfold else feat.flatten(2)
    size = torch.tensor([h, w], dtype=torch.float32)
    x = torch.cat([rich.transpose(1, 2), cell[:, :h * w] * size], dim=-1)
    linears = [m for m in model.hypernet.layers if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        x = x @ lin.weight.t() + lin.bias
        x = x.relu() if i < len(linears) - 1 else x
    mod_map = x.transpose(1, 2).reshape(B, -1, h, w)
    lr_coord = make_coord((h, w), flatten=False).permute(2, 0, 1).unsqueeze(0).expand(B, 2, h, w)
    nearest = lambda grid, c: F.grid_sample(grid, c.flip(-1).unsqueeze(1), mode='nearest',  # noqa: E731
                                            align_corners=False)[:, :, 0].transpose(1, 2)
    hd, depth = model.imnet.hidden_dim, model.imnet.hidden_depth
    offsets = [(-1, -1), (-1, 1), (1, -1), (1, 1)] if model.local_ensemble else [(0, 0)]
    eps = 1e-6 if model.local_ensemble else 0
    preds, areas = [], []
    for vy, vx in offsets:
        c = coord.clone()
        c[..., 0] += vy / h + eps
        c[..., 1] += vx / w + eps
        c = c.clamp(-1 + 1e-6, 1 - 1e-6)
        m = nearest(mod_map, c)
        rel = (coord - nearest(lr_coord, c)) * size
        a = torch.cat([m[..., 2 * depth * hd:], rel, cell * size], dim=-1)
        for l in range(depth):
            lin = model.imnet.layers[2 * l]
            scale = m[..., l * hd:(l + 1) * hd]
            shift = m[..., (depth + l) * hd:(depth + l + 1) * hd]
            a = ((a @ lin.weight.t() + lin.bias) * (1 + scale) + shift).relu()
        preds.append(a @ model.imnet.layers[-1].weight.t() + model.imnet.layers[-1].bias)
        areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
    if len(preds) == 1:
        return preds[0]
    total = sum(areas)
    return sum(p * (a / total).unsqueeze(-1) for p, a in zip(preds, areas[::-1]))


def random_queries(B, Q, gen):
    corners = torch.tensor(list(itertools.product([-1.0, 1.0, 0.0], repeat=2)))
    coord = torch.cat([corners.expand(B, -1, -1), torch.rand(B, Q - len(corners), 2, generator=gen) * 2 - 1], dim=1)
    return coord


@pytest.mark.parametrize('local_ensemble, feat_unfold', list(itertools.product([True, False], repeat=2)))
@torch.no_grad()
def test_fast_and_plain_decoders_equal_the_equations(local_ensemble, feat_unfold):
    gen = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    model = models.make(small_spec(local_ensemble, feat_unfold)).eval()
    inp = torch.rand(2, 3, 7, 9, generator=gen) * 2 - 1
    coord = random_queries(2, 150, gen)
    per_image = torch.tensor([[2 / 20, 2 / 31], [2 / 9, 2 / 15]]).unsqueeze(1)
    cells = {'uniform per image': per_image.expand(2, 150, 2),
             'non-uniform (official per-pixel rule)': torch.rand(2, 150, 2, generator=gen) * 0.4}
    for what, cell in cells.items():
        expected = equations(model, inp, coord, cell)
        assert expected.abs().max() > 1e-2
        for decoder in ('fast', 'plain'):
            model.decoder = decoder
            assert max_diff(model(inp, coord, cell), expected) < TOL, (what, decoder)
            assert max_diff(model(inp, coord, cell, bsize=40), expected) < TOL, (what, decoder)


def test_fast_decoder_gradients_equal_plain():
    torch.manual_seed(7)
    model = models.make(small_spec()).train()
    gen = torch.Generator().manual_seed(7)
    inp = torch.rand(2, 3, 6, 5, generator=gen)
    coord = random_queries(2, 90, gen)
    cell = torch.full((2, 90, 2), 0.1)
    grads = {}
    for decoder in ('fast', 'plain'):
        model.zero_grad()
        model.decoder = decoder
        model(inp, coord, cell).square().sum().backward()
        grads[decoder] = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    assert grads['fast'].keys() == grads['plain'].keys() and len(grads['fast']) > 10
    # a table cached under no_grad must not be reused when gradients are wanted
    model.decoder = 'fast'
    model.zero_grad()
    model.gen_feat(inp)
    with torch.no_grad():
        model.query_rgb(coord, cell)
    model.query_rgb(coord, cell).square().sum().backward()
    assert model.hypernet.layers[0].weight.grad.abs().sum() > 0
    for k in grads['fast']:
        torch.testing.assert_close(grads['fast'][k], grads['plain'][k], atol=1e-5, rtol=1e-4, msg=k)


@torch.no_grad()
def test_tiled_upscale_equals_one_forward():
    """models/upscale.py drives the model through gen_feat(window=...) and chunked query_rgb."""
    torch.manual_seed(3)
    model = models.make(small_spec()).eval()
    inp = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(3))
    H, W = 45, 31
    coord = make_coord((H, W)).unsqueeze(0)
    cell = torch.tensor([2 / H, 2 / W]).expand_as(coord)
    whole = (model((inp - 0.5) / 0.5, coord, cell) * 0.5 + 0.5).clamp(0, 1)[0].t().reshape(3, H, W)
    tiled = upscale(model, inp, (H, W), tile=5, chunk=97)
    assert max_diff(tiled, whole) < TOL


def test_unsupported_variants_are_refused():
    spec = small_spec()
    spec['args']['mod_input'] = False
    with pytest.raises(NotImplementedError, match='mod_input'):
        models.make(spec)
    model = models.make(small_spec())
    model.gen_feat(torch.rand(1, 3, 7, 9))
    with pytest.raises(ValueError, match='non-uniform'):
        model.query_rgb(torch.zeros(1, 10, 2), torch.rand(1, 10, 2))
