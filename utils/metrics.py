"""Image quality metrics with the official LIIF protocol."""
import torch

# ITU-R BT.601 luma for [0, 1] RGB, without the +16 offset (it cancels in a difference)
Y_COEFFS = (65.738 / 256, 129.057 / 256, 25.064 / 256)


def rgb_to_y(img):
    """(..., 3, H, W) RGB in [0, 1] -> (..., H, W) luma (offset-free)."""
    coeffs = img.new_tensor(Y_COEFFS).view(3, 1, 1)
    return (img * coeffs).sum(dim=-3)


def psnr(sr, hr, shave=0, y_channel=False):
    """PSNR in dB of (..., C, H, W) images in [0, 1], `shave` pixels cut at every border,
    on the Y channel when `y_channel` and the images have 3 channels."""
    diff = sr.double() - hr.double()
    diff = rgb_to_y(diff) if y_channel and diff.shape[-3] == 3 else diff
    if shave:
        diff = diff[..., shave:-shave, shave:-shave]
    return (-10 * torch.log10(diff.pow(2).mean())).item()
