"""demo.py end to end (real subprocess runs; argument and input errors in-process through
`demo.main(argv)`) and the image helpers it relies on (utils/image.py).

Format tests use a tiny random LIIF checkpoint written to tmp and tiny synthetic images, so they
are fast; the quality tests use the official EDSR-baseline-LIIF weights and skip without them.
"""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import models
from cli import load_script, run_main
from shared import OFFICIAL_CKPT, REPO, need, tiny_liif_spec as tiny_spec
from models.checkpoint import save_checkpoint
from utils.image import ImageError, read_image, write_image, write_png16

DEMO = os.path.join(REPO, 'demo.py')
DEMO_CLI = load_script('demo')
SAMPLE = os.path.join(REPO, 'load', 'samples', 'coffee.png')


def demo(*args, ok=True):
    """Run demo.py; return the CompletedProcess. ok: assert success (True) / failure (False)."""
    proc = subprocess.run([sys.executable, DEMO, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def psnr(a, b, peak=255.0):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(peak ** 2 / max(mse, 1e-12))


def png16(path, arr, exif=None):
    """An independent minimal 16-bit PNG writer (no filters): arr uint16 (H, W[, C])."""
    arr = np.asarray(arr, np.uint16)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    h, w = arr.shape[:2]
    raw = b''.join(b'\x00' + arr[y].astype('>u2').tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    body = chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0))
    if exif is not None:
        body += chunk(b'eXIf', exif.tobytes()[6:])  # without the 'Exif\0\0' header
    body += chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + body)


def png_header(path):
    """(bit depth, colour type) from a PNG's IHDR."""
    with open(path, 'rb') as f:
        head = f.read(26)
    assert head[:8] == b'\x89PNG\r\n\x1a\n'
    return head[24], head[25]


def as_uint(img, bits):
    """A LoadedImage's colour (+ alpha) as an (H, W, C) integer array."""
    planes = img.pixels if img.alpha is None else torch.cat([img.pixels, img.alpha])
    return (planes.permute(1, 2, 0).numpy() * (2 ** bits - 1)).round().astype(np.int64)


def rgb_gradient(h, w, seed=0):
    """A smooth colourful 8-bit test image with some texture."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    noise = np.random.default_rng(seed).normal(0, 6, (h, w, 3))
    img = np.stack([40 + 180 * x / w, 60 + 150 * y / h, 128 + 90 * np.sin(x / 3 + y / 5)], -1) + noise
    return np.clip(img, 0, 255).round().astype(np.uint8)


def disc(h, w):
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot(y - (h - 1) / 2, x - (w - 1) / 2)
    return np.clip((min(h, w) * 0.35 - r) * 60 + 128, 0, 255).round().astype(np.uint8)


# ------------------------------------------------------------------------------------------
# utils/image.py

@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_16_bit_pngs_are_read_exactly(tmp_path, channels):
    """Pillow alone keeps only the high byte of 16-bit RGB/RGBA/gray+alpha PNGs; read_image must
    return every 16-bit sample exactly (gray, gray+alpha, RGB, RGBA)."""
    a = np.random.default_rng(channels).integers(0, 65536, (9, 13, channels)).astype(np.uint16)
    path = tmp_path / 'in.png'
    png16(path, a[..., 0] if channels == 1 else a)
    img = read_image(str(path))
    assert img.kind.bits == 16 and img.kind.gray == (channels <= 2) and img.kind.alpha == (channels % 2 == 0)
    assert np.array_equal(as_uint(img, 16), a)


@pytest.mark.parametrize('filter_type', [None, 0, 1, 2, 3, 4])
@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_16_bit_png_writer_round_trips_and_pillow_agrees(tmp_path, channels, filter_type):
    a = np.random.default_rng(7).integers(0, 65536, (7, 11, channels)).astype(np.uint16)
    a[3:] = a[3:].cumsum(1, dtype=np.uint16)  # some smooth-ish rows as well as noise
    buf = io.BytesIO()
    write_png16(buf, a, filter_type=filter_type)
    data = buf.getvalue()
    im = Image.open(io.BytesIO(data))
    im.load()  # Pillow decodes it (checks the zlib stream and filters); its 8 bits are the high bytes
    assert im.size == (11, 7)
    if channels == 1:
        assert np.array_equal(np.asarray(im).astype(np.uint16), a[..., 0])
    elif channels in (3, 4):
        assert np.array_equal(np.asarray(im), (a >> 8).astype(np.uint8))
    path = tmp_path / 'out.png'
    path.write_bytes(data)
    assert np.array_equal(as_uint(read_image(str(path)), 16), a)


def test_exif_orientation_is_applied_to_8_and_16_bit_images(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be rotated 90 degrees clockwise for display
    a8 = rgb_gradient(5, 8)
    Image.fromarray(a8).save(tmp_path / 'rot8.png', exif=exif)
    a16 = np.random.default_rng(1).integers(0, 65536, (5, 8, 3)).astype(np.uint16)
    png16(tmp_path / 'rot16.png', a16, exif=exif)
    assert np.array_equal(as_uint(read_image(str(tmp_path / 'rot8.png')), 8), np.rot90(a8, k=-1))
    assert np.array_equal(as_uint(read_image(str(tmp_path / 'rot16.png')), 16), np.rot90(a16, k=-1))


def test_palette_and_colour_key_transparency_become_alpha(tmp_path):
    p = Image.new('P', (4, 3))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.save(tmp_path / 'pal.png', transparency=1)
    img = read_image(str(tmp_path / 'pal.png'))
    assert img.kind.alpha and not img.kind.gray and img.kind.bits == 8
    assert img.alpha[0, 1, 1] == 0 and img.alpha.sum() == 11
    assert torch.equal(img.pixels[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    g = Image.fromarray(np.array([[10, 20], [20, 30]], np.uint8))
    g.save(tmp_path / 'key.png', transparency=20)
    img = read_image(str(tmp_path / 'key.png'))
    assert img.kind.gray and torch.equal(img.alpha[0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


@pytest.mark.parametrize('content, needle', [
    (None, 'no such file'),
    (b'this is not an image\n', 'not an image file'),
    ('truncated', 'truncated'),
])
def test_bad_image_files_raise_one_line_errors_naming_the_file(tmp_path, content, needle):
    path = tmp_path / 'bad.png'
    if content == 'truncated':
        Image.fromarray(rgb_gradient(64, 64)).save(path)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError) as err:
        read_image(str(path))
    msg = str(err.value)
    assert str(path) in msg and needle in msg and '\n' not in msg


def test_failed_write_leaves_the_existing_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'out.png'
    path.write_bytes(b'precious')

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b'partial data')
        raise OSError('disk full')
    monkeypatch.setattr(Image.Image, 'save', broken_save)
    with pytest.raises(ImageError, match='disk full'):
        write_image(str(path), torch.rand(3, 4, 5))
    assert path.read_bytes() == b'precious' and os.listdir(tmp_path) == ['out.png']
    monkeypatch.undo()
    write_image(str(path), torch.rand(3, 4, 5))
    assert Image.open(path).size == (5, 4) and os.listdir(tmp_path) == ['out.png']


# ------------------------------------------------------------------------------------------
# demo.py: formats, on a folder of small images run through the tiny model at once

@pytest.fixture(scope='module')
def folder_run(tmp_path_factory, tiny_ckpt):
    """Write a folder of small test images, upscale it x2 in ONE demo run, return (inputs, outputs, proc)."""
    src = tmp_path_factory.mktemp('folder_in')
    dst = tmp_path_factory.mktemp('folder_parent') / 'out'
    h, w = 20, 24
    rgb = rgb_gradient(h, w)
    alpha = disc(h, w)
    gray = rgb.mean(-1).round().astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(src / 'rgba.png')
    Image.fromarray(rgb).save(src / 'rgb_of_rgba.png')      # the same colours without alpha
    Image.fromarray(alpha).save(src / 'alpha_as_gray.png')  # the alpha as a grayscale image
    Image.fromarray(gray).save(src / 'gray.png')
    Image.fromarray(np.dstack([gray] * 3)).save(src / 'gray_as_rgb.png')
    Image.fromarray(np.dstack([rgb, np.full((h, w), 255, np.uint8)])).save(src / 'opaque.png')
    ramp = np.linspace(30000, 30400, w)[None, :] + np.linspace(0, 300, h)[:, None]  # < 2 levels in 8 bits
    g16 = ramp.round().astype(np.uint16)
    rgb16 = np.dstack([g16, g16[::-1], 65535 - g16])
    png16(src / 'gray16.png', g16)
    png16(src / 'rgb16.png', rgb16)
    Image.fromarray((rgb16 / 257).round().astype(np.uint8)).save(src / 'rgb16_as_8bit.png')
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(src / 'exif6.jpg', exif=exif, quality=100)
    # the same JPEG pixels, physically rotated, without EXIF: a lossless PNG copy
    stored = np.asarray(Image.open(src / 'exif6.jpg'))
    Image.fromarray(np.ascontiguousarray(np.rot90(stored, k=-1))).save(src / 'exif6_reference.png')
    (src / 'notes.txt').write_text('not an image; ignored')
    proc = demo('--input', src, '--output', dst, '--model', tiny_ckpt, '--scale', 2)
    return src, dst, proc


def out_image(dst, name):
    return read_image(str(dst / name))


def test_folder_input_writes_one_png_per_image(folder_run):
    src, dst, proc = folder_run
    images = sorted(n for n in os.listdir(src) if not n.endswith('.txt'))
    expected = sorted(os.path.splitext(n)[0] + '.png' for n in images)
    assert sorted(os.listdir(dst)) == expected
    for name in expected:  # x2 of 24 wide x 20 high; the EXIF-rotated ones are 20 x 24 displayed
        assert Image.open(dst / name).size == ((40, 48) if name.startswith('exif6') else (48, 40))
    assert proc.stdout.count('demo.py: wrote ') == len(images)
    assert str(dst / 'rgba.png') in proc.stdout


def test_rgba_in_rgba_out_alpha_upscaled_like_a_gray_image(folder_run):
    _, dst, _ = folder_run
    with Image.open(dst / 'rgba.png') as im:
        assert im.mode == 'RGBA'
    rgba = as_uint(out_image(dst, 'rgba.png'), 8)
    colour = as_uint(out_image(dst, 'rgb_of_rgba.png'), 8)
    alpha_as_gray = as_uint(out_image(dst, 'alpha_as_gray.png'), 8)
    assert np.array_equal(rgba[..., :3], colour)           # colour: the model on the colours alone
    assert np.array_equal(rgba[..., 3:], alpha_as_gray)    # alpha: the model on the alpha as gray
    assert rgba[..., 3].std() > 1  # really upscaled (quality: see the official-weights test below)
    opaque = as_uint(out_image(dst, 'opaque.png'), 8)
    assert (opaque[..., 3] == 255).all()                    # opaque stays exactly opaque


def test_grayscale_in_grayscale_out(folder_run):
    _, dst, _ = folder_run
    with Image.open(dst / 'gray.png') as im:
        assert im.mode == 'L'
    gray = as_uint(out_image(dst, 'gray.png'), 8)[..., 0]
    via_rgb = as_uint(out_image(dst, 'gray_as_rgb.png'), 8)
    # the model runs on the replicated gray; the output is the mean of its three channels
    assert np.abs(gray - via_rgb.mean(-1)).max() <= 1


def test_16_bit_in_16_bit_out_keeps_sub_8_bit_detail(folder_run):
    _, dst, _ = folder_run
    assert png_header(dst / 'gray16.png') == (16, 0)
    assert png_header(dst / 'rgb16.png') == (16, 2)
    for name in ('gray16.png', 'rgb16.png'):
        img = out_image(dst, name)
        assert img.kind.bits == 16 and img.kind.gray == (name == 'gray16.png')
        values = as_uint(img, 16)
        assert (values % 257 != 0).mean() > 0.9          # not 8-bit values stretched to 16 bits
        assert len(np.unique(values[..., 0])) > 100      # the input ramp spans < 2 levels of 8 bits
    rgb16 = as_uint(out_image(dst, 'rgb16.png'), 16) / 257
    rgb8 = as_uint(out_image(dst, 'rgb16_as_8bit.png'), 8)
    assert np.abs(rgb16 - rgb8).max() < 3  # the same picture as via 8 bits, just finer


def test_exif_orientation_is_honoured(folder_run):
    _, dst, _ = folder_run
    out = as_uint(out_image(dst, 'exif6.png'), 8)
    ref = as_uint(out_image(dst, 'exif6_reference.png'), 8)
    assert out.shape == (48, 40, 3)  # the input is stored 24 wide x 20 high, displayed 20 x 24
    assert np.array_equal(out, ref)


# ------------------------------------------------------------------------------------------
# demo.py: sizes and output formats

@pytest.fixture(scope='module')
def small_rgb(tmp_path_factory):
    path = tmp_path_factory.mktemp('small') / 'small.png'
    Image.fromarray(rgb_gradient(20, 24)).save(path)
    return path


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


# ------------------------------------------------------------------------------------------
# demo.py: user errors give one line, a non-zero exit, and no output

def run_failing(out, needles, *args, existing=True):
    """Run demo.py (in-process) expecting a user error, with `out` holding an older output
    (existing) or absent; check the failure is clean and nothing in out's folder changed."""
    before = b'existing output' if existing else None
    if existing:
        out.write_bytes(before)
    listing = sorted(os.listdir(out.parent))
    proc = run_main(DEMO_CLI, *args, '--output', out)
    assert_clean_failure(proc, out, needles, before)
    assert sorted(os.listdir(out.parent)) == listing


def assert_clean_failure(proc, out, needles, before=None):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('demo.py: error: ')
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert 'Traceback' not in proc.stderr and 'wrote' not in proc.stdout
    if before is None:
        assert not os.path.exists(out)
    else:
        assert out.read_bytes() == before
    assert [n for n in os.listdir(out.parent) if n.startswith('.')] == []  # no temporary left


@pytest.fixture
def bad_inputs(tmp_path):
    d = tmp_path / 'inputs'
    d.mkdir()
    (d / 'text.png').write_text('hello, I am not a PNG\n')
    Image.fromarray(rgb_gradient(64, 64)).save(d / 'full.png')
    data = (d / 'full.png').read_bytes()
    (d / 'truncated.png').write_bytes(data[:len(data) * 2 // 3])
    os.unlink(d / 'full.png')
    return d


@pytest.mark.parametrize('existing', [False, True])
@pytest.mark.parametrize('name, needles', [
    ('missing.png', ['missing.png', 'no such file']),
    ('text.png', ['text.png', 'not an image']),
    ('truncated.png', ['truncated.png', 'truncated']),
])
def test_bad_input_file(tmp_path, tiny_ckpt, bad_inputs, name, needles, existing):
    run_failing(tmp_path / 'out.png', needles, '--input', bad_inputs / name, '--model', tiny_ckpt, '--scale', 2,
                existing=existing)


def test_an_output_under_a_file_is_refused_before_any_work(tmp_path, tiny_ckpt, small_rgb):
    (tmp_path / 'afile').write_text('keep me')
    proc = run_main(DEMO_CLI, '--input', small_rgb, '--model', tiny_ckpt, '--scale', 2, '--output', tmp_path / 'afile' / 'x.png')
    assert proc.returncode == 2 and proc.stdout == '', proc.stderr  # refused before the model loads
    assert proc.stderr == f"demo.py: error: --output {tmp_path / 'afile' / 'x.png'}: cannot be written ({tmp_path / 'afile'} " \
                          f"is not a writable folder)\n"
    assert os.listdir(tmp_path) == ['afile'] and (tmp_path / 'afile').read_text() == 'keep me'


def test_folder_input_with_a_file_name_as_output(tmp_path, tiny_ckpt, small_rgb):
    run_failing(tmp_path / 'out.png', ['out.png', 'folder'], '--input', small_rgb.parent, '--model', tiny_ckpt,
                '--scale', 2, existing=False)


def test_a_bad_file_in_a_folder_stops_before_any_output(tmp_path, tiny_ckpt, bad_inputs):
    os.unlink(bad_inputs / 'text.png')
    Image.fromarray(rgb_gradient(8, 8)).save(bad_inputs / 'a_good.png')  # sorted before the bad one
    out = tmp_path / 'out_folder' / 'x.png'
    proc = demo('--input', bad_inputs, '--output', out.parent, '--model', tiny_ckpt, '--scale', 2, ok=False)
    assert proc.returncode != 0 and 'truncated.png' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(out.parent)


@pytest.mark.parametrize('args, needles', [
    (['--scale', '0'], ['--scale', "'0'"]),
    (['--scale', '-2'], ['--scale', "'-2'"]),
    (['--scale', 'nan'], ['--scale', "'nan'"]),
    (['--scale', 'inf'], ['--scale', "'inf'"]),
    (['--scale', '1e6'], ['--scale', '32768', '24000000x20000000']),
    (['--scale', '2,x'], ['--scale', "'x'"]),
    (['--scale', '2,3,4'], ['--scale', '2,3,4']),
    (['--resolution', '100'], ['--resolution', "'100'"]),
    (['--resolution', '0,10'], ['--resolution', "'0,10'"]),
    (['--resolution', '40000,10'], ['--resolution', '32768']),
    (['--scale', '2', '--resolution', '40,48'], ['--scale', '--resolution', 'not allowed']),
    ([], ['--scale', '--resolution', 'required']),
    (['--scale', '2', '--tile', '0'], ['--tile', "'0'"]),
])
@pytest.mark.parametrize('existing', [False, True])
def test_bad_size_arguments(tmp_path, tiny_ckpt, small_rgb, args, needles, existing):
    run_failing(tmp_path / 'out.png', needles, '--input', small_rgb, '--model', tiny_ckpt, *args, existing=existing)


def test_cuda_without_cuda(tmp_path, tiny_ckpt, small_rgb):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    run_failing(tmp_path / 'out.png', ['--device cuda', 'CUDA'],
                '--input', small_rgb, '--model', tiny_ckpt, '--scale', 2, '--device', 'cuda')


def test_alpha_into_a_format_without_alpha_is_refused(tmp_path, tiny_ckpt):
    src = tmp_path / 'rgba.png'
    Image.fromarray(np.dstack([rgb_gradient(6, 6), disc(6, 6)])).save(src)
    run_failing(tmp_path / 'out.jpg', ['out.jpg', 'alpha'], '--input', src, '--model', tiny_ckpt, '--scale', 2,
                existing=False)


def test_cmsr_with_a_model_without_one_says_so(tmp_path, tiny_ckpt, small_rgb):
    run_failing(tmp_path / 'out.png', [f'--cmsr: {tiny_ckpt} holds a LIIF model, which has no CMSR'],
                '--input', small_rgb, '--model', tiny_ckpt, '--scale', 8, '--cmsr')


def write_bad_checkpoint(path, kind):
    if kind == 'unknown-name':
        torch.save({'model': {'name': 'no-such-model', 'args': {}, 'sd': {}}}, path)
    elif kind == 'other-size':  # a LIIF spec with 8 features, weights of one with 16
        sd = models.make(tiny_spec(n_feats=16)).state_dict()
        torch.save({'model': {'name': 'liif', 'args': tiny_spec(8)['args'], 'sd': sd}}, path)
    elif kind == 'encoder-only':  # a valid checkpoint of a plain EDSR, which has no decoder
        spec = {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8, 'no_upsampling': True}}
        save_checkpoint(str(path), spec, models.make(spec))
    elif kind == 'text':
        path.write_text('not a checkpoint\n')
    elif kind == 'image':
        Image.fromarray(rgb_gradient(8, 8)).save(path, format='PNG')
    elif kind == 'corrupt':
        save_checkpoint(str(path), tiny_spec(), models.make(tiny_spec()))
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize('kind, needles', [
    ('missing', ['ckpt.pth', 'no such checkpoint']),
    ('unknown-name', ['ckpt.pth', 'no-such-model']),
    ('other-size', ['ckpt.pth', 'do not fit', 'liif']),
    ('encoder-only', ['ckpt.pth', 'not an arbitrary-scale model']),
    ('text', ['ckpt.pth', 'not a readable PyTorch checkpoint']),
    ('image', ['ckpt.pth', 'not a readable PyTorch checkpoint']),
    ('corrupt', ['ckpt.pth', 'checkpoint']),
])
def test_bad_checkpoint(tmp_path, small_rgb, kind, needles):
    ckpt = tmp_path / 'ckpt.pth'
    write_bad_checkpoint(ckpt, kind)
    run_failing(tmp_path / 'out.png', needles, '--input', small_rgb, '--model', ckpt, '--scale', 2)


# ------------------------------------------------------------------------------------------
# demo.py with the official weights: the result looks right

@pytest.mark.slow
def test_sample_photo_x4_with_official_weights(tmp_path):
    ckpt = need(OFFICIAL_CKPT)
    out = tmp_path / 'coffee-x4.png'
    proc = demo('--input', SAMPLE, '--output', out, '--model', ckpt, '--scale', 4)
    lr = Image.open(SAMPLE).convert('RGB')
    sr = Image.open(out)
    assert sr.mode == 'RGB' and sr.size == (lr.width * 4, lr.height * 4)
    assert str(out) in proc.stdout
    # brought back down, the SR image is the input again
    down = sr.resize(lr.size, Image.Resampling.BICUBIC, reducing_gap=None)
    assert psnr(down, lr) > 45  # (~52.6 dB; a bicubic upscale brought back gives ~38)
    # and it is close to, but sharper than, a bicubic upscale
    bicubic = lr.resize(sr.size, Image.Resampling.BICUBIC)
    assert psnr(sr, bicubic) > 28
    gradient = lambda im: np.abs(np.diff(np.asarray(im, np.float64), axis=1)).mean()  # noqa: E731
    assert gradient(sr) > gradient(bicubic)


def test_alpha_edges_stay_sensible_with_official_weights(tmp_path):
    ckpt = need(OFFICIAL_CKPT)
    src = tmp_path / 'logo.png'
    alpha = disc(40, 48)
    Image.fromarray(np.dstack([rgb_gradient(40, 48), alpha])).save(src)
    out = tmp_path / 'logo-x2.png'
    demo('--input', src, '--output', out, '--model', ckpt, '--scale', 2)
    with Image.open(out) as im:
        assert im.mode == 'RGBA' and im.size == (96, 80)
        a = np.asarray(im)[..., 3]
    reference = np.asarray(Image.fromarray(alpha).resize((96, 80), Image.Resampling.BICUBIC))
    assert psnr(a, reference) > 30
    assert a[40, 48] == 255 and a[0, 0] == 0 and a[-1, -1] == 0


@pytest.mark.slow
def test_readme_first_command_uses_the_shipped_weights_and_beats_bicubic(tmp_path):
    """No --model: save/pretrained/edsr-baseline-liif.pth, on the held-aside quickstart photo
    (its MATLAB-bicubic x4 LR, both shipped); measured 27.62 dB on RGB against PIL bicubic's 25.80 dB."""
    folder = os.path.join(REPO, 'load', 'quickstart', 'val')
    out = tmp_path / 'coffee-x4.png'
    demo('--input', os.path.join(folder, 'LR_bicubic', 'X4', 'coffeex4.png'), '--scale', 4, '--output', out)
    with Image.open(os.path.join(folder, 'HR', 'coffee.png')) as hr, Image.open(out) as sr:
        hr = hr.convert('RGB')
        assert sr.size == hr.size == (600, 400)
        with Image.open(os.path.join(folder, 'LR_bicubic', 'X4', 'coffeex4.png')) as lr:
            bicubic = lr.convert('RGB').resize(hr.size, Image.BICUBIC)
        assert psnr(sr, hr) > psnr(bicubic, hr) + 1.0, (psnr(sr, hr), psnr(bicubic, hr))
