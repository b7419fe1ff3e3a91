"""EDSR (Lim et al., 2017) as an encoder, with the official LIIF names (its checkpoints load
strictly): `head.0`, `body.{i}.body.{0,2}`, `body.{n}`, `tail.*` and the unused MeanShift convs.
"""
import torch.nn as nn

from .layers import ResidualTrunk, conv, conv_radius
from .models import register


class ResBlock(nn.Module):
    def __init__(self, n_feats, res_scale):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats), nn.ReLU(True), conv(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


class EDSR(ResidualTrunk):
    def __init__(self, n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range):
        super().__init__([ResBlock(n_feats, res_scale) for _ in range(n_resblocks)], n_feats, scale, no_upsampling,
                         rgb_range)
        # the encoder contract (models/base.py); an upsampling EDSR's features are not on the
        # input's grid, so it is encoded whole
        self.receptive_radius = conv_radius(self) if no_upsampling else None


@register('edsr-baseline')
def make_edsr_baseline(n_resblocks=16, n_feats=64, res_scale=1, scale=2, no_upsampling=False, rgb_range=1):
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)


@register('edsr')
def make_edsr(n_resblocks=32, n_feats=256, res_scale=0.1, scale=2, no_upsampling=False, rgb_range=1):
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)
