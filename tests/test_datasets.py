"""datasets/: image folders (order, colour modes, caches, errors), the SR wrappers (shapes, crops,
bicubic LR, augmentation, determinism, errors) and datasets/loading.py's EpochSampler."""
import os
import random
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import datasets
from datasets import ArgError, DataError, wrappers
from shared import DATA, need
from utils.config import ConfigError
from utils.coords import make_coord
from utils.dist import DistInfo
from datasets.loading import EpochSampler, make_sr_dataset

BENCH = os.path.join(DATA, 'benchmark')
SET5 = ['baby', 'bird', 'butterfly', 'head', 'woman']
CPU = torch.device('cpu')


# ------------------------------------------------------------------------------------------
# helpers

def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_png(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)
    return str(path)


def folder(path, images):
    """Write {name: uint8 array} as images into `path`; returns the folder as a str."""
    for name, arr in images.items():
        write_png(os.path.join(path, name), arr)
    return str(path)


def image_folder(root, **args):
    return datasets.make({'name': 'image-folder', 'args': {'root_path': root, **args}})


def wrapper(name, inner, **args):
    return datasets.make({'name': name, 'args': args}, {'dataset': inner})


def to_u8(x):
    """float (3, H, W) in [0, 1] -> uint8 (H, W, 3)."""
    return (x * 255).round().byte().permute(1, 2, 0).numpy()


def pil_bicubic(img, h, w):
    return np.array(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def find_window(big, small):
    """All (x, y) where `small` (h, w, 3) sits inside `big` (H, W, 3)."""
    h, w = small.shape[:2]
    xs, ys = np.nonzero((big[:big.shape[0] - h + 1, :big.shape[1] - w + 1] == small[0, 0]).all(-1))
    return [(int(x), int(y)) for x, y in zip(xs, ys) if np.array_equal(big[x:x + h, y:y + w], small)]


def hr_shape(sample):
    """(H, W) of the HR crop a sample's cell belongs to."""
    c = sample['cell'][0].double()
    H, W = 2 / c[0].item(), 2 / c[1].item()
    assert abs(H - round(H)) < 1e-3 and abs(W - round(W)) < 1e-3
    return round(H), round(W)


def gt_image(sample, H, W):
    """The gt of a sample with all pixels, as (3, H, W)."""
    return sample['gt'].reshape(H, W, 3).permute(2, 0, 1)


def same_sample(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


DIHEDRAL = [(h, v, d) for h in (False, True) for v in (False, True) for d in (False, True)]


transform = wrappers.augment  # row flip, column flip, transpose: which one applies is what the tests find


@pytest.fixture
def big_image(tmp_path):
    """A folder holding one 200x210 noise image, and the image."""
    img = noise((200, 210, 3), seed=1)
    return folder(tmp_path / 'big', {'img.png': img}), img


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


# ------------------------------------------------------------------------------------------
# sr-implicit-downsampled

@pytest.mark.parametrize('scales', [(1, 1), (2, 2), (2.5, 2.5), (4, 4), (1, 4)])
def test_downsampled_patch_sample(big_image, scales):
    root, img = big_image
    ds = wrapper('sr-implicit-downsampled', image_folder(root, repeat=4), inp_size=48,
                 scale_min=scales[0], scale_max=scales[1], sample_q=300)
    assert len(ds) == 4
    seen = set()
    for idx in range(4):
        s = ds[(0, idx)]
        assert set(s) == {'inp', 'coord', 'cell', 'gt'}
        assert s['inp'].shape == (3, 48, 48)
        assert s['gt'].shape == (300, 3) and s['coord'].shape == (300, 2) and s['cell'].shape == (300, 2)
        for v in s.values():
            assert v.dtype == torch.float32
        for k in ('inp', 'gt'):
            assert s[k].min() >= 0 and s[k].max() <= 1
        assert s['coord'].abs().max() < 1
        assert len(torch.unique(s['coord'], dim=0)) == 300  # drawn without replacement
        H, W = hr_shape(s)
        assert H == W
        assert (s['cell'] == s['cell'][0]).all()
        if scales[0] == scales[1]:
            assert H == round(48 * scales[0])
            assert torch.allclose(s['cell'], torch.full((300, 2), 2 / round(48 * scales[0])))
        else:
            assert 48 <= H <= 192
            seen.add(H)
        # each gt is the HR pixel its coord is the centre of
        lr, hr = ds.pair(idx)
        assert torch.equal(lr, s['inp'])
        assert hr.shape == (3, H, W)
        rows = torch.round((s['coord'][:, 0] + 1) * H / 2 - 0.5).long()
        cols = torch.round((s['coord'][:, 1] + 1) * W / 2 - 0.5).long()
        assert torch.equal(s['gt'], hr[:, rows, cols].t())
        assert torch.allclose(s['coord'], make_coord((H, W))[rows * W + cols])
    if scales[0] != scales[1]:
        assert len(seen) > 1  # the scale is drawn per sample


@pytest.mark.parametrize('scale', [1, 2, 2.5, 3.3, 4])
def test_downsampled_crop_and_bicubic_lr(big_image, scale):
    root, img = big_image
    ds = wrapper('sr-implicit-downsampled', image_folder(root, repeat=5), inp_size=48, scale_min=scale)
    w_hr = round(48 * scale)
    offsets = set()
    for idx in range(5):
        lr, hr = ds.pair(idx)
        assert lr.shape == (3, 48, 48) and hr.shape == (3, w_hr, w_hr)
        assert lr.dtype == hr.dtype == torch.float32
        hr8 = to_u8(hr)
        where = find_window(img, hr8)
        assert len(where) == 1  # the HR is a window of the image
        offsets.add(where[0])
        assert torch.equal(lr, torch.from_numpy(pil_bicubic(hr8, 48, 48)).permute(2, 0, 1).float() / 255)
        # without sample_q: every HR pixel, in order, at make_coord's coordinates
        s = ds[idx]
        assert s['gt'].shape == (w_hr * w_hr, 3)
        assert torch.equal(gt_image(s, w_hr, w_hr), hr)
        assert torch.equal(s['coord'], make_coord((w_hr, w_hr)))
        assert torch.allclose(s['cell'], torch.full_like(s['cell'], 2 / w_hr))
    if w_hr < 200:  # the crop position is random, in both directions
        assert len({x for x, _ in offsets}) > 1 and len({y for _, y in offsets}) > 1


@pytest.mark.parametrize('scale, lr_size, hr_size', [
    (2, (18, 11), (36, 22)),
    (2.5, (14, 9), (35, 22)),      # 37x23 -> floor(14.8) x floor(9.2); HR round(35) x round(22.5) = 22
    (3.5, (10, 6), (35, 21)),
    (1.1, (30, 20), (33, 22)),     # 33 / 1.1 = 29.999999999999996 in floats: still 30
])
def test_downsampled_whole_image(tmp_path, scale, lr_size, hr_size):
    img = noise((37, 23, 3), 4) if scale != 1.1 else noise((33, 22, 3), 4)
    ds = wrapper('sr-implicit-downsampled', image_folder(folder(tmp_path / 'i', {'a.png': img})),
                 scale_min=scale, scale_max=scale)
    lr, hr = ds.pair(0)
    assert tuple(lr.shape[-2:]) == lr_size and tuple(hr.shape[-2:]) == hr_size
    np.testing.assert_array_equal(to_u8(hr), img[:hr_size[0], :hr_size[1]])
    np.testing.assert_array_equal(to_u8(lr), pil_bicubic(img[:hr_size[0], :hr_size[1]], *lr_size))
    s = ds[0]
    assert s['inp'].shape == (3, *lr_size)
    assert torch.equal(gt_image(s, *hr_size), hr)
    assert torch.equal(s['coord'], make_coord(hr_size))
    assert torch.allclose(s['cell'][0], torch.tensor([2 / hr_size[0], 2 / hr_size[1]]))


def test_downsampled_whole_image_set5_woman():
    path = need(os.path.join(BENCH, 'Set5', 'HR', 'woman.png'))
    ds = wrapper('sr-implicit-downsampled', image_folder([os.path.dirname(path)], first_k=5), scale_min=6)
    i = [os.path.basename(f) for f in ds.dataset.files].index('woman.png')
    lr, hr = ds.pair(i)
    assert lr.shape == (3, 57, 38) and hr.shape == (3, 342, 228)
    full = ds.dataset[i]
    assert full.shape == (344, 228, 3)
    np.testing.assert_array_equal(to_u8(hr), full[:342])
    np.testing.assert_array_equal(to_u8(lr), pil_bicubic(full[:342], 57, 38))


def test_downsampled_too_small(tmp_path):
    for shape in [(60, 30), (30, 60)]:  # too narrow, too low
        sub = tmp_path / f'{shape[0]}x{shape[1]}'
        path = write_png(sub / 'small.png', noise((*shape, 3)))
        ds = wrapper('sr-implicit-downsampled', image_folder(str(sub)), inp_size=48, scale_min=1)
        with pytest.raises(DataError) as e:
            ds[0]
        msg = str(e.value)
        assert path in msg and f'{shape[0]}x{shape[1]}' in msg and '48x48' in msg
    path = write_png(tmp_path / 'i' / 'small.png', noise((30, 60, 3)))
    ds = wrapper('sr-implicit-downsampled', image_folder(str(tmp_path / 'i')), inp_size=10, scale_min=4)
    with pytest.raises(DataError) as e:  # the HR crop (40) is the one that does not fit
        ds.pair(0)
    assert path in str(e.value) and '40x40' in str(e.value)
    ds = wrapper('sr-implicit-downsampled', image_folder(str(tmp_path / 'i')), scale_min=31)
    with pytest.raises(DataError) as e:  # whole image: LR would be 0 pixels high
        ds[0]
    assert path in str(e.value)


def test_fit_scale_lets_small_images_draw_smaller_scales(tmp_path):
    root = folder(tmp_path / 'mixed', {'a_small.png': noise((70, 90, 3), 1), 'b_big.png': noise((300, 260, 3), 2)})
    args = dict(inp_size=48, scale_max=4, augment=True, sample_q=500)
    with pytest.raises(DataError, match='fit_scale: true lets small images'):
        [wrapper('sr-implicit-downsampled', image_folder(root), **args)[(e, 0)] for e in range(20)]
    fitted = wrapper('sr-implicit-downsampled', image_folder(root), fit_scale=True, **args)
    sides = [fitted.crop(0, fitted.rng(0, e))[1].shape[0] for e in range(200)]
    assert max(sides) <= 70 and min(sides) == 48 and len(set(sides)) > 15  # scales 1 to 70/48, spread out
    assert fitted[(0, 0)]['inp'].shape == (3, 48, 48)
    plain = wrapper('sr-implicit-downsampled', image_folder(root), **args)
    for e in range(5):  # an image large enough draws exactly as without fit_scale
        assert same_sample(plain[(e, 1)], fitted[(e, 1)])
    tiny = wrapper('sr-implicit-downsampled', image_folder(root), fit_scale=True, scale_min=2, **args)
    with pytest.raises(DataError, match='70x90, smaller than the 96x96 crop'):
        tiny[(0, 0)]


def test_sample_q_too_large(tmp_path):
    path = write_png(tmp_path / 'i' / 'a.png', noise((20, 20, 3)))
    inner = image_folder(str(tmp_path / 'i'))
    ok = wrapper('sr-implicit-downsampled', inner, inp_size=8, scale_min=1, sample_q=64)[0]
    assert len(torch.unique(ok['coord'], dim=0)) == 64  # exactly all pixels
    with pytest.raises(ArgError, match=r'^sample_q 65: expected at most 64, the pixels of the smallest HR crop \(8x8'):
        wrapper('sr-implicit-downsampled', inner, inp_size=8, scale_min=1, sample_q=65)  # before any image is read
    whole = wrapper('sr-implicit-downsampled', inner, scale_min=1, sample_q=401)  # whole images: known when read
    with pytest.raises(DataError) as e:
        whole[0]
    assert path in str(e.value) and '401 is more than the 400 pixels' in str(e.value)


# ------------------------------------------------------------------------------------------
# sr-implicit-paired (Set5, MATLAB LR files)

def set5_paired(scale, **args):
    hr = need(os.path.join(BENCH, 'Set5', 'HR'))
    lr = need(os.path.join(BENCH, 'Set5', 'LR_bicubic', f'X{scale}'))
    inner = datasets.make({'name': 'paired-image-folders',
                           'args': {'root_path_1': lr, 'root_path_2': hr, 'cache': 'in_memory'}})
    return wrapper('sr-implicit-paired', inner, **args)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_paired_set5_whole(scale):
    ds = set5_paired(scale)
    assert len(ds) == 5
    for idx in range(5):
        lr_full, hr_full = ds.dataset[idx]
        lr, hr = ds.pair(idx)
        h, w = lr_full.shape[:2]
        assert lr.shape == (3, h, w) and hr.shape == (3, h * scale, w * scale)
        np.testing.assert_array_equal(to_u8(lr), lr_full)
        np.testing.assert_array_equal(to_u8(hr), hr_full[:h * scale, :w * scale])
    s = ds[4]  # woman: 344x228 HR
    H, W = hr_shape(s)
    assert (H, W) == ({2: 344, 3: 342, 4: 344}[scale], 228)
    assert s['gt'].shape == (H * W, 3)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_paired_set5_aligned_crops(scale):
    ds = set5_paired(scale, inp_size=24, sample_q=100)
    for idx in range(5):
        lr_full, hr_full = ds.dataset[idx]
        lr, hr = ds.pair(idx)
        assert lr.shape == (3, 24, 24) and hr.shape == (3, 24 * scale, 24 * scale)
        where = find_window(lr_full, to_u8(lr))
        assert where, 'LR crop not found in the LR file'
        assert any(np.array_equal(to_u8(hr), hr_full[x * scale:(x + 24) * scale, y * scale:(y + 24) * scale])
                   for x, y in where)
        s = ds[idx]
        assert s['inp'].shape == (3, 24, 24) and s['gt'].shape == (100, 3)
        assert torch.allclose(s['cell'], torch.full((100, 2), 2 / (24 * scale)))


def test_paired_bad_sizes(tmp_path):
    def make(lr_shape, hr_shape, **args):
        sub = tmp_path / f'{lr_shape[0]}x{lr_shape[1]}-{hr_shape[0]}x{hr_shape[1]}'
        inner = datasets.make({'name': 'paired-image-folders', 'args': {
            'root_path_1': folder(sub / 'lr', {'l.png': noise((*lr_shape, 3))}),
            'root_path_2': folder(sub / 'hr', {'h.png': noise((*hr_shape, 3))})}})
        return wrapper('sr-implicit-paired', inner, **args)

    for lr_shape, hr_shape in [((10, 11), (20, 20)), ((10, 10), (8, 8))]:
        with pytest.raises(DataError) as e:
            make(lr_shape, hr_shape)[0]
        assert 'l.png' in str(e.value) and 'h.png' in str(e.value)
    with pytest.raises(DataError) as e:
        make((10, 12), (20, 24), inp_size=11).pair(0)
    assert 'l.png' in str(e.value) and '10x12' in str(e.value) and '11x11' in str(e.value)
    lr, hr = make((10, 12), (31, 37)).pair(0)  # HR beyond s * LR is cut off
    assert lr.shape == (3, 10, 12) and hr.shape == (3, 30, 36)


# ------------------------------------------------------------------------------------------
# augmentation

def test_augment_consistent_and_all_flips(tmp_path):
    root = folder(tmp_path / 'i', {'a.png': noise((40, 44, 3), 5)})
    ds = wrapper('sr-implicit-downsampled', image_folder(root, repeat=40), inp_size=8, scale_min=2,
                 augment=True)
    used = []
    for idx in range(40):
        lr0, hr0 = ds.pair(idx)  # the same crop, before augmentation
        s = ds[idx]
        gt = gt_image(s, 16, 16)
        match = [t for t in DIHEDRAL if torch.equal(transform(hr0, *t), gt)]
        assert len(match) == 1
        assert torch.equal(transform(lr0, *match[0]), s['inp'])
        assert torch.equal(s['coord'], make_coord((16, 16)))
        used.append(match[0])
    for k in range(3):  # each of the three flips happens, and not always
        assert {t[k] for t in used} == {False, True}
    assert len(set(used)) >= 6


def test_augment_non_square_transpose(tmp_path):
    img = noise((30, 20, 3), 6)
    ds = wrapper('sr-implicit-downsampled', image_folder(folder(tmp_path / 'i', {'a.png': img}), repeat=20),
                 scale_min=2, augment=True, sample_q=50)
    shapes = set()
    for idx in range(20):
        s = ds[idx]
        H, W = hr_shape(s)
        assert s['inp'].shape[-2:] == (H // 2, W // 2)
        shapes.add((H, W))
    assert shapes == {(30, 20), (20, 30)}


def test_augment_paired(tmp_path):
    lr_img, hr_img = noise((12, 12, 3), 1), noise((36, 36, 3), 2)
    inner = datasets.make({'name': 'paired-image-folders', 'args': {
        'root_path_1': folder(tmp_path / 'lr', {'a.png': lr_img}),
        'root_path_2': folder(tmp_path / 'hr', {'a.png': hr_img}), 'repeat': 16}})
    ds = wrapper('sr-implicit-paired', inner, inp_size=5, augment=True)
    used = set()
    for idx in range(16):
        lr0, hr0 = ds.pair(idx)
        s = ds[idx]
        match = [t for t in DIHEDRAL if torch.equal(transform(hr0, *t), gt_image(s, 15, 15))]
        assert len(match) == 1 and torch.equal(transform(lr0, *match[0]), s['inp'])
        used.add(match[0])
    assert len(used) > 2


# ------------------------------------------------------------------------------------------
# determinism

def test_deterministic_by_key(big_image):
    root, _ = big_image

    def make(**args):
        return wrapper('sr-implicit-downsampled', image_folder(root, repeat=8), inp_size=16, scale_min=1,
                       scale_max=4, augment=True, sample_q=64, **args)

    ds, twin = make(), make()
    a = ds[(3, 5)]
    for k in range(4):  # other samples drawn in between
        ds[(k, k)]
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    assert same_sample(a, ds[(3, 5)])
    assert same_sample(a, twin[(3, 5)])
    assert not torch.equal(a['inp'], ds[(4, 5)]['inp'])  # another epoch: another crop
    assert not torch.equal(a['inp'], ds[(3, 6)]['inp'])
    assert same_sample(ds[5], ds[(0, 5)])
    assert same_sample(ds[np.int64(5)], ds[(0, 5)])
    other_seed = make(seed=1)
    assert not torch.equal(a['inp'], other_seed[(3, 5)]['inp'])
    assert same_sample(make(seed=1)[(3, 5)], other_seed[(3, 5)])


def test_dataloader_workers_same_batches(big_image):
    root, _ = big_image
    ds = wrapper('sr-implicit-downsampled', image_folder(root, repeat=6), inp_size=8, scale_min=1,
                 scale_max=3, augment=True, sample_q=32)
    info = DistInfo(0, 1, CPU)

    def batches(workers):
        sampler = EpochSampler(len(ds), info, seed=0, shuffle=True, pad=True)
        sampler.set_epoch(2)
        loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers)
        return list(loader)

    zero = batches(0)
    assert len(zero) == 2 and zero[0]['inp'].shape == (3, 3, 8, 8) and zero[0]['gt'].shape == (3, 32, 3)
    two = batches(2)
    assert len(two) == len(zero) and all(same_sample(a, b) for a, b in zip(zero, two))


# ------------------------------------------------------------------------------------------
# sr-implicit-uniform-varied

@pytest.mark.parametrize('hr_hw', [(40, 60), (60, 40)])
def test_uniform_varied_sizes(tmp_path, hr_hw):
    lows = {f'{i}.png': noise((8, 8, 3), i) for i in range(3)}
    highs = {f'{i}.png': noise((*hr_hw, 3), 10 + i) for i in range(3)}
    inner = datasets.make({'name': 'paired-image-folders', 'args': {
        'root_path_1': folder(tmp_path / 'lr', lows), 'root_path_2': folder(tmp_path / 'hr', highs)}})
    ds = wrapper('sr-implicit-uniform-varied', inner, size_min=10, size_max=30)
    for idx, short in enumerate([10, 20, 30]):
        lr, hr = ds.pair(idx)
        np.testing.assert_array_equal(to_u8(lr), lows[f'{idx}.png'])
        long = int(short * max(hr_hw) / min(hr_hw))
        expected = (short, long) if hr_hw[0] < hr_hw[1] else (long, short)
        assert tuple(hr.shape[-2:]) == expected
        np.testing.assert_array_equal(to_u8(hr), pil_bicubic(highs[f'{idx}.png'], *expected))
        s = ds[idx]
        assert hr_shape(s) == expected and s['gt'].shape == (expected[0] * expected[1], 3)
        assert torch.equal(s['inp'], lr)


def test_uniform_varied_flip(tmp_path):
    inner = datasets.make({'name': 'paired-image-folders', 'args': {
        'root_path_1': folder(tmp_path / 'lr', {'a.png': noise((6, 6, 3), 1)}),
        'root_path_2': folder(tmp_path / 'hr', {'a.png': noise((12, 12, 3), 2)}), 'repeat': 12}})
    plain = wrapper('sr-implicit-uniform-varied', inner, size_min=12)
    flip = wrapper('sr-implicit-uniform-varied', inner, size_min=12, augment=True)
    flipped = []
    for idx in range(12):
        lr0, hr0 = plain.pair(idx)
        s = flip[idx]
        gt = gt_image(s, 12, 12)
        f = torch.equal(gt, hr0.flip(-1)) and torch.equal(s['inp'], lr0.flip(-1))
        assert f or (torch.equal(gt, hr0) and torch.equal(s['inp'], lr0))
        flipped.append(f)
    assert set(flipped) == {False, True}


# ------------------------------------------------------------------------------------------
# EpochSampler, make_sr_dataset

def ranks(n, world, seed=0, shuffle=True, pad=True, epoch=0):
    out = []
    for r in range(world):
        sampler = EpochSampler(n, DistInfo(r, world, CPU), seed, shuffle=shuffle, pad=pad)
        sampler.set_epoch(epoch)
        keys = list(sampler)
        assert len(sampler) == len(keys)
        assert all(isinstance(k, tuple) and k[0] == epoch and type(k[1]) is int for k in keys)
        out.append([i for _, i in keys])
    return out


def test_epoch_sampler_single_process():
    (a,) = ranks(10, 1, epoch=0)
    (b,) = ranks(10, 1, epoch=1)
    assert sorted(a) == sorted(b) == list(range(10))
    assert a != b and a != list(range(10))
    assert ranks(10, 1, epoch=1) == [b]
    assert ranks(10, 1, seed=5, epoch=1) != [b]
    assert ranks(10, 1, shuffle=False, pad=False) == [list(range(10))]


def test_epoch_sampler_two_ranks():
    r0, r1 = ranks(8, 2, epoch=3)
    assert len(r0) == len(r1) == 4
    assert not set(r0) & set(r1)
    assert sorted(r0 + r1) == list(range(8))
    (whole,) = ranks(8, 1, epoch=3)  # the same permutation, split element by element
    assert r0 == whole[0::2] and r1 == whole[1::2]
    assert ranks(8, 2, epoch=4) != [r0, r1]

    r0, r1 = ranks(7, 2, epoch=3, pad=False)
    assert (len(r0), len(r1)) == (4, 3) and sorted(r0 + r1) == list(range(7))

    r0, r1 = ranks(7, 2, epoch=3, pad=True)  # padded from the start of the permutation
    (whole,) = ranks(7, 1, epoch=3)
    assert len(r0) == len(r1) == 4
    assert set(r0 + r1) == set(range(7))
    assert r0 == whole[0::2] and r1 == whole[1::2] + [whole[0]]

    r = ranks(5, 4, pad=True)
    assert [len(x) for x in r] == [2] * 4 and set(sum(r, [])) == set(range(5))


def test_make_sr_dataset(tmp_path):
    root = folder(tmp_path / 'i', {'a.png': noise((30, 30, 3))})
    cfg = {'train_dataset': {
        'dataset': {'name': 'image-folder', 'args': {'root_path': root, 'repeat': 2}},
        'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'inp_size': 8, 'scale_max': 3}}}}
    ds = make_sr_dataset(cfg, 'train_dataset', seed=7)
    assert type(ds).__name__ == 'SRImplicitDownsampled' and ds.seed == 7 and len(ds) == 2
    assert ds[0]['inp'].shape == (3, 8, 8)
    cfg['train_dataset']['wrapper']['args']['seed'] = 3
    assert make_sr_dataset(cfg, 'train_dataset', seed=7).seed == 3


@pytest.mark.parametrize('name, args, message', [
    ('sr-implicit-downsampled', {'scale_max': -1}, 'scale_max -1: expected a number >= scale_min (1)'),
    ('sr-implicit-downsampled', {'scale_min': 2, 'scale_max': 1.5}, 'scale_max 1.5: expected a number >= scale_min (2)'),
    ('sr-implicit-downsampled', {'scale_min': 0.5}, 'scale_min 0.5: expected a number >= 1'),
    ('sr-implicit-downsampled', {'scale_max': 'four'}, "scale_max 'four': expected a number >= scale_min"),
    ('sr-implicit-downsampled', {'inp_size': 0}, 'inp_size 0: expected a positive whole number of LR pixels'),
    ('sr-implicit-downsampled', {'inp_size': 24.5}, 'inp_size 24.5: expected a positive whole number'),
    ('sr-implicit-downsampled', {'sample_q': -5}, 'sample_q -5: expected a positive whole number of query pixels'),
    ('sr-implicit-downsampled', {'augment': 'yes'}, "augment 'yes': expected true or false"),
    ('sr-implicit-downsampled', {'fit_scale': 1}, 'fit_scale 1: expected true or false'),
    ('sr-implicit-downsampled', {'seed': -1}, 'seed -1: expected a whole number >= 0'),
    ('sr-implicit-paired', {'inp_size': -3}, 'inp_size -3: expected a positive whole number'),
    ('sr-implicit-uniform-varied', {'size_min': 10, 'size_max': 5}, 'size_max 5: expected a whole number >= size_min (10)'),
    ('sr-implicit-uniform-varied', {'size_min': 0}, 'size_min 0: expected a positive whole number'),
])
def test_bad_wrapper_args_name_their_config_key(tmp_path, name, args, message):
    """A wrapper argument it cannot use fails when the data set is made (train.py: before the run
    folder exists), with the config key, the value and what is expected."""
    root = folder(tmp_path / 'i', {'a.png': noise((30, 30, 3))})
    if name == 'sr-implicit-downsampled':
        inner = {'name': 'image-folder', 'args': {'root_path': root}}
    else:
        inner = {'name': 'paired-image-folders', 'args': {'root_path_1': root, 'root_path_2': root}}
    cfg = {'train_dataset': {'dataset': inner, 'wrapper': {'name': name, 'args': args}}}
    with pytest.raises(ConfigError) as e:
        make_sr_dataset(cfg, 'train_dataset', seed=0)
    assert str(e.value).startswith('train_dataset.wrapper.args.' + message), str(e.value)
