"""--cmsr TABLE in demo.py and test.py: CMSR switched on for an LM-LIIF checkpoint, what it
renders reported, one-line errors for other models and bad tables."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cli import load_script, run_main
from models import cmsr, scale2mod
from models.checkpoint import load_model
from models.upscale import upscale
from shared import REPO
from tiny_lmliif import quartile_table, write_checkpoint, write_images

DEMO_CLI = load_script('demo')
TEST_CLI = load_script('test')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A tiny LM-LIIF checkpoint, a 12x16 input image and a table sending its pixels to every level."""
    tmp = tmp_path_factory.mktemp('cmsr')
    ckpt = write_checkpoint(tmp / 'lm.pth')
    write_images(tmp / 'in', n=1, size=(12, 16))
    inp = torch.from_numpy(np.array(Image.open(tmp / 'in' / '0.png'))).permute(2, 0, 1).float() / 255
    table = quartile_table(load_model(ckpt), ((inp - 0.5) / 0.5).unsqueeze(0), torch.tensor([2 / 72, 2 / 96]))
    (tmp / 'table.yaml').write_text(yaml.safe_dump(table))
    return {'ckpt': ckpt, 'image': str(tmp / 'in' / '0.png'), 'inp': inp, 'table': str(tmp / 'table.yaml'),
            'tmp': tmp}


def test_demo_renders_with_cmsr(files, tmp_path):
    out = tmp_path / 'x6.png'
    proc = subprocess.run([sys.executable, 'demo.py', '--input', files['image'], '--output', str(out), '--scale', '6',
                           '--model', files['ckpt'], '--cmsr', files['table'], '--device', 'cpu'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'wrote {out} (96x72 px' in proc.stdout
    model = load_model(files['ckpt'])
    model.cmsr = cmsr.CMSR(scale2mod.load(files['table']))
    expected = (upscale(model, files['inp'], (72, 96)) * 255).round().byte().permute(1, 2, 0).numpy()
    rendered = model.cmsr.last['rendered_fraction']
    assert 0 < rendered < 1 and f"CMSR rendered {rendered:.1%} of the pixels" in proc.stdout
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), expected)
    without = upscale(load_model(files['ckpt']), files['inp'], (72, 96))
    assert (without * 255).round().byte().permute(1, 2, 0).numpy().tolist() != expected.tolist()


def test_bare_cmsr_takes_the_table_beside_the_checkpoint(files, tmp_path):
    """`--cmsr` alone: NAME-cmsr.yaml beside NAME.pth, as save/pretrained/ ships them."""
    shutil.copy(files['ckpt'], tmp_path / 'lm.pth')
    shutil.copy(files['table'], tmp_path / 'lm-cmsr.yaml')
    proc = run_main(DEMO_CLI, '--input', files['image'], '--output', tmp_path / 'x6.png', '--scale', '6',
                    '--model', tmp_path / 'lm.pth', '--cmsr', '--device', 'cpu')
    assert proc.returncode == 0 and 'CMSR rendered' in proc.stdout, proc.stderr[-2000:]
    proc = run_main(DEMO_CLI, '--input', files['image'], '--output', tmp_path / 'y.png', '--scale', '6',
                    '--model', files['ckpt'], '--cmsr', '--device', 'cpu')  # no table beside this one
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(f"--cmsr {files['ckpt'][:-len('.pth')]}-cmsr.yaml: no such file")


@pytest.mark.parametrize('table, model, expected', [
    ('missing.yaml', 'lm', '--cmsr missing.yaml: no such file'),
    ('{tmp}/bad.yaml', 'lm', "--cmsr {tmp}/bad.yaml: target scale 6: decode scale 2: threshold 'high' is not a number"),
    ('{tmp}/list.yaml', 'lm', '--cmsr {tmp}/list.yaml: expected a Scale2Mod table'),
    ('{tmp}/broken.yaml', 'lm', '--cmsr {tmp}/broken.yaml: invalid YAML at line'),
    ('{table}', 'liif', '--cmsr: {liif} holds a LIIF model, which has no CMSR (only latent-modulated models'),
])
def test_demo_bad_table_or_model_is_one_line(files, tiny_ckpt, tmp_path, table, model, expected):
    (tmp_path / 'bad.yaml').write_text('6: {1: 0.3, 2: high, 6: 1}\n')
    (tmp_path / 'list.yaml').write_text('- 1\n- 2\n')
    (tmp_path / 'broken.yaml').write_text('6:\n  1: [0.3\n')
    fmt = dict(tmp=tmp_path, table=files['table'], liif=tiny_ckpt)
    proc = run_main(DEMO_CLI, '--input', files['image'], '--output', tmp_path / 'out.png', '--scale', '6',
                    '--model', files['ckpt'] if model == 'lm' else tiny_ckpt, '--cmsr', table.format(**fmt),
                    '--device', 'cpu')
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"demo.py: error: {expected.format(**fmt)}"), lines[0]
    assert not (tmp_path / 'out.png').exists()


def test_test_py_reports_the_rendered_fraction_per_set_and_scale(files, tmp_path):
    """A suite on a Set5 of five generated HR images: x6 and x8 run (x2-x4 need LR files), both
    through CMSR; then one config at x4, where CMSR is not used."""
    load = tmp_path / 'load'
    write_images(load / 'benchmark' / 'Set5' / 'HR', n=5, size=(48, 64))
    report = tmp_path / 'report'
    proc = run_main(TEST_CLI, '--suite', 'benchmark', '--model', files['ckpt'], '--load-dir', load,
                    '--report', report, '--cmsr', files['table'], '--cell-clip', '--device', 'cpu')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"CMSR with {files['table']}" in proc.stdout
    with open(report / 'results.csv') as f:
        rows = {int(r['scale']): r for r in csv.DictReader(f)}
    assert sorted(rows) == [6, 8]
    fractions = {s: float(r['cmsr_rendered']) for s, r in rows.items()}
    assert all(0 < f < 1 for f in fractions.values()), fractions
    for s, f in fractions.items():
        assert f"Set5 x{s}: PSNR" in proc.stdout and f"CMSR rendered {f:.1%} of the pixels" in proc.stdout
    assert json.loads((report / 'results.json').read_text())['cmsr'] == files['table']
    table = proc.stdout[proc.stdout.index('\nCMSR '):].splitlines()
    assert table[1].split() == ['CMSR', 'x6', 'x8'] and table[2].split() == ['Set5', f'{fractions[6]:.3f}',
                                                                           f'{fractions[8]:.3f}'], table

    config = tmp_path / 'x4.yaml'
    cfg = yaml.safe_load(open(os.path.join(REPO, 'configs', 'test', 'test-set5-6.yaml')))
    cfg['test_dataset']['wrapper']['args']['scale_min'] = 4
    cfg['test_dataset']['dataset']['args']['root_path'] = str(load / 'benchmark' / 'Set5' / 'HR')
    config.write_text(yaml.safe_dump(cfg))
    proc = run_main(TEST_CLI, '--config', config, '--model', files['ckpt'], '--cmsr', files['table'], '--device', 'cpu')
    assert proc.returncode == 0 and 'CMSR not used (x4 and below)' in proc.stdout, proc.stderr[-2000:]


def test_test_py_refuses_cmsr_for_liif(tiny_ckpt, files, tmp_path):
    write_images(tmp_path / 'benchmark' / 'Set5' / 'HR', n=5, size=(48, 64))  # data are checked first
    proc = run_main(TEST_CLI, '--config', 'configs/test/test-set5-6.yaml', '--model', tiny_ckpt,
                    '--load-dir', tmp_path, '--cmsr', files['table'], '--device', 'cpu')
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"test.py: error: --cmsr: {tiny_ckpt} holds a LIIF model, which has no CMSR "
                                   f"(only latent-modulated models, such as LM-LIIF, have one)")
