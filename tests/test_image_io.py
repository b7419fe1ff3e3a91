"""utils/image.py, which demo.py reads and writes with: 16-bit PNGs read and written exactly, EXIF
orientation, palette and colour-key transparency, and one-line errors for bad files and writes."""
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from demo_helpers import as_uint, png16, rgb_gradient
from utils.image import ImageError, read_image, write_image, write_png16


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
