"""scripts/export_weights.py as users run it: a real subprocess on the official checkpoint."""
import os
import subprocess
import sys

import pytest
import torch

from shared import OFFICIAL_CKPT, REPO, need
from models.checkpoint import load_model


def export(*args):
    return subprocess.run([sys.executable, os.path.join('scripts', 'export_weights.py'), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def outputs(path, inp, coord, cell):
    with torch.no_grad():
        return load_model(str(path))(inp, coord, cell)


@pytest.mark.slow
def test_official_checkpoint_exports_to_the_same_model_under_7_mb(tmp_path):
    need(OFFICIAL_CKPT)
    torch.manual_seed(0)
    inp, coord = torch.rand(1, 3, 20, 24) * 2 - 1, torch.rand(1, 300, 2) * 2 - 1
    cell = torch.full((1, 300, 2), 2 / 80)
    expected = outputs(OFFICIAL_CKPT, inp, coord, cell)

    result = export(OFFICIAL_CKPT, tmp_path / 'w.pth')
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(tmp_path / 'w.pth') < 7e6 < os.path.getsize(OFFICIAL_CKPT)
    assert torch.load(tmp_path / 'w.pth', weights_only=True).keys() == {'model'}
    assert torch.equal(outputs(tmp_path / 'w.pth', inp, coord, cell), expected)

    half = export(OFFICIAL_CKPT, tmp_path / 'h.pth', '--half')
    assert half.returncode == 0 and 'float16' in half.stdout
    assert os.path.getsize(tmp_path / 'h.pth') < 0.6 * os.path.getsize(tmp_path / 'w.pth')
    torch.testing.assert_close(outputs(tmp_path / 'h.pth', inp, coord, cell), expected, rtol=0, atol=2e-2)

    before = os.path.getmtime(tmp_path / 'w.pth')
    again = export(OFFICIAL_CKPT, tmp_path / 'w.pth', '--half')
    assert again.returncode == 2 and 'already exists' in again.stderr
    assert os.path.getmtime(tmp_path / 'w.pth') == before


def test_ema_weights_are_exported_unless_no_ema(tmp_path, tiny_ckpt):
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    ema_sd = {k: v + 1 if v.is_floating_point() else v for k, v in ckpt['model']['sd'].items()}
    torch.save(dict(ckpt, ema={'decay': 0.9, 'sd': ema_sd}), tmp_path / 'run.pth')
    assert export(tmp_path / 'run.pth', tmp_path / 'ema.pth').stdout.strip().endswith('EMA weights')
    assert export(tmp_path / 'run.pth', tmp_path / 'raw.pth', '--no-ema').returncode == 0
    key = next(k for k, v in ema_sd.items() if v.is_floating_point())
    assert torch.equal(torch.load(tmp_path / 'ema.pth', weights_only=True)['model']['sd'][key], ema_sd[key])
    assert torch.equal(torch.load(tmp_path / 'raw.pth', weights_only=True)['model']['sd'][key],
                       ckpt['model']['sd'][key])
    bad = export(tmp_path / 'missing.pth', tmp_path / 'x.pth')
    assert bad.returncode == 2 and 'missing.pth: no such checkpoint file' in bad.stderr
    assert not (tmp_path / 'x.pth').exists()


@pytest.mark.parametrize('file, name, parameters', [('edsr-baseline-liif.pth', 'liif', 1_567_323),
                                                     ('edsr-baseline-lmliif.pth', 'lmliif', 1_386_091)])
def test_shipped_weights_are_weights_only_in_the_official_format_under_7_mb(file, name, parameters):
    path = os.path.join(REPO, 'save', 'pretrained', file)
    assert os.path.getsize(path) < 7e6
    ckpt = torch.load(path, weights_only=True)
    # weights only: the official {'model'} (which the official code reads) and this project's data_norm
    assert ckpt.keys() <= {'model', 'data_norm'} and ckpt['model'].keys() == {'name', 'args', 'sd'}
    assert ckpt['model']['name'] == name  # data_norm 0.5 / 0.5: recorded, or none (the official default)
    assert load_model(path, with_data_norm=True)[1] in (None, (0.5, 0.5))
    assert all(v.dtype == torch.float32 for v in ckpt['model']['sd'].values() if v.is_floating_point())
    model = load_model(path)  # strict: every official parameter name is there
    assert sum(p.numel() for p in model.parameters()) == parameters
