"""LM-LTE (models/lmlte.py) against the equations of LTE.md section 2 written out here, on random
weights (the official dump is checked in tests/test_lm_official.py), and CMSR calibration for it
(candidate thresholds 0 .. 0.5, as the official LM-LTE's)."""

import pytest
import torch
import torch.nn.functional as F

import models
from models import cmsr, scale2mod
from models.checkpoint import save_checkpoint
from models.upscale import upscale
from cli import load_script, run_main
from reference import bilinear_skip, ensemble, lte_basis, max_diff, mlp, modulated_render, nearest
from tiny_lmliif import write_images
from tiny_models import spec, tiny

TOL = 1e-5

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: a second thread only adds contention


def equations(model, inp, coord, cell):
    """LM-LTE as LTE.md writes it: hypernet per LR pixel on coef * lte_basis(freq pairs summed, phase of
    the cell of query p), then per member nearest modulations, modulated render MLP, area blend, LR skip."""
    feat = model.encoder(inp)
    B, _, h, w = feat.shape
    size = torch.tensor([h, w], dtype=torch.float32)
    coef = F.conv2d(feat, model.coef.weight, model.coef.bias, padding=1).flatten(2).transpose(1, 2)
    freq = F.conv2d(feat, model.freq.weight, model.freq.bias, padding=1).flatten(2).transpose(1, 2)
    x = lte_basis(coef, freq, 1, 1, (cell[:, :h * w] * size) @ model.phase.weight.t())
    mod_map = mlp([m for m in model.hypernet.layers if isinstance(m, torch.nn.Linear)], x)
    mod_map = mod_map.transpose(1, 2).reshape(B, -1, h, w)
    hd, mod_dim = model.imnet.hidden_dim, model.imnet.mod_dim

    def predict(c, rel):
        m = nearest(mod_map, c)
        a = lte_basis(m[..., mod_dim:mod_dim + hd], m[..., mod_dim + hd:], rel[..., 0], rel[..., 1],
                      (cell * size) @ model.imphase.weight.t())
        return modulated_render(model.imnet, a, m)
    return ensemble(coord, h, w, predict) + bilinear_skip(inp, coord)


@pytest.mark.parametrize('seed', [1, 2])
@torch.no_grad()
def test_both_forms_equal_the_equations_on_other_weights(seed):
    torch.manual_seed(seed)
    model = models.make(spec('lmlte', hidden_dim=24)).eval()
    with torch.no_grad():  # the render MLP's default init shrinks its signal; scaled as the dump's, so slips show
        for layer in model.imnet.layers[::2]:
            layer.weight *= 6 ** 0.5
    gen = torch.Generator().manual_seed(seed)
    inp = torch.rand(2, 3, 7, 9, generator=gen) * 2 - 1
    coord = torch.rand(2, 150, 2, generator=gen) * 2 - 1
    coord[:, :4] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])
    cells = {'uniform per image': torch.tensor([[2 / 23, 2 / 31], [2 / 70, 2 / 80]]).unsqueeze(1).expand(2, 150, 2),
             'non-uniform (official per-pixel rule)': torch.rand(2, 150, 2, generator=gen) * 0.4}
    for what, cell in cells.items():
        expected = equations(model, inp, coord, cell)
        assert expected.std() > 0.05
        for decoder in ('fast', 'plain'):
            model.decoder = decoder
            assert max_diff(model(inp, coord, cell), expected) < TOL, (what, decoder)
            assert max_diff(model(inp, coord, cell, bsize=40), expected) < TOL, (what, decoder)


CALIBRATE_CLI = load_script('scripts/calibrate_cmsr')


def test_calibration_tries_strengths_up_to_half_and_cmsr_runs_on_the_table(tmp_path):
    model = tiny('lmlte').eval()
    assert model.calibration_top == 0.5
    save_checkpoint(str(tmp_path / 'lmlte.pth'), spec('lmlte'), model)
    hr = write_images(tmp_path / 'hr', n=2, size=(72, 96))
    proc = run_main(CALIBRATE_CLI, '--model', tmp_path / 'lmlte.pth', '--hr', hr, '--out', tmp_path / 'table.yaml',
                    '--scales', '6', '--mse-threshold', '1e-4', '--device', 'cpu')
    assert proc.returncode == 0, proc.stderr[-2000:]
    tables = scale2mod.load(str(tmp_path / 'table.yaml'))
    assert list(tables) == [6]
    assert all(t <= 0.5 or t == 1 for t in tables[6].values()), tables  # a walk never passes 0.5
    model.cmsr = cmsr.CMSR(tables)
    assert upscale(model, torch.rand(3, 12, 16), (72, 96)).shape == (3, 72, 96)
    assert model.cmsr.take_stats()['images'] == 1
