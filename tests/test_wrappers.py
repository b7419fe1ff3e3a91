"""datasets/wrappers.py's SR wrappers without augmentation: sr-implicit-downsampled (shapes, crops,
bicubic LR, whole images, fit_scale, errors), sr-implicit-paired on Set5's MATLAB LR files and
sr-implicit-uniform-varied."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import datasets
from dataset_helpers import folder, gt_image, hr_shape, image_folder, noise, same_sample, wrapper, write_png
from datasets import ArgError, DataError
from shared import DATA, need
from utils.coords import make_coord

BENCH = os.path.join(DATA, 'benchmark')


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
    def make(lr_size, hr_size, **args):
        sub = tmp_path / f'{lr_size[0]}x{lr_size[1]}-{hr_size[0]}x{hr_size[1]}'
        inner = datasets.make({'name': 'paired-image-folders', 'args': {
            'root_path_1': folder(sub / 'lr', {'l.png': noise((*lr_size, 3))}),
            'root_path_2': folder(sub / 'hr', {'h.png': noise((*hr_size, 3))})}})
        return wrapper('sr-implicit-paired', inner, **args)

    for lr_size, hr_size in [((10, 11), (20, 20)), ((10, 10), (8, 8))]:
        with pytest.raises(DataError) as e:
            make(lr_size, hr_size)[0]
        assert 'l.png' in str(e.value) and 'h.png' in str(e.value)
    with pytest.raises(DataError) as e:
        make((10, 12), (20, 24), inp_size=11).pair(0)
    assert 'l.png' in str(e.value) and '10x12' in str(e.value) and '11x11' in str(e.value)
    lr, hr = make((10, 12), (31, 37)).pair(0)  # HR beyond s * LR is cut off
    assert lr.shape == (3, 10, 12) and hr.shape == (3, 30, 36)


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
