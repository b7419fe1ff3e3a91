"""datasets/: the image-folder data set (order, first_k and repeat, split files, colour modes,
EXIF, caches, errors) and paired-image-folders."""
import os
import time

import numpy as np
import pytest
from PIL import Image, ImageOps

import datasets
from dataset_helpers import folder, image_folder, noise, write_png
from datasets import DataError


# ------------------------------------------------------------------------------------------
# image-folder

def test_image_folder_sorted_non_images_ignored(tmp_path):
    imgs = {'b.png': noise((5, 7, 3), 1), 'a.png': noise((6, 4, 3), 2), 'c.bmp': noise((3, 3, 3), 3),
            'd.PNG': noise((4, 4, 3), 4)}
    root = folder(tmp_path / 'imgs', imgs)
    for extra in ('notes.txt', 'README', 'e.png.txt', 'meta.json'):
        (tmp_path / 'imgs' / extra).write_text('not an image')
    ds = image_folder(root)
    names = ['a.png', 'b.png', 'c.bmp', 'd.PNG']
    assert [os.path.basename(f) for f in ds.files] == names
    assert len(ds) == 4
    for i, name in enumerate(names):
        item = ds[i]
        assert item.dtype == np.uint8 and item.ndim == 3 and item.shape[2] == 3
        np.testing.assert_array_equal(item, imgs[name])
        assert ds.describe(i).endswith(name)


def test_image_folder_first_k_and_repeat(tmp_path):
    imgs = {f'{i}.png': noise((4, 5, 3), i) for i in range(4)}
    root = folder(tmp_path / 'imgs', imgs)
    ds = image_folder(root, first_k=2, repeat=3)
    assert len(ds) == 6
    assert [os.path.basename(f) for f in ds.files] == ['0.png', '1.png']
    for idx in range(6):
        np.testing.assert_array_equal(ds[idx], imgs[f'{idx % 2}.png'])
        assert ds.describe(idx).endswith(f'{idx % 2}.png')
    assert len(image_folder(root, repeat=2)) == 8
    assert len(image_folder(root, first_k=3)) == 3


def test_image_folder_list_of_folders(tmp_path):
    one = folder(tmp_path / 'one', {'z.png': noise((3, 4, 3), 1), 'y.png': noise((3, 4, 3), 2)})
    two = folder(tmp_path / 'two', {'b.png': noise((5, 2, 3), 3), 'a.png': noise((5, 2, 3), 4)})
    ds = image_folder([one, two])
    assert [os.path.relpath(f, tmp_path) for f in ds.files] == [
        os.path.join('one', 'y.png'), os.path.join('one', 'z.png'),
        os.path.join('two', 'a.png'), os.path.join('two', 'b.png')]
    np.testing.assert_array_equal(ds[2], noise((5, 2, 3), 4))


def test_image_folder_split_file(tmp_path):
    imgs = {f'{c}.png': noise((3, 3, 3), i) for i, c in enumerate('abc')}
    root = folder(tmp_path / 'imgs', imgs)
    split = tmp_path / 'split.json'
    split.write_text('{"train": ["c.png", "a.png"], "val": ["b.png"]}')
    ds = image_folder(root, split_file=str(split), split_key='train')
    assert [os.path.basename(f) for f in ds.files] == ['c.png', 'a.png']
    np.testing.assert_array_equal(ds[0], imgs['c.png'])


def test_image_folder_colour_modes(tmp_path):
    gray = noise((6, 9), 5)
    rgba = noise((7, 5, 4), 6)
    rgba[0, 0, 3] = 0  # fully transparent pixel keeps its colour
    gray16 = noise((4, 6), 7)
    pal = Image.fromarray(noise((5, 5, 3), 8)).convert('P', palette=Image.ADAPTIVE, colors=16)
    root = tmp_path / 'modes'
    write_png(root / 'a_gray.png', gray)
    write_png(root / 'b_rgba.png', rgba)
    Image.fromarray(gray16.astype(np.uint16) * 257).save(root / 'c_gray16.png')  # 16-bit grayscale
    pal.save(root / 'd_pal.png')
    ds = image_folder(str(root))
    g = ds[0]
    assert g.shape == (6, 9, 3) and g.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(g[..., c], gray)
    a = ds[1]
    assert a.shape == (7, 5, 3)
    np.testing.assert_array_equal(a, rgba[..., :3])
    g16 = ds[2]
    assert g16.shape == (4, 6, 3) and g16.dtype == np.uint8
    np.testing.assert_array_equal(g16, np.repeat(gray16[..., None], 3, -1))
    np.testing.assert_array_equal(ds[3], np.asarray(pal.convert('RGB')))


def test_image_folder_exif_orientation(tmp_path):
    img = noise((4, 7, 3), 9)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    path = tmp_path / 'exif' / 'r.png'
    os.makedirs(path.parent)
    Image.fromarray(img).save(path, exif=exif)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert('RGB'))
    assert expected.shape == (7, 4, 3)
    np.testing.assert_array_equal(image_folder(str(path.parent))[0], expected)


@pytest.mark.parametrize('cache', ['in_memory', 'decoded', 'bin'])
def test_image_folder_caches_identical(tmp_path, cache):
    root = tmp_path / 'imgs'
    write_png(root / 'a.png', noise((9, 13, 3), 1))
    write_png(root / 'b.png', noise((8, 5), 2))
    write_png(root / 'c.png', noise((6, 6, 4), 3))
    plain = image_folder(str(root), cache='none')
    other = image_folder(str(root), cache=cache, repeat=2)
    assert len(other) == 6
    for i in range(6):
        a, b = plain[i % 3], other[i]
        assert b.dtype == np.uint8 and b.shape == a.shape
        np.testing.assert_array_equal(a, b)
    if cache in ('decoded', 'bin'):
        assert isinstance(other[0], np.memmap)  # memory-mapped, not decoded on access
        assert os.path.isdir(tmp_path / '_cache_imgs')


def test_decoded_cache_written_reused_refreshed(tmp_path):
    root = tmp_path / 'imgs'
    img = write_png(root / 'a.png', noise((10, 12, 3), 1))
    write_png(root / 'b.png', noise((3, 4, 3), 2))
    now = time.time()
    os.utime(img, (now - 1000, now - 1000))
    ds = image_folder(str(root), cache='decoded')
    npy = tmp_path / '_cache_imgs' / 'a.png.npy'
    assert npy.is_file() and (tmp_path / '_cache_imgs' / 'b.png.npy').is_file()
    assert sorted(os.listdir(tmp_path / '_cache_imgs')) == ['a.png.npy', 'b.png.npy']  # no temporary left
    assert sorted(os.listdir(root)) == ['a.png', 'b.png']  # nothing written into the image folder
    np.testing.assert_array_equal(np.load(npy), noise((10, 12, 3), 1))
    np.testing.assert_array_equal(ds[0], noise((10, 12, 3), 1))

    # newer than the image: re-used, not rewritten (its mtime stays where we set it)
    os.utime(npy, (now - 500, now - 500))
    before = os.stat(npy).st_mtime_ns
    image_folder(str(root), cache='bin')
    assert os.stat(npy).st_mtime_ns == before

    # the image is newer than its cache: rewritten, and the new pixels are served
    write_png(root / 'a.png', noise((10, 12, 3), 99))
    os.utime(img, (now - 100, now - 100))
    ds = image_folder(str(root), cache='decoded')
    assert os.stat(npy).st_mtime_ns != before
    np.testing.assert_array_equal(np.load(npy), noise((10, 12, 3), 99))
    np.testing.assert_array_equal(ds[0], noise((10, 12, 3), 99))


def test_decoded_cache_unwritable(tmp_path):
    root = folder(tmp_path / 'imgs', {'a.png': noise((3, 3, 3))})
    (tmp_path / '_cache_imgs').write_text('a file where the cache folder should be')
    with pytest.raises(DataError) as e:
        image_folder(root, cache='decoded')
    assert str(tmp_path / '_cache_imgs') in str(e.value)
    np.testing.assert_array_equal(image_folder(root, cache='in_memory')[0], noise((3, 3, 3)))


def test_image_folder_bad_cache_missing_empty(tmp_path):
    root = folder(tmp_path / 'imgs', {'a.png': noise((3, 3, 3))})
    with pytest.raises(DataError) as e:
        image_folder(root, cache='disk')
    assert 'disk' in str(e.value) and root in str(e.value)
    missing = str(tmp_path / 'nope')
    with pytest.raises(DataError, match='nope') as e:
        image_folder(missing)
    assert missing in str(e.value)
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('x')
    with pytest.raises(DataError) as e:
        image_folder(str(empty))
    assert str(empty) in str(e.value)
    with pytest.raises(DataError) as e:  # a list with a missing folder
        image_folder([root, missing])
    assert missing in str(e.value)


@pytest.mark.parametrize('cache', ['none', 'in_memory', 'decoded'])
@pytest.mark.parametrize('kind', ['random', 'truncated'])
def test_image_folder_corrupt_file(tmp_path, cache, kind):
    root = tmp_path / 'imgs'
    write_png(root / 'a.png', noise((5, 5, 3), 1))
    bad = root / 'x.png'
    if kind == 'random':
        bad.write_bytes(noise((300,), 2).tobytes())
    else:
        write_png(bad, noise((64, 64, 3), 3))
        data = bad.read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError) as e:
        ds = image_folder(str(root), cache=cache)
        ds[1]
    assert str(bad) in str(e.value)
    assert len(str(e.value).splitlines()) == 1


# ------------------------------------------------------------------------------------------
# paired-image-folders

def test_paired_image_folders(tmp_path):
    lows = {n: noise((4, 5, 3), i) for i, n in enumerate(['c.png', 'a.png', 'b.png'])}
    highs = {n: noise((8, 10, 3), 10 + i) for i, n in enumerate(['z.png', 'x.png', 'y.png'])}
    ds = datasets.make({'name': 'paired-image-folders', 'args': {
        'root_path_1': folder(tmp_path / 'lr', lows), 'root_path_2': folder(tmp_path / 'hr', highs)}})
    assert len(ds) == 3
    for i, (l, h) in enumerate(zip(['a.png', 'b.png', 'c.png'], ['x.png', 'y.png', 'z.png'])):
        lr, hr = ds[i]
        np.testing.assert_array_equal(lr, lows[l])
        np.testing.assert_array_equal(hr, highs[h])
        assert l in ds.describe(i) and h in ds.describe(i)


def test_paired_image_folders_count_mismatch(tmp_path):
    one = folder(tmp_path / 'one', {'a.png': noise((3, 3, 3)), 'b.png': noise((3, 3, 3))})
    two = folder(tmp_path / 'two', {'a.png': noise((6, 6, 3))})
    with pytest.raises(DataError) as e:
        datasets.make({'name': 'paired-image-folders', 'args': {'root_path_1': one, 'root_path_2': two}})
    assert one in str(e.value) and two in str(e.value)
