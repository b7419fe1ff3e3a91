"""utils/imresize.py against MATLAB-made LR files, and scripts/make_lr.py."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from shared import DATA, REPO, need
from utils.imresize import imresize, modcrop

BENCH = os.path.join(DATA, 'benchmark')
NAMES = {'Set5': ['baby', 'bird', 'butterfly', 'head', 'woman'],
         'Set14': ['baboon', 'barbara', 'bridge', 'coastguard', 'comic', 'face', 'flowers', 'foreman',
                   'lenna', 'man', 'monarch', 'pepper', 'ppt3', 'zebra']}
CASES = [(ds, name, s) for ds, names in NAMES.items() for name in names for s in (2, 3, 4)]
SCRIPT = os.path.join(REPO, 'scripts', 'make_lr.py')


def read(path):
    with Image.open(need(path)) as im:
        return np.asarray(im)


def hr_path(ds, name):
    return os.path.join(BENCH, ds, 'HR', f'{name}.png')


def lr_path(ds, name, s):
    return os.path.join(BENCH, ds, 'LR_bicubic', f'X{s}', f'{name}x{s}.png')


@pytest.mark.parametrize('ds,name,s', CASES, ids=[f'{d}-{n}-x{s}' for d, n, s in CASES])
def test_equals_matlab_lr(ds, name, s):
    lr = read(lr_path(ds, name, s))
    ours = imresize(modcrop(read(hr_path(ds, name)), s), scale=1 / s)
    assert ours.dtype == np.uint8 and ours.shape == lr.shape
    assert np.array_equal(ours, lr), f"{int((ours != lr).sum())} values differ, by up to " \
        f"{int(np.abs(ours.astype(int) - lr).max())}"


def run_script(*args, cwd):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_make_lr_script(tmp_path):
    hr = tmp_path / 'HR'
    hr.mkdir()
    for name in NAMES['Set5']:
        shutil.copy(need(hr_path('Set5', name)), hr)
    shutil.copy(need(hr_path('Set14', 'bridge')), hr)   # grayscale: must stay grayscale
    out = tmp_path / 'LR'
    kept = out / 'X3' / 'birdx3.png'
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b'not overwritten')
    r = run_script('--hr', 'HR', '--out', str(out), '--scales', '3', cwd=tmp_path)   # cwd is not the repo
    assert r.returncode == 0, r.stderr
    assert kept.read_bytes() == b'not overwritten' and 'birdx3.png' in r.stdout + r.stderr
    assert sorted(os.listdir(out / 'X3')) == sorted(f'{n}x3.png' for n in NAMES['Set5'] + ['bridge'])
    for name in NAMES['Set5']:
        if name != 'bird':
            assert np.array_equal(read(out / 'X3' / f'{name}x3.png'), read(lr_path('Set5', name, 3))), name
    with Image.open(out / 'X3' / 'bridgex3.png') as im:
        assert im.mode == 'L' and np.array_equal(np.asarray(im), read(lr_path('Set14', 'bridge', 3)))
    assert not [n for n in os.listdir(out / 'X3') if n.startswith('.')]   # no temporary files left
    r = run_script('--hr', str(hr), '--out', str(out), '--scales', '3', '--overwrite', cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(read(kept), read(lr_path('Set5', 'bird', 3)))


def test_make_lr_errors(tmp_path):
    r = run_script('--hr', str(tmp_path / 'missing'), '--out', str(tmp_path / 'o'), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count('\n') == 1
    assert r.stderr.startswith('make_lr.py: error:') and 'missing' in r.stderr
    (tmp_path / 'hr').mkdir()
    (tmp_path / 'hr' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    r = run_script('--hr', 'hr', '--out', 'o', cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count('\n') == 1
    assert r.stderr.startswith('make_lr.py: error:') and 'broken.png' in r.stderr
    assert not (tmp_path / 'o' / 'X2' / 'brokenx2.png').exists()
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('not an image')
    r = run_script('--hr', 'empty', '--out', 'o', cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == 'make_lr.py: error: no image files in empty'


@pytest.mark.parametrize('scale', ['1', '2.5', '0', '-2', 'x', 'nan'])
def test_make_lr_bad_scale(tmp_path, capsys, scale):
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import make_lr
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    assert make_lr.main(['--hr', str(tmp_path), '--out', str(tmp_path / 'o'), '--scales', '4', scale]) == 2
    err = capsys.readouterr().err
    assert err.startswith('make_lr.py: error:') and repr(scale) in err and err.count('\n') == 1


def test_upscale_size_and_constant():
    for value, dtype in ((200, np.uint8), (0.3, np.float64)):
        img = np.full((7, 9, 3), value, dtype)
        for kw in ({'scale': 2.5}, {'scale': 0.4}, {'size': (20, 5)}):
            out = imresize(img, **kw)
            assert out.dtype == dtype
            assert np.allclose(out, value, rtol=0, atol=1e-12)
    assert imresize(np.zeros((7, 9), np.uint8), scale=2.5).shape == (18, 23)     # ceil, as MATLAB
    assert imresize(np.zeros((7, 9), np.uint8), size=(3, 20)).shape == (3, 20)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    assert np.array_equal(imresize(img, size=(6, 8)), imresize(img, scale=0.5))
    assert np.array_equal(imresize(img, scale=1), img)


def test_linear_ramp_is_kept_inside():
    """Cubic interpolation keeps a linear ramp: checks the coordinate mapping both ways."""
    ramp = np.tile(np.arange(40, dtype=np.float64), (5, 1))          # value = column index
    up = imresize(ramp, scale=2)                                       # out col j <- in col j/2 - 0.25
    assert np.allclose(up[:, 4:-4], np.arange(80)[4:-4] / 2 - 0.25)
    down = imresize(ramp, size=(5, 10))                                # out col j <- in col 4j + 1.5
    assert np.allclose(down[:, 2:-2], 4 * np.arange(10)[2:-2] + 1.5)
    assert np.allclose(imresize(ramp.T, scale=0.5).T[:, 3:-3], 2 * np.arange(20)[3:-3] + 0.5)


def test_float_close_to_uint8():
    hr = modcrop(read(hr_path('Set5', 'baby')), 4)
    u8 = imresize(hr, scale=1 / 4)
    f32 = imresize(hr.astype(np.float32) / 255, scale=1 / 4)
    assert f32.dtype == np.float32
    diff = np.abs(np.clip(f32 * 255, 0, 255) - u8)
    assert diff.mean() < 0.5 and diff.max() < 1.5     # only the uint8 rounding between passes differs


@pytest.mark.parametrize('args,kwargs,match', [
    ((np.zeros((4, 4)),), {}, 'exactly one'),
    ((np.zeros((4, 4)),), {'scale': 2, 'size': (8, 8)}, 'exactly one'),
    ((np.zeros((4, 4)),), {'scale': 0}, 'positive'),
    ((np.zeros((4, 4)),), {'scale': -1.5}, 'positive'),
    ((np.zeros((4, 4)),), {'scale': float('nan')}, 'positive'),
    ((np.zeros((4, 4)),), {'size': (0, 3)}, 'size'),
    ((np.zeros((4, 4)),), {'size': (3,)}, 'size'),
    ((np.zeros((4, 4)),), {'size': 3}, 'size'),
    ((np.zeros(4),), {'scale': 2}, 'H x W'),
    ((np.zeros((2, 2, 2, 2)),), {'scale': 2}, 'H x W'),
    ((np.zeros((4, 4), bool),), {'scale': 2}, 'dtype'),
])
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        imresize(*args, **kwargs)


def test_modcrop():
    img = np.arange(7 * 10).reshape(7, 10)
    assert np.array_equal(modcrop(img, 3), img[:6, :9])
    assert modcrop(np.zeros((8, 12, 3)), 4).shape == (8, 12, 3)
    with pytest.raises(ValueError, match='positive integer'):
        modcrop(img, 0)
    with pytest.raises(ValueError, match='positive integer'):
        modcrop(img, 2.0)
