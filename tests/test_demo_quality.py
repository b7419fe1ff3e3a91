"""demo.py with the official EDSR-baseline-LIIF weights: the result looks right (sharper than
bicubic, consistent with its input, clean alpha edges); skipped without the weights."""
import os

import numpy as np
import pytest
from PIL import Image

from demo_helpers import demo, disc, rgb_gradient
from shared import OFFICIAL_CKPT, REPO, need

SAMPLE = os.path.join(REPO, 'load', 'samples', 'coffee.png')


def psnr(a, b, peak=255.0):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(peak ** 2 / max(mse, 1e-12))


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
