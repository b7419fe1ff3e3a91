"""Pixel-centre coordinates in [-1, 1], (row, col) order: the convention of every model and dataset."""
import torch


def coord_seq(n, v0=-1.0, v1=1.0, device=None):
    """The centres of n equal cells splitting [v0, v1]."""
    r = (v1 - v0) / (2 * n)
    return v0 + r + (2 * r) * torch.arange(n, device=device).float()


def make_coord(shape, ranges=None, flatten=True, device=None):
    """Coordinates of the pixel centres of a grid of `shape`: (*shape, 2), or (prod(shape), 2)."""
    seqs = [coord_seq(n, *(ranges[i] if ranges else (-1.0, 1.0)), device=device) for i, n in enumerate(shape)]
    ret = torch.stack(torch.meshgrid(*seqs, indexing='ij'), dim=-1)
    return ret.view(-1, ret.shape[-1]) if flatten else ret


def pixel_index(coord, n):
    """Index of the cell of an n-cell grid over [-1, 1] that holds `coord`, or would beyond the grid (-1, n,
    ...). The same arithmetic as `grid_sample(mode='nearest', align_corners=False)` (round half to even of the
    unnormalised coordinate), so the fast decoders pick the latents the official code picks, ties included."""
    return torch.round((coord + 1) * (n / 2) - 0.5).long()


def nearest_index(coord, n):
    """Index of the cell of an n-cell grid over [-1, 1] whose centre is nearest to `coord`."""
    return pixel_index(coord, n).clamp_(0, n - 1)


def to_pixel_samples(img):
    """(C, H, W) image -> coordinates (H*W, 2) and colours (H*W, C)."""
    return make_coord(img.shape[-2:], device=img.device), img.reshape(img.shape[0], -1).t()
