"""demo.py on a folder of small images in one run through a tiny model: one PNG per image, RGBA,
grayscale and 16-bit in as out, EXIF orientation honoured."""
import os

import numpy as np
import pytest
from PIL import Image

from demo_helpers import as_uint, demo, disc, png16, rgb_gradient
from utils.image import read_image


def png_header(path):
    """(bit depth, colour type) from a PNG's IHDR."""
    with open(path, 'rb') as f:
        head = f.read(26)
    assert head[:8] == b'\x89PNG\r\n\x1a\n'
    return head[24], head[25]


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
