"""Image quality metrics with the official LIIF protocol."""
import torch

# ITU-R BT.601 luma for [0, 1] RGB, without the +16 offset (it cancels in a difference)
Y_COEFFS = (65.738 / 256, 129.057 / 256, 25.064 / 256)


def rgb_to_y(img):
    """(..., 3, H, W) RGB in [0, 1] -> (..., H, W) luma (offset-free)."""
    return (img * img.new_tensor(Y_COEFFS).view(3, 1, 1)).sum(dim=-3)


def psnr(sr, hr, shave=0, y_channel=False):
    """PSNR in dB of (..., C, H, W) images in [0, 1], `shave` pixels cut at every border,
    on the Y channel when `y_channel` and the images have 3 channels."""
    diff = sr.double() - hr.double()
    diff = rgb_to_y(diff) if y_channel and diff.shape[-3] == 3 else diff
    if shave:
        diff = diff[..., shave:-shave, shave:-shave]
    return (-10 * torch.log10(diff.pow(2).mean())).item()


def ssim(sr, hr, shave=0, y_channel=True):
    """SSIM (Wang et al. 2004) of (..., C, H, W) images in [0, 1], as used in SR papers: with `y_channel`
    and 3 channels on the BT.601 luma on 0..255 with the +16 offset (MATLAB `rgb2ycbcr` / BasicSR
    `calculate_ssim` on Y), single-channel images as they are (times 255), otherwise per channel on
    0..255 and averaged; `shave` pixels cut at every border first. 11x11 Gaussian window (sigma 1.5),
    'valid' filtering (MATLAB `filter2(..., 'valid')` as in Wang's ssim_index.m), K1 = 0.01, K2 = 0.03,
    L = 255; the mean of the SSIM map, in float64. Predictions are not rounded to 8 bits first (as in the
    official protocol)."""
    if sr.shape != hr.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if sr.dim() < 3:
        raise ValueError(f"ssim: expected (..., C, H, W) images, got shape {tuple(sr.shape)}")
    x, y = sr.double() * 255, hr.double() * 255
    if y_channel and x.shape[-3] == 3:
        x, y = (16 + rgb_to_y(x)).unsqueeze(-3), (16 + rgb_to_y(y)).unsqueeze(-3)
    if shave:
        x, y = x[..., shave:-shave, shave:-shave], y[..., shave:-shave, shave:-shave]
    size = 11
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"ssim: images must be at least {size}x{size} after shaving {shave} pixels "
                         f"per border, got {h}x{w}")
    x, y = x.reshape(-1, 1, h, w), y.reshape(-1, 1, h, w)
    n = x.shape[0]
    # the normalised 1-D Gaussian whose outer product is MATLAB's fspecial('gaussian', 11, 1.5)
    g = torch.exp(-(torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2) ** 2 / (2 * 1.5 ** 2))
    g = g / g.sum()
    # filter x, y, x^2, y^2, xy at once with the separable window, 'valid' (no padding)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=0)
    stack = torch.nn.functional.conv2d(stack, g.view(1, 1, 1, size))
    stack = torch.nn.functional.conv2d(stack, g.view(1, 1, size, 1))
    mu1, mu2, e11, e22, e12 = stack.split(n, dim=0)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq, sigma2_sq, sigma12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu1_mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean().item()
