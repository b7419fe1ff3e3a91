"""CMSR calibration (models/cmsr.py, scripts/calibrate_cmsr.py): the walk over candidate values,
the tables' structure, and what they promise, checked with code written independently here."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import yaml

from models import cmsr
from models.upscale import upscale
from cli import load_script, run_main
from shared import REPO
from tiny_lmliif import tiny_lmliif, write_checkpoint, write_images

SCRIPT = os.path.join(REPO, 'scripts', 'calibrate_cmsr.py')


pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: a second thread only adds contention


def lr_images():
    """Two small LR images (normalised), smooth plus noise, as calibration would get them."""
    gen = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(16.0), indexing='ij')
    return [(torch.sin(x / (2 + i) + y / 3) * 0.6 + torch.randn(3, 12, 16, generator=gen) * 0.2).unsqueeze(0)
            for i in range(2)]


def test_walk_accepts_values_until_the_first_failing_bin():
    # bins are |strength - v| <= 0.001 around v = 0, 0.01, ..., 1; an empty bin passes
    strength = torch.tensor([0.05, 0.0505, 0.10, 0.1015, 0.20, 0.30])
    err = torch.tensor([1e-6, 3e-6, 1e-6, 1.0, 1e-3, 1e-6])  # 0.1015 is in no bin: its error is ignored
    assert cmsr.accepted_value(err, strength, 1e-5) == 0.19
    assert cmsr.accepted_value(err, strength, 1e-2) == 1.0
    assert cmsr.accepted_value(err, strength, 1e-6) == 0.04  # bin 0.05 averages 2e-6
    assert cmsr.accepted_value(torch.tensor([1.0]), torch.tensor([0.0]), 1e-5) == 0.0  # the first value fails


def spread_model():
    """The tiny LM-LIIF with its shift modulations made 4x stronger: its strengths then span
    0.37 to 0.61, many bins, so that walks stop part-way (random weights give a narrow range)."""
    model = tiny_lmliif()
    n = model.imnet.hidden_depth * model.imnet.hidden_dim
    with torch.no_grad():
        model.hypernet.layers[-1].weight[n:2 * n] *= 4
        model.hypernet.layers[-1].bias[n:2 * n] *= 4
    return model


def independent_bin_errors(model, inp, scale, d):
    """{value: MSE of its bin} for decode scale d, from the official forward and grid_sample."""
    with torch.no_grad():
        model.gen_feat(inp)
        h, w = model.feat.shape[-2:]
        H, W = round(h * scale), round(w * scale)
        coord = torch.stack(torch.meshgrid(*[(torch.arange(n) + 0.5) / n * 2 - 1 for n in (H, W)], indexing='ij'), -1)
        reference = model(inp, coord.view(1, -1, 2), torch.tensor([2 / H, 2 / W]).expand(1, H * W, 2))[0]
        grid = cmsr.level_grid(h, w, d)
        qh, qw = grid.shape[:2]
        level = model.query_rgb(grid.view(1, -1, 2), torch.tensor([2 / qh, 2 / qw]).expand(1, qh * qw, 2))
        level = level[0].t().reshape(1, 3, qh, qw)
        up = F.grid_sample(level, coord.flip(-1).unsqueeze(0), mode='bilinear', padding_mode='border',
                           align_corners=False)[0].flatten(1).t()
        strength = model.shift_strength(torch.tensor([[[2 / H, 2 / W]]]))
        near = F.grid_sample(strength, coord.flip(-1).unsqueeze(0), mode='nearest', align_corners=False).flatten()
        err = (up - reference).square().mean(1)
    errors = {}
    for k in range(101):
        inside = (near - k / 100).abs() <= 0.001
        if inside.any():
            errors[k / 100] = err[inside].mean().item()
    return errors


def test_tables_have_the_official_structure_and_keep_their_promise():
    model = spread_model()
    images = lr_images()
    tables, accepted = {}, {}
    for threshold in (3e-4, 3e-3, 2e-2):
        table = tables[threshold] = cmsr.start_table(6)
        accepted[threshold] = [cmsr.calibrate_image(model, inp, 6, threshold, table, chunk=500) for inp in images]
        assert list(table) == [1, 1.5, 2, 3, 4, 6] and table[6] == 1
        values = [table[d] for d in sorted(table)]
        assert values == sorted(values) and all(v == round(v, 2) and 0 <= v <= 1 for v in values), table
    # the promise: for every image, every decode scale d < 6 and every value up to table[d], the
    # pixels of that value's bin came out of level d within the MSE bound
    for threshold, table in tables.items():
        for inp in images:
            for d in (1, 2, 4):
                for value, mse in independent_bin_errors(model, inp, 6, d).items():
                    if value <= table[d]:
                        assert mse <= threshold * (1 + 1e-4), (threshold, d, value, mse)
    # each entry is the smallest any image accepted, lowered to the entries above it
    for threshold, table in tables.items():
        for d in (1, 1.5, 2, 3, 4):
            smallest = min(a[k] for a in accepted[threshold] for k in a if k >= d)
            assert table[d] == smallest, (threshold, d, table, accepted[threshold])
    # a looser bound accepts at least as much, and walks stopped inside the strengths' range
    assert all(tables[3e-4][d] <= tables[3e-3][d] <= tables[2e-2][d] for d in tables[3e-4])
    assert any(0.4 <= v <= 0.6 for t in tables.values() for v in t.values()), tables
    assert tables[3e-4][1] < tables[3e-4][4] < 1 and tables[2e-2][1] == 1, tables


CALIBRATE_CLI = load_script('scripts/calibrate_cmsr')


def test_script_writes_a_table_that_test_and_demo_read(tmp_path):
    ckpt = write_checkpoint(tmp_path / 'tiny.pth')
    hr = write_images(tmp_path / 'hr', n=2, size=(72, 96))
    out = tmp_path / 'cmsr' / 'table.yaml'
    proc = subprocess.run([sys.executable, SCRIPT, '--model', ckpt, '--hr', hr, '--out', str(out),
                           '--scales', '6', '12', '--mse-threshold', '1e-4', '--device', 'cpu'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'wrote {out}' in proc.stdout
    text = out.read_text()
    assert text.startswith('# Scale2Mod tables for CMSR') and 'mse_threshold: 0.0001' in text
    tables = cmsr.load_table(str(out))
    assert tables == yaml.safe_load(text) and list(tables) == [6, 12]
    assert list(tables[12]) == [1, 1.5, 2, 3, 4, 6, 8, 12] and tables[12][12] == 1
    assert all(isinstance(d, int) for d in tables[6] if d != 1.5)  # 6, not 6.0, as the official files
    # the same calibration in this process, on the LR images the script made (PIL bicubic at x6)
    import datasets
    folder = datasets.make({'name': 'image-folder', 'args': {'root_path': hr}})
    images = datasets.make({'name': 'sr-implicit-downsampled', 'args': {'scale_min': 6}}, args={'dataset': folder})
    model = tiny_lmliif()
    table = cmsr.start_table(6)
    for i in range(len(images)):
        cmsr.calibrate_image(model, ((images.pair(i)[0] - 0.5) / 0.5).unsqueeze(0), 6, 1e-4, table)
    assert {d: round(t, 4) for d, t in table.items()} == tables[6]
    # and CMSR runs on it
    model.cmsr = cmsr.CMSR(tables)
    assert upscale(model, images.pair(0)[0], (72, 96)).shape == (3, 72, 96)
    assert model.cmsr.take_stats()['images'] == 1


@pytest.mark.parametrize('args, expected', [
    (['--hr', '{tmp}/nope'], '--hr {tmp}/nope: no such folder'),
    (['--hr', '{tmp}/empty'], 'no image files found'),
    (['--model', '{liif}'], '--model {liif}: holds a LIIF model, not LM-LIIF'),
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
