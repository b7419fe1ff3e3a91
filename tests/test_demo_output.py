"""demo.py's outputs: their sizes (--scale, --resolution), what a run prints, --compile, the default
save/demo/ names that never replace a result, and a 16-bit result written as JPEG."""
import os

import numpy as np
import pytest
from PIL import Image

from cli import run_main
from demo_helpers import DEMO_CLI, assert_clean_failure, demo, png16, rgb_gradient


@pytest.mark.parametrize('flag, value, size', [
    ('--scale', '2,3.5', (40, 84)),        # per axis: height x2, width x3.5
    ('--scale', '1.55', (31, 37)),         # 20 * 1.55 = 31, 24 * 1.55 = 37.2
    ('--resolution', '37,53', (37, 53)),   # exactly H, W
])
def test_output_size(tmp_path, tiny_ckpt, small_rgb, flag, value, size):
    out = tmp_path / 'out.png'
    proc = run_main(DEMO_CLI, '--input', small_rgb, '--output', out, '--model', tiny_ckpt, flag, value)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (size[1], size[0])
    assert f"wrote {out} ({size[1]}x{size[0]} px, 8-bit RGB)" in proc.stdout


def test_a_run_says_what_it_does(tmp_path, tiny_ckpt, small_rgb):
    proc = run_main(DEMO_CLI, '--input', small_rgb, '--output', tmp_path / 'big.png', '--model', tiny_ckpt, '--scale', 15)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f'demo.py: loading {tiny_ckpt} on cpu\n')
    assert 'upscale: 100%' in proc.stderr and '108k/108k' in proc.stderr  # a bar for an output over 0.1 Mpx
    assert f'demo.py: wrote {tmp_path / "big.png"} (360x300 px' in proc.stdout


def test_compile_flag_compiles_the_decoder(tmp_path, tiny_ckpt, small_rgb, monkeypatch):
    """--compile goes through compile_decoder (whose compiled decoding equals eager: test_models.py
    checks that once); here its wiring, without paying for a compilation."""
    calls = []
    monkeypatch.setattr(DEMO_CLI, 'compile_decoder', lambda model, device: calls.append(type(model).__name__))
    proc = run_main(DEMO_CLI, '--input', small_rgb, '--output', tmp_path / 'sr.png', '--model', tiny_ckpt,
                    '--scale', 3, '--compile')
    assert proc.returncode == 0 and calls == ['LIIF'], proc.stderr
    assert Image.open(tmp_path / 'sr.png').size == tuple(3 * n for n in Image.open(small_rgb).size)


def test_default_output_is_save_demo_named_after_input_size_and_model_never_replaced(tmp_path, tiny_ckpt):
    """Without --output: save/demo/ under the current folder (git-ignored in the repo), named after
    the input, the size and the model; a name an earlier result has gets -1 (nothing is replaced).
    The input folder never gets anything, so a second folder run reads the same two images."""
    photos, cwd = tmp_path / 'photos', tmp_path / 'work'
    photos.mkdir()
    cwd.mkdir()
    Image.fromarray(rgb_gradient(20, 24)).save(photos / 'a.png')
    Image.fromarray(rgb_gradient(10, 12, seed=1)).save(photos / 'b.jpg')
    for suffix in ('', '-1'):
        one = run_main(DEMO_CLI, '--input', photos / 'a.png', '--model', tiny_ckpt, '--scale', '2,1.5', cwd=cwd)
        out = os.path.join('save', 'demo', f'a_x2,1.5_tiny-liif{suffix}.png')
        assert one.returncode == 0 and f'demo.py: wrote {out} (36x40 px' in one.stdout, one.stderr
        assert Image.open(cwd / out).size == (36, 40)
    for suffix in ('', '-1'):
        run = run_main(DEMO_CLI, '--input', photos, '--model', tiny_ckpt, '--resolution', '30,36', cwd=cwd)
        assert run.returncode == 0 and run.stdout.count('demo.py: wrote ') == 2, run.stderr
        assert sorted(os.listdir(cwd / 'save' / 'demo' / f'photos_30,36_tiny-liif{suffix}')) == ['a.png', 'b.png']
    assert sorted(os.listdir(photos)) == ['a.png', 'b.jpg']
    assert DEMO_CLI.model_tag(os.path.join('save', '_quickstart', 'epoch-last.pth')) == '_quickstart-epoch-last'
    assert DEMO_CLI.model_tag(DEMO_CLI.DEFAULT_MODEL) == ''


def test_folder_output_inside_the_input_folder_is_never_read_back(tmp_path, tiny_ckpt, small_rgb):
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(rgb_gradient(20, 24)).save(photos / 'a.png')
    for _ in range(2):  # outputs in a subfolder: the second run still reads one image
        run = run_main(DEMO_CLI, '--input', photos, '--output', photos / 'up', '--model', tiny_ckpt, '--scale', 2)
        assert run.returncode == 0 and run.stdout.count('demo.py: wrote ') == 1, run.stderr
    proc = run_main(DEMO_CLI, '--input', photos, '--output', photos, '--model', tiny_ckpt, '--scale', 2)
    before = (photos / 'a.png').read_bytes()
    assert_clean_failure(proc, photos / 'a.png', [f'--output {photos}: is the input folder', 'save/demo/photos_x2'],
                         before=before)
    assert sorted(os.listdir(photos)) == ['a.png', 'up']


@pytest.mark.parametrize('resolution, warning', [
    ('37,53', 'changes the aspect ratio of {src} (24x20 px to 53x37: x2.21 wide, x1.85 high); --scale keeps it'),
    ('40,48', None),   # exactly x2
    ('31,37', None),   # x1.55 and one pixel of rounding
])
def test_resolution_that_changes_the_aspect_ratio_says_so(tmp_path, tiny_ckpt, small_rgb, resolution, warning):
    proc = run_main(DEMO_CLI, '--input', small_rgb, '--output', tmp_path / 'out.png', '--model', tiny_ckpt,
                    '--resolution', resolution)
    assert proc.returncode == 0, proc.stderr
    if warning is None:
        assert 'warning' not in proc.stderr, proc.stderr
    else:
        assert proc.stderr.strip() == f'demo.py: warning: --resolution {resolution} ' + warning.format(src=small_rgb)


def test_16_bit_to_jpeg_falls_back_to_8_bit_with_a_warning(tmp_path, tiny_ckpt):
    src = tmp_path / 'in16.png'
    png16(src, np.full((6, 5, 3), 40000, np.uint16))
    out = tmp_path / 'out.jpg'
    proc = demo('--input', src, '--output', out, '--model', tiny_ckpt, '--scale', 2)
    assert Image.open(out).format == 'JPEG' and Image.open(out).size == (10, 12)
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and 'warning' in proc.stderr
    assert '8-bit' in proc.stderr and str(out) in proc.stderr
