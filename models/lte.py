"""LTE: Local Texture Estimator (Lee and Jin, CVPR 2022), with the official names and arguments
(EDSR-baseline-, RDN-, SwinIR-LTE checkpoints load strictly). 3x3 convolutions estimate per LR
pixel amplitudes `coef` and frequencies `freq`; for a query x and each local-ensemble member p,
delta = (x - centre_p) * (h, w), r = cell * (h, w):
    f_k = freq_p[2k] delta_row + freq_p[2k+1] delta_col + phase(r)_k     (k < hidden_dim / 2)
    out = MLP(coef_p * [cos(pi f) || sin(pi f)])
blended by area, plus the bilinear LR input at x. The LR grid is the features' (LMF's copy; the
official LTE takes the input's, the same but for SwinIR on unpadded inputs). The basis is not
linear in delta, so the fast form keeps the MLP per member; it gathers coef and freq from one
table by index and runs the four members in one call.
"""
import math

import torch
import torch.nn as nn

from .base import LocalImplicitSR
from .local_ensemble import blend, ensemble_members, gather_rows, grid_rows, grid_size, plain_ensemble, sample_nearest
from .models import make, register


def fourier(coef, freq, dy, dx, phase):
    """LTE's basis coef * [cos(pi f) || sin(pi f)], f = freq[2k] dy + freq[2k+1] dx + phase
    (adjacent channels pair)."""
    f = (freq[..., 0::2] * dy + freq[..., 1::2] * dx + phase) * math.pi
    return coef * torch.cat([torch.cos(f), torch.sin(f)], dim=-1)


class TextureEstimator:
    """LTE's front end, shared by LTE and LM-LTE (lmlte.py): the `coef` and `freq` convolutions,
    the `phase` of the relative cell (official names), local ensemble always on, and the
    bilinear LR skip added to the output."""
    local_ensemble = True
    adds_lr_skip = True

    def build_texture(self, hidden_dim):
        self.coef = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)

    def texture_rows(self):
        """The coef and freq maps side by side, one row per LR pixel: (B*h*w, 2 * hidden)."""
        return grid_rows(torch.cat([self.coef(self.feat), self.freq(self.feat)], dim=1))


@register('lte')
class LTE(TextureEstimator, LocalImplicitSR):
    def __init__(self, encoder_spec, imnet_spec, hidden_dim=256):
        super().__init__(encoder_spec)
        self.build_texture(hidden_dim)
        self.imnet = make(imnet_spec, args={'in_dim': hidden_dim})

    def basis(self, coef, freq, rel, rel_cell):
        """The MLP input from gathered coef, freq (..., hidden), offsets rel (..., 2) and the
        relative cell (..., 2), all broadcastable."""
        return fourier(coef, freq, rel[..., :1], rel[..., 1:], self.phase(rel_cell))

    def query_rgb_plain(self, coord, cell):
        """The equations as written: grid_sample of the coef and freq maps per member."""
        h, w = self.feat.shape[-2:]
        coef, freq = self.coef(self.feat), self.freq(self.feat)
        rel_cell = cell * grid_size(h, w, coord)
        return plain_ensemble(coord, h, w, True, lambda near, rel: self.imnet(
            self.basis(sample_nearest(coef, near), sample_nearest(freq, near), rel, rel_cell)))

    def make_tables(self):
        return (self.texture_rows(),)

    def fast_query(self, coord, cell, tables, crop):
        iy, ix, rels = ensemble_members(coord, crop.full_h, crop.full_w, True)
        coef, freq = gather_rows(tables[0], iy, ix, crop).chunk(2, dim=-1)  # (members, B, Q, hidden) each
        rel_cell = cell * grid_size(crop.full_h, crop.full_w, cell)
        x = self.basis(coef, freq, rels.to(coef.dtype), rel_cell.to(coef.dtype))
        return blend(self.imnet(x), rels)  # all members in one call
