"""utils/metrics.py: PSNR and SSIM against hand-computed values and an independent NumPy SSIM."""
import math
import os

import numpy as np
import pytest
import torch

from shared import DATA, need
from utils.metrics import Y_COEFFS, psnr, rgb_to_y, ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # 6.5025, 58.5225


def const(value, c=3, h=16, w=16):
    """(C, H, W) float64 image filled with `value` (a number or one value per channel)."""
    v = torch.as_tensor(value, dtype=torch.float64).reshape(-1, 1, 1)
    return v.expand(c, h, w).clone()


# ---------------------------------------------------------------- rgb_to_y

def test_rgb_to_y_primaries_and_white():
    px = torch.tensor([[1., 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=torch.float64)
    y = rgb_to_y(px.view(4, 3, 1, 1)).flatten().tolist()
    assert y[0] == pytest.approx(65.738 / 256, abs=1e-15)
    assert y[1] == pytest.approx(129.057 / 256, abs=1e-15)
    assert y[2] == pytest.approx(25.064 / 256, abs=1e-15)
    assert y[3] == pytest.approx((65.738 + 129.057 + 25.064) / 256, abs=1e-15)
    assert Y_COEFFS == (65.738 / 256, 129.057 / 256, 25.064 / 256)


# ---------------------------------------------------------------- PSNR

def test_psnr_constant_error_is_20db():
    hr = torch.zeros(3, 8, 8, dtype=torch.float64)
    sr = torch.full_like(hr, 0.1)  # mse 0.01
    assert psnr(sr, hr) == pytest.approx(20.0, abs=1e-9)
    assert psnr(sr.float(), hr.float()) == pytest.approx(20.0, abs=1e-5)


def test_psnr_shave_removes_border():
    hr = torch.zeros(3, 8, 8, dtype=torch.float64)
    sr = torch.full_like(hr, 0.5)           # 1-pixel border error 0.5
    sr[:, 1:-1, 1:-1] = 0.05                # 6x6 interior error 0.05
    # all 64 pixels: 28 border at 0.25, 36 interior at 0.0025
    mse_all = (28 * 0.25 + 36 * 0.0025) / 64
    assert psnr(sr, hr) == pytest.approx(-10 * math.log10(mse_all), abs=1e-9)
    assert psnr(sr, hr) == pytest.approx(9.5553374, abs=1e-6)
    # shave 1: only the interior, mse 0.0025 -> 26.0206 dB
    assert psnr(sr, hr, shave=1) == pytest.approx(26.020599913279625, abs=1e-9)
    assert psnr(sr, hr, shave=2) == pytest.approx(26.020599913279625, abs=1e-9)


def test_psnr_y_channel_blue_only_difference():
    hr = torch.zeros(3, 8, 8, dtype=torch.float64)
    sr = hr.clone()
    sr[2] = 0.5
    # Y diff = 0.5 * 25.064 / 256 = 0.048953125 -> -20 log10(0.048953125)
    assert psnr(sr, hr, y_channel=True) == pytest.approx(26.20439158204364, abs=1e-9)
    # RGB: mse = 0.25 / 3
    assert psnr(sr, hr) == pytest.approx(-10 * math.log10(0.25 / 3), abs=1e-9)


def test_psnr_y_channel_leaves_grayscale_alone():
    hr = torch.zeros(1, 8, 8, dtype=torch.float64)
    sr = torch.full_like(hr, 0.1)
    assert psnr(sr, hr, y_channel=True) == pytest.approx(20.0, abs=1e-9)
    assert psnr(sr.unsqueeze(0), hr.unsqueeze(0), y_channel=True) == pytest.approx(20.0, abs=1e-9)


# ---------------------------------------------------------------- SSIM: independent reference

def _gauss_window_np(size=11, sigma=1.5):
    w = np.zeros((size, size))
    r = size // 2
    for i in range(size):
        for j in range(size):
            w[i, j] = math.exp(-((i - r) ** 2 + (j - r) ** 2) / (2 * sigma ** 2))
    return w / w.sum()


def _ssim_np_plane(a, b):
    """Wang's ssim_index.m with explicit loops over the 'valid' windows; a, b on 0..255."""
    win = _gauss_window_np()
    k = win.shape[0]
    h, w = a.shape
    vals = []
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            pa, pb = a[i:i + k, j:j + k], b[i:i + k, j:j + k]
            mu_a, mu_b = (win * pa).sum(), (win * pb).sum()
            var_a = (win * pa * pa).sum() - mu_a ** 2
            var_b = (win * pb * pb).sum() - mu_b ** 2
            cov = (win * pa * pb).sum() - mu_a * mu_b
            vals.append(((2 * mu_a * mu_b + C1) * (2 * cov + C2))
                        / ((mu_a ** 2 + mu_b ** 2 + C1) * (var_a + var_b + C2)))
    return float(np.mean(vals))


def _y255_np(img):
    """(3, H, W) in [0, 1] -> Y on 0..255 with the +16 offset: the PSNR's BT.601 coefficients
    65.738, 129.057, 25.064 times 255/256 (= 65.4812, 128.5529, 24.9661, which MATLAB's
    rgb2ycbcr rounds to 65.481, 128.553, 24.966)."""
    k = 255 / 256
    return 16 + (65.738 * k * img[0] + 129.057 * k * img[1] + 25.064 * k * img[2])


@pytest.fixture(scope='module')
def pair():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 20, 24, generator=g, dtype=torch.float64)
    sr = (hr + 0.1 * torch.randn(3, 20, 24, generator=g, dtype=torch.float64)).clamp(0, 1)
    return sr, hr


def test_ssim_matches_numpy_reference_y(pair):
    sr, hr = pair
    ref = _ssim_np_plane(_y255_np(sr.numpy()), _y255_np(hr.numpy()))
    got = ssim(sr, hr)
    assert got == pytest.approx(ref, abs=1e-10)
    assert 0.3 < got < 0.99  # a real, non-trivial value


def test_ssim_matches_numpy_reference_rgb(pair):
    sr, hr = pair
    ref = np.mean([_ssim_np_plane(255 * sr[c].numpy(), 255 * hr[c].numpy()) for c in range(3)])
    assert ssim(sr, hr, y_channel=False) == pytest.approx(ref, abs=1e-10)
    assert ssim(sr, hr, y_channel=False) != pytest.approx(ssim(sr, hr), abs=1e-4)


def test_ssim_matches_numpy_reference_shaved(pair):
    sr, hr = pair
    s = 3
    ref = _ssim_np_plane(_y255_np(sr.numpy())[s:-s, s:-s], _y255_np(hr.numpy())[s:-s, s:-s])
    assert ssim(sr, hr, shave=s) == pytest.approx(ref, abs=1e-10)


def test_ssim_float32_input_close_to_float64(pair):
    sr, hr = pair
    assert ssim(sr.float(), hr.float()) == pytest.approx(ssim(sr, hr), abs=1e-6)


# ---------------------------------------------------------------- SSIM: hand values and properties

def test_ssim_identical_is_one(pair):
    sr, hr = pair
    assert ssim(hr, hr) == pytest.approx(1.0, abs=1e-12)
    assert ssim(hr, hr, y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_gray_images():
    v1, v2 = 0.2, 0.7
    m1, m2 = 255 * v1, 255 * v2  # 51, 178.5
    expected = (2 * m1 * m2 + C1) / (m1 ** 2 + m2 ** 2 + C1)  # contrast-structure term C2/C2 = 1
    a, b = const(v1, c=1), const(v2, c=1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-10)
    assert ssim(a, b, y_channel=False) == pytest.approx(expected, abs=1e-10)
    assert expected == pytest.approx(18213.5025 / 34469.7525, abs=1e-12)  # 0.52839


def test_ssim_constant_colors_in_y():
    # white: Y = 16 + 219.859 * 255/256 = 235.00017578125
    # (1, 0.5, 0.25): Y = 16 + (65.738 + 64.5285 + 6.266) * 255/256 = 151.999169921875
    y1, y2 = 235.00017578125, 151.999169921875
    expected = (2 * y1 * y2 + C1) / (y1 ** 2 + y2 ** 2 + C1)
    a, b = const(1.0), const([1.0, 0.5, 0.25])
    assert ssim(a, b) == pytest.approx(expected, abs=1e-10)
    # the +16 offset matters: without it the value would differ
    y1n, y2n = y1 - 16, y2 - 16
    assert ssim(a, b) != pytest.approx((2 * y1n * y2n + C1) / (y1n ** 2 + y2n ** 2 + C1), abs=1e-4)
    # per channel: R identical (1), G and B constant-pair formula
    per = [1.0] + [(2 * 255 * 255 * v + C1) / (255 ** 2 + (255 * v) ** 2 + C1) for v in (0.5, 0.25)]
    assert ssim(a, b, y_channel=False) == pytest.approx(sum(per) / 3, abs=1e-10)


def test_ssim_shave_removes_border_corruption(pair):
    _, hr = pair  # 20x24
    sr = hr.clone()
    sr[:, :3, :] = 1 - sr[:, :3, :]  # top 3 rows inverted
    sr[:, :, -2:] = 0.0              # right 2 columns black
    assert ssim(sr, hr) < 0.995  # 0.9837: edge rows get little Gaussian weight
    assert ssim(sr, hr, shave=2) < 1 - 1e-6
    assert ssim(sr, hr, shave=3) == pytest.approx(1.0, abs=1e-12)


def test_ssim_symmetric(pair):
    sr, hr = pair
    assert ssim(sr, hr) == pytest.approx(ssim(hr, sr), abs=1e-14)
    assert ssim(sr, hr, y_channel=False, shave=2) == pytest.approx(
        ssim(hr, sr, y_channel=False, shave=2), abs=1e-14)


def test_ssim_batch_dim_same_value(pair):
    sr, hr = pair
    assert ssim(sr.unsqueeze(0), hr.unsqueeze(0)) == pytest.approx(ssim(sr, hr), abs=1e-14)
    assert ssim(sr.unsqueeze(0), hr.unsqueeze(0), y_channel=False) == pytest.approx(
        ssim(sr, hr, y_channel=False), abs=1e-14)


def test_ssim_too_small_raises():
    a = torch.rand(3, 10, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match='11x11'):
        ssim(a, a)
    b = torch.rand(3, 16, 16, dtype=torch.float64)
    ssim(b, b)  # 16x16 is fine
    with pytest.raises(ValueError, match='11x11'):
        ssim(b, b, shave=3)  # 10x10 after shaving


def test_ssim_shape_mismatch_raises():
    with pytest.raises(ValueError):
        ssim(torch.rand(3, 16, 16), torch.rand(3, 16, 17))


# ---------------------------------------------------------------- Set14 bridge (single-channel file)

def test_bridge_grayscale_as_rgb():
    from PIL import Image
    path = need(os.path.join(DATA, 'benchmark', 'Set14', 'HR', 'bridge.png'))
    with Image.open(path) as im:
        gray = np.asarray(im.convert('L'), dtype=np.float64) / 255
        rgb = np.asarray(im.convert('RGB'), dtype=np.float64) / 255
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert np.array_equal(rgb[..., 0], gray)
    hr = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    y = rgb_to_y(hr)
    expected = torch.from_numpy(gray) * ((65.738 + 129.057 + 25.064) / 256)
    assert torch.allclose(y, expected, rtol=0, atol=1e-12)

    # the metrics on a gray image equal their definitions on its Y plane (a 40x44 crop, as the
    # loop-based reference is slow)
    hr = hr[:, :40, :44]
    g = torch.Generator().manual_seed(1)
    sr = (hr + 0.02 * torch.randn(hr.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    p, s = psnr(sr, hr, shave=2, y_channel=True), ssim(sr, hr, shave=2, y_channel=True)
    y_sr, y_hr = (_y255_np(x.numpy())[2:-2, 2:-2] for x in (sr, hr))
    assert p == pytest.approx(10 * math.log10(255 ** 2 / np.mean((y_sr - y_hr) ** 2)), abs=1e-9)
    assert s == pytest.approx(_ssim_np_plane(y_sr, y_hr), abs=1e-10)
