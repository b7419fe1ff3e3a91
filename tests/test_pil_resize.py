"""datasets/pil_resize.py against the installed Pillow: the same uint8 pixels, bit for bit."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from shared import DATA, need
from datasets.pil_resize import (PRECISION_BITS, _resize, pil_bicubic, pil_bicubic_batch, resize_weights,
                              vertical_first)


def pillow(a, size):
    """The training pipeline's resize (datasets/wrappers.py): HWC or HW uint8 -> size (h, w)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((size[1], size[0]), Image.BICUBIC))


def chw(a):
    return torch.from_numpy(np.array(a)).permute(2, 0, 1).contiguous()


def hwc(t):
    return t.permute(1, 2, 0).numpy()


def image(rng, h, w, kind='noise'):
    """Random RGB uint8: uniform noise, 0/255 noise (most clipping), or smooth-ish rows."""
    if kind == 'noise':
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == 'binary':
        return (rng.integers(0, 2, (h, w, 3)) * 255).astype(np.uint8)
    return np.clip(np.cumsum(rng.integers(-12, 13, (h, w, 3)), 1) + 128, 0, 255).astype(np.uint8)


SQUARE = [(192, 48), (191, 48), (97, 48), (96, 48), (144, 48), (50, 48), (49, 48), (48, 48), (300, 17),
          (20, 48), (48, 97), (24, 48), (48, 49), (13, 1), (13, 2), (2, 1), (1, 1), (1, 3), (3, 2)]
RECT = [((192, 128), (48, 32)), ((100, 61), (33, 70)), ((61, 100), (70, 33)), ((128, 48), (32, 48)),
        ((48, 128), (48, 32)), ((40, 64), (97, 64)), ((64, 40), (64, 97)), ((37, 53), (1, 1)),
        ((37, 53), (2, 1)), ((37, 53), (1, 2)), ((1, 80), (1, 7)), ((80, 1), (3, 1)), ((1, 1), (4, 6)),
        ((120, 30), (20, 28)), ((30, 120), (28, 20)), ((90, 90), (30, 61)), ((17, 29), (64, 23)),
        ((23, 31), (5, 64)), ((150, 7), (3, 200))]


@pytest.mark.parametrize('kind', ['noise', 'binary', 'smooth'])
def test_square_sizes(kind):
    rng = np.random.default_rng(0)
    for n, m in SQUARE:
        a = image(rng, n, n, kind)
        assert np.array_equal(hwc(pil_bicubic(chw(a), (m, m))), pillow(a, (m, m))), (n, m)


@pytest.mark.parametrize('kind', ['noise', 'binary', 'smooth'])
def test_rectangular_and_one_axis(kind):
    rng = np.random.default_rng(1)
    for (H, W), (h, w) in RECT:
        a = image(rng, H, W, kind)
        assert np.array_equal(hwc(pil_bicubic(chw(a), (h, w))), pillow(a, (h, w))), ((H, W), (h, w))


def test_random_sizes_both_paths():
    rng = np.random.default_rng(2)
    for _ in range(60):
        H, W, h, w = (int(v) for v in rng.integers(1, 130, 4))
        a = image(rng, H, W, ['noise', 'binary', 'smooth'][_ % 3])
        ref = pillow(a, (h, w))
        for loop in (True, False):       # tap-by-tap (CPU default) and all-taps-at-once (GPU default)
            assert np.array_equal(hwc(pil_bicubic(chw(a), (h, w), _loop=loop)), ref), ((H, W), (h, w), loop)


# (H, W) -> (h, w) on both sides of Pillow's pass-order boundary H - h == 2 * max(W - w, 0)
BOUNDARY = [((60, 60), (20, 40), False), ((60, 60), (20, 41), True), ((60, 60), (1, 30), False),
            ((60, 60), (1, 31), True), ((40, 80), (12, 66), False), ((40, 80), (12, 67), True),
            ((80, 40), (40, 20), False), ((80, 40), (40, 21), True), ((50, 51), (6, 29), False),
            ((50, 51), (6, 30), True), ((50, 50), (49, 50), True), ((50, 50), (49, 90), True),
            ((50, 50), (51, 10), False), ((50, 50), (51, 90), False), ((50, 50), (25, 25), False),
            ((1000, 12), (99, 12), True), ((12, 1000), (12, 99), False)]


@pytest.mark.parametrize('src,dst,vfirst', BOUNDARY)
def test_pass_order(src, dst, vfirst):
    """Pillow 13 runs the vertical pass first iff H - h > 2 * max(W - w, 0); the other order
    gives different pixels (where both axes change), so this pins the rule down."""
    assert vertical_first(src, dst) == vfirst
    a = image(np.random.default_rng(3), *src)
    ref = pillow(a, dst)
    assert np.array_equal(hwc(pil_bicubic(chw(a), dst)), ref)
    if src[0] != dst[0] and src[1] != dst[1]:
        other = _resize(chw(a)[None], [src], dst, not vfirst)[0]
        assert not np.array_equal(hwc(other), ref)


def test_batched_and_unbatched_inputs():
    rng = np.random.default_rng(4)
    imgs = [image(rng, 70, 90) for _ in range(3)]
    batch = torch.stack([chw(a) for a in imgs])
    for size in [(35, 45), (70, 30), (17, 90), (140, 91), (70, 90)]:
        out = pil_bicubic(batch, size)
        assert out.shape == (3, 3) + size and out.dtype == torch.uint8
        for b, a in enumerate(imgs):
            ref = pillow(a, size)
            assert np.array_equal(hwc(out[b]), ref)
            assert np.array_equal(hwc(pil_bicubic(chw(a), size)), ref)
    same = pil_bicubic(batch, (70, 90))
    assert torch.equal(same, batch) and same.data_ptr() != batch.data_ptr()   # a copy, like Pillow
    gray = image(rng, 33, 47)[..., 0]        # mode 'L': one channel, same algorithm
    assert np.array_equal(pil_bicubic(torch.from_numpy(gray)[None], (12, 20))[0].numpy(), pillow(gray, (12, 20)))


def padded(rng, imgs):
    """Crops top-left aligned in a batch whose padding is random garbage."""
    Hmax, Wmax = max(a.shape[0] for a in imgs), max(a.shape[1] for a in imgs)
    crops = torch.from_numpy(rng.integers(0, 256, (len(imgs), 3, Hmax, Wmax), dtype=np.uint8))
    for b, a in enumerate(imgs):
        crops[b, :, :a.shape[0], :a.shape[1]] = chw(a)
    return crops


def test_batch_training_use():
    """16 square crops of 48..192 px to 48x48, as LR synthesis for training does."""
    rng = np.random.default_rng(5)
    imgs = [image(rng, s, s, ['noise', 'smooth'][b % 2]) for b, s in enumerate(rng.integers(48, 193, 16))]
    crops = padded(rng, imgs)
    sizes = torch.tensor([a.shape[:2] for a in imgs])
    for loop in (True, False):
        out = pil_bicubic_batch(crops, sizes, (48, 48), _loop=loop)
        assert out.shape == (16, 3, 48, 48) and out.dtype == torch.uint8
        for b, a in enumerate(imgs):
            assert np.array_equal(hwc(out[b]), pillow(a, (48, 48))), (a.shape, loop)


def test_batch_mixed_shapes_and_orders():
    """Non-square sizes (both pass orders in one batch), samples needing one pass or none,
    upscaled and downscaled samples together; list sizes."""
    rng = np.random.default_rng(6)
    shapes = [(40, 40), (120, 40), (40, 120), (40, 61), (97, 40), (20, 20), (40, 17), (3, 200), (200, 3), (41, 39)]
    imgs = [image(rng, h, w, 'binary' if b % 3 == 0 else 'noise') for b, (h, w) in enumerate(shapes)]
    assert len({vertical_first(s, (40, 40)) for s in shapes}) == 2
    crops = padded(rng, imgs)
    for loop in (True, False):
        out = pil_bicubic_batch(crops, shapes, (40, 40), _loop=loop)
        for b, a in enumerate(imgs):
            assert np.array_equal(hwc(out[b]), pillow(a, (40, 40))), (shapes[b], loop)
    out = pil_bicubic_batch(crops, shapes, (13, 77))
    for b, a in enumerate(imgs):
        assert np.array_equal(hwc(out[b]), pillow(a, (13, 77))), shapes[b]
    same = [(20, 30)] * 3                     # every sample already has the output size
    crops = padded(rng, [image(rng, 20, 30) for _ in range(3)])
    assert torch.equal(pil_bicubic_batch(crops, same, (20, 30)), crops[:, :, :20, :30])
    with pytest.raises(ValueError):
        pil_bicubic_batch(crops, [(21, 30)] * 3, (10, 10))


def test_resize_weights():
    idx, w = resize_weights(191, 48)
    assert idx.device.type == 'cpu' and idx.dtype == torch.int64 and w.dtype == torch.int64
    assert idx.shape == w.shape and idx.shape[0] == 48
    assert resize_weights(191, 48)[0] is idx                       # cached
    assert int(idx.min()) >= 0 and int(idx.max()) < 191
    assert (w.sum(1) - (1 << PRECISION_BITS)).abs().max() <= w.shape[1]   # normalised, up to rounding
    # identity: one tap of weight 1.0 on the pixel itself
    idx, w = resize_weights(30, 30)
    assert torch.equal(w.max(1).values, torch.full((30,), 1 << PRECISION_BITS))
    assert torch.equal(idx.gather(1, w.argmax(1, keepdim=True))[:, 0], torch.arange(30))


def test_real_image():
    path = need(os.path.join(DATA, 'benchmark', 'Set5', 'HR', 'baby.png'))
    with Image.open(path) as im:
        hr = np.asarray(im.convert('RGB'))
    H, W = hr.shape[:2]
    sizes = [(H // 2, W // 2), (H // 3, W // 3), (H // 4, W // 4), (137, 201), (H, W // 3)]
    for size in sizes:
        assert np.array_equal(hwc(pil_bicubic(chw(hr), size)), pillow(hr, size)), size
    crop = hr[100:164, 200:248]
    assert np.array_equal(hwc(pil_bicubic(chw(crop), (150, 97))), pillow(crop, (150, 97)))
    rng = np.random.default_rng(7)
    crops = []
    for s in rng.integers(48, 193, 8):
        y, x = rng.integers(0, H - s + 1), rng.integers(0, W - s + 1)
        crops.append(hr[y:y + s, x:x + s])
    out = pil_bicubic_batch(padded(rng, crops), [c.shape[:2] for c in crops], (48, 48))
    for b, c in enumerate(crops):
        assert np.array_equal(hwc(out[b]), pillow(c, (48, 48)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_cuda_matches_cpu():
    rng = np.random.default_rng(8)
    imgs = [image(rng, int(s), int(s)) for s in rng.integers(48, 193, 16)]
    crops = padded(rng, imgs)
    sizes = [a.shape[:2] for a in imgs]
    out = pil_bicubic_batch(crops.cuda(), sizes, (48, 48))
    assert out.is_cuda
    for b, a in enumerate(imgs):
        assert np.array_equal(hwc(out[b].cpu()), pillow(a, (48, 48)))
    a = imgs[0]
    assert np.array_equal(hwc(pil_bicubic(chw(a).cuda(), (31, 77)).cpu()), pillow(a, (31, 77)))
