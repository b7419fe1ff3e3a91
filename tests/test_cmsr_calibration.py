"""CMSR calibration (models/cmsr_calibration.py, scripts/calibrate_cmsr.py): the official walk's
rules, the official code's tables and per-image walks for the LM-LIIF shipped at 5d26d1f
(../shared/reference/cmsr_calibration, made by running the official init_cmsr), the premise
diagnostic, and the script."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

import datasets
from models import cmsr, scale2mod
from models.checkpoint import load_model
from models.cmsr_calibration import calibrate_image, candidates, walk
from models.upscale import upscale
from cli import load_script, run_main
from shared import DATA, REPO, SHARED, need
from tiny_lmliif import tiny_lmliif, write_checkpoint, write_images

SCRIPT = os.path.join(REPO, 'scripts', 'calibrate_cmsr.py')
REF = os.path.join(SHARED, 'reference', 'cmsr_calibration')
CALIBRATED_AT = '5d26d1f'  # a commit that shipped the LM-LIIF the reference calibrated
REFERENCE_SHA = 'b981a2c12cd0bc6e'
CALIBRATE_CLI = load_script('scripts/calibrate_cmsr')

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: a second thread only adds contention


def test_walk_skips_empty_bins_accepts_until_the_first_failure_and_consumes_what_it_accepts():
    values = candidates(1.0)
    strength = torch.tensor([0.05, 0.0505, 0.10, 0.1015, 0.20, 0.30])
    err = torch.tensor([1e-6, 3e-6, 1e-6, 1.0, 1e-3, 1e-6])  # 0.1015 is in no bin: its error is ignored
    entry, tested = walk(err, strength, values, 1.0, 1e-5)
    assert entry == 0.1 and [(v, n, ok) for v, n, _, ok in tested] == [(0.05, 2, True), (0.1, 1, True), (0.2, 1, False)]
    assert tested[0][2] == pytest.approx(2e-6)
    assert 0.05 not in values and 0.1 not in values and 0.2 in values and len(values) == 99
    # the next decode scale of the same image walks on from the first value not accepted
    entry, tested = walk(torch.zeros(6), strength, values, 0.5, 1e-5)
    assert entry == 0.3 and [v for v, *_ in tested] == [0.2, 0.3]
    # a first tested bin that fails leaves the entry as it was (not 0, not below the image's strengths)
    assert walk(err, strength, candidates(1.0), 0.37, 1e-7) == (0.37, [(0.05, 2, pytest.approx(2e-6), False)])
    # LM-LTE's candidates: 0 .. 0.5 in steps of 0.005
    assert candidates(0.5)[:3] == [0, 0.005, 0.01] and candidates(0.5)[-1] == 0.5 and len(candidates(0.5)) == 101


def reference_model(tmp_path):
    """The LM-LIIF that the reference calibrated (sha256 b981a2c12cd0bc6e...): the shipped file, or
    where it has been replaced since, its copy in this repository's history."""
    shipped = os.path.join(REPO, 'save', 'pretrained', 'edsr-baseline-lmliif.pth')
    data = open(shipped, 'rb').read()
    if not hashlib.sha256(data).hexdigest().startswith(REFERENCE_SHA):
        data = subprocess.run(['git', 'show', f'{CALIBRATED_AT}:save/pretrained/edsr-baseline-lmliif.pth'], cwd=REPO,
                              capture_output=True).stdout
        if not hashlib.sha256(data).hexdigest().startswith(REFERENCE_SHA):
            pytest.skip(f"the LM-LIIF of commit {CALIBRATED_AT} is neither shipped nor in this checkout's history")
    (tmp_path / 'reference.pth').write_bytes(data)
    return load_model(str(tmp_path / 'reference.pth'))


def official_walks(tmp_path, first_images, scales):
    """Calibrate as the official code did (BSD200 sorted, x4/x8/x12, 2e-5) and compare every
    image's table and tested bins with the official run's history."""
    history = json.load(open(need(os.path.join(REF, 'history.json'))))
    model = reference_model(tmp_path)
    folder = datasets.make({'name': 'image-folder', 'args': {'root_path': need(os.path.join(DATA, 'train', 'BSD200')),
                                                              'first_k': first_images}})
    tables = {}
    for run in history['scales']:
        scale = run['scale']
        if scale not in scales:
            continue
        table = tables[scale] = scale2mod.initial(scale)
        images = datasets.make({'name': 'sr-implicit-downsampled', 'args': {'scale_min': scale}},
                               args={'dataset': folder})
        for i, official in enumerate(run['images'][:first_images]):
            lr = images.pair(i)[0]
            assert list(lr.shape[-2:]) == official['lr']
            seen = calibrate_image(model, ((lr - 0.5) / 0.5).unsqueeze(0), scale, history['mse_threshold'], table)
            assert {d: round(t, 4) for d, t in table.items()} == {float(d): t for d, t in official['table'].items()}, \
                (scale, official['image'])
            assert set(seen['tested']) == {float(d) for d in official['tested_bins']}
            for d, bins in official['tested_bins'].items():
                ours = seen['tested'][float(d)]
                assert [(round(v, 4), n, ok) for v, n, _, ok in ours] == [(v, n, ok) for v, n, _, ok in bins]
                assert [mse for _, _, mse, _ in ours] == pytest.approx([mse for _, _, mse, _ in bins], rel=1e-3)
    return tables


def test_the_official_walk_on_two_images(tmp_path):
    """x8 on the first two images: a decode scale whose first bin fails keeps its entry (x1 after
    100080.png), accepted values are not tested again at the next scale (x2 starts at 0.18)."""
    official_walks(tmp_path, 2, [8])


@pytest.mark.slow
def test_the_official_tables_for_ten_images(tmp_path):
    tables = official_walks(tmp_path, 10, [4, 8, 12])
    text = open(need(os.path.join(REF, 'edsr-baseline-lmliif_bsd200-first10_mse2e-5.yaml'))).read()
    assert {s: {d: round(t, 4) for d, t in table.items()} for s, table in tables.items()} == yaml.safe_load(text)


def test_premise_statistics():
    spearman, local_std, level_shares = CALIBRATE_CLI.spearman, CALIBRATE_CLI.local_std, CALIBRATE_CLI.level_shares
    x = torch.arange(10.0)
    assert spearman(x, x ** 3) == pytest.approx(1) and spearman(x, -x) == pytest.approx(-1)
    grey = torch.zeros(5, 6)
    grey[2, 3] = 1
    std = local_std(grey)
    assert std[2, 3] == pytest.approx((8 / 81) ** 0.5) and std[0, 0] == 0 and std[1, 2] == std[2, 3]
    tables = {8: {1: 0.2, 4: 0.5, 8: 1}}
    assert level_shares(tables, 8, torch.tensor([[0.1, 0.3], [0.6, 0.7]])) == {1: 0.25, 4: 0.25, 8: 0.5}



def test_script_writes_a_table_that_test_and_demo_read(tmp_path):
    ckpt = write_checkpoint(tmp_path / 'tiny.pth')
    hr = write_images(tmp_path / 'hr', n=2, size=(72, 96))
    out = tmp_path / 'cmsr' / 'table.yaml'
    proc = subprocess.run([sys.executable, SCRIPT, '--model', ckpt, '--hr', hr, '--out', str(out),
                           '--scales', '6', '12', '--mse-threshold', '1e-4', '--device', 'cpu'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'wrote {out}' in proc.stdout
    assert 'x6 median: detail' in proc.stdout and '  0: x6 ' in proc.stdout and '  x12: x1 ' in proc.stdout
    text = out.read_text()
    assert text.startswith('# Scale2Mod tables for CMSR') and 'mse_threshold: 0.0001' in text
    tables = scale2mod.load(str(out))
    assert tables == yaml.safe_load(text) and list(tables) == [6, 12]
    assert list(tables[12]) == [1, 1.5, 2, 3, 4, 6, 8, 12]
    assert all(isinstance(d, int) for d in tables[6] if d != 1.5)  # 6, not 6.0, as the official files
    # the same calibration in this process, on the LR images the script made (PIL bicubic at x6)
    folder = datasets.make({'name': 'image-folder', 'args': {'root_path': hr}})
    images = datasets.make({'name': 'sr-implicit-downsampled', 'args': {'scale_min': 6}}, args={'dataset': folder})
    model = tiny_lmliif()
    table = scale2mod.initial(6)
    for i in range(len(images)):
        calibrate_image(model, ((images.pair(i)[0] - 0.5) / 0.5).unsqueeze(0), 6, 1e-4, table)
    assert {d: round(t, 4) for d, t in table.items()} == tables[6]
    # and CMSR runs on it
    model.cmsr = cmsr.CMSR(tables)
    assert upscale(model, images.pair(0)[0], (72, 96)).shape == (3, 72, 96)
    assert model.cmsr.take_stats()['images'] == 1


@pytest.mark.parametrize('args, expected', [
    (['--hr', '{tmp}/nope'], '--hr {tmp}/nope: no such folder'),
    (['--hr', '{tmp}/empty'], 'no image files found'),
    (['--model', '{liif}'], '--model {liif}: holds a LIIF model, not a latent-modulated one'),
    (['--model', '{tmp}/missing.pth'], '{tmp}/missing.pth: no such checkpoint file'),
    (['--scales', '1'], '--scales 1: expected numbers greater than 1'),
    (['--scales', 'x6'], '--scales x6: expected numbers greater than 1'),
    (['--mse-threshold', '0'], '--mse-threshold 0: expected a positive number'),
    (['--out', '{tmp}'], '--out {tmp}: is a folder'),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_ckpt, args, expected):
    (tmp_path / 'empty').mkdir()
    fmt = dict(tmp=tmp_path, liif=tiny_ckpt)
    defaults = {'--model': write_checkpoint(tmp_path / 'lm.pth'), '--hr': write_images(tmp_path / 'hr', n=1),
                '--out': tmp_path / 'out.yaml'}
    defaults.update(dict(zip(args[::2], args[1::2])))
    proc = run_main(CALIBRATE_CLI, *[str(a).format(**fmt) for kv in defaults.items() for a in kv], '--device', 'cpu')
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith('calibrate_cmsr.py: error: ') and expected.format(**fmt) in lines[0], lines[0]
