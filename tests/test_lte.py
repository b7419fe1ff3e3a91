"""LTE (models/lte.py) against dumps of the official code (shared/reference/lte: EDSR-baseline-LTE;
shared/reference/swinir: SwinIR-LTE with a small SwinIR, and the official test.py's padding flow),
and against the equations of LTE.md written out here, on other random weights."""

import pytest
import torch
import torch.nn.functional as F

import models
from models.upscale import upscale, mirror_pad
from reference import Dump, bilinear_skip, ensemble, lte_basis, max_diff, mlp, nearest
from tiny_models import spec

LTE = Dump('lte')
SWINIR = Dump('swinir')
TOL = 1e-5

pytestmark = pytest.mark.usefixtures('one_thread')  # small tensors: a second thread only adds contention


def test_official_state_dict_loads_strictly_in_the_official_order():
    sd = LTE('sd.pt')
    model = LTE.model()
    assert list(model.state_dict()) == list(sd) and len(sd) == 85
    assert sum(v.numel() for v in sd.values()) == 1_714_267
    assert list(sd)[72:77] == ['coef.weight', 'coef.bias', 'freq.weight', 'freq.bias', 'phase.weight']


@torch.no_grad()
def test_edsr_baseline_lte_matches_official():
    model = LTE.model()
    inp, coord, cell = LTE('inp.pt'), LTE('coord.pt'), LTE('cell.pt')
    for decoder in ('fast', 'plain'):
        model.decoder = decoder
        assert max_diff(model(inp, coord, cell), LTE('out_full.pt')) < TOL, decoder
        assert max_diff(model(inp, coord, cell, bsize=64), LTE('out_bsize64.pt')) < TOL, decoder
        # x8 with test.py's cell clip (the dump's cells are already clipped)
        assert max_diff(model(inp, LTE('x8_coord.pt'), LTE('x8_cell.pt'), bsize=30000), LTE('x8_out_full.pt')) < TOL
    assert max_diff(model.feat, LTE('feat.pt')) < TOL
    assert max_diff(model.coef(model.feat), LTE('coef.pt')) < TOL and max_diff(model.freq(model.feat), LTE('freq.pt')) < TOL
    model.train()  # LTE has no training-only branch
    assert max_diff(model(inp, coord, cell), LTE('out_full.pt')) < TOL


@torch.no_grad()
def test_x8_through_upscale_with_the_cell_clip_matches_official():
    """upscale() of the whole x8 image, tiled, with the cell clip at x4 (test.py --cell-clip)."""
    model = LTE.model()
    out = upscale(model, LTE('inp.pt')[0] * 0.5 + 0.5, (96, 128), tile=5, cell_clip=4)
    official = (LTE('x8_out_full.pt')[0] * 0.5 + 0.5).clamp(0, 1).t().reshape(3, 96, 128)
    assert max_diff(out, official) < TOL


@torch.no_grad()
def test_swinir_lte_matches_official():
    model = SWINIR.model()
    inp, coord, cell = SWINIR('inp.pt'), SWINIR('coord.pt'), SWINIR('cell.pt')
    assert max_diff(model(inp, coord, cell), SWINIR('out_full.pt')) < TOL
    assert max_diff(model.feat, SWINIR('feat.pt')) < TOL
    assert max_diff(model(inp, coord, cell, bsize=64), SWINIR('out_bsize64.pt')) < TOL
    model.decoder = 'plain'
    assert max_diff(model(inp, coord, cell), SWINIR('out_full.pt')) < TOL


@torch.no_grad()
def test_swinir_lte_through_upscale_is_the_official_test_py_flow():
    """The official test.py with --window 8 at x4: symmetric padding to the next window multiple
    (a whole window when already a multiple: 12 -> 16, 16 -> 24), the padded x4 grid decoded,
    the top-left HR size kept. upscale() does the same for any window encoder."""
    model = SWINIR.model()
    normalised = LTE('inp.pt')  # the 12 x 16 LR of the LTE dump, (x - 0.5) / 0.5
    assert max_diff(mirror_pad(normalised, 8), SWINIR('testpy_inp_padded.pt')) == 0
    out = model(SWINIR('testpy_inp_padded.pt'), SWINIR('testpy_coord.pt'), SWINIR('testpy_cell.pt'), bsize=30000)
    assert max_diff(out, SWINIR('testpy_out.pt')) < TOL
    for tile in (256, 4):
        sr = upscale(model, normalised[0] * 0.5 + 0.5, (48, 64), tile=tile)
        assert max_diff(sr, SWINIR('testpy_pred.pt')[0]) < TOL, tile


# --- other random weights: the model against LTE.md's equations written out here ------------------

def equations(model, inp, coord, cell):
    """LTE as LTE.md section 1 writes it (grid_sample for every lookup)."""
    feat = model.encoder(inp)
    h, w = feat.shape[-2:]
    coef = F.conv2d(feat, model.coef.weight, model.coef.bias, padding=1)
    freq = F.conv2d(feat, model.freq.weight, model.freq.bias, padding=1)
    size = torch.tensor([h, w], dtype=torch.float32)
    linears = [m for m in model.imnet.layers if isinstance(m, torch.nn.Linear)]

    def predict(c, rel):
        return mlp(linears, lte_basis(nearest(coef, c), nearest(freq, c), rel[..., 0], rel[..., 1],
                                      (cell * size) @ model.phase.weight.t()))
    return ensemble(coord, h, w, predict) + bilinear_skip(inp, coord)


@pytest.mark.parametrize('seed', [1, 2])
@torch.no_grad()
def test_both_forms_equal_the_equations_on_other_weights(seed):
    torch.manual_seed(seed)
    model = models.make(spec('lte', imnet_spec={'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [32, 32]}},
                             hidden_dim=24)).eval()
    gen = torch.Generator().manual_seed(seed)
    inp = torch.rand(2, 3, 7, 10, generator=gen) * 2 - 1
    coord = torch.rand(2, 200, 2, generator=gen) * 2 - 1
    coord[:, :4] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])
    cell = torch.tensor([[2 / 23, 2 / 31], [2 / 70, 2 / 80]]).unsqueeze(1).expand(2, 200, 2)  # x3.3 by x3.1, x10 by x8
    expected = equations(model, inp, coord, cell)
    for decoder in ('fast', 'plain'):
        model.decoder = decoder
        assert max_diff(model(inp, coord, cell), expected) < TOL, decoder
