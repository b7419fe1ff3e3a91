"""EDSR (Lim et al., 2017) as an LIIF encoder.

Parameter names follow the official LIIF code so its checkpoints load strictly:
`head.0`, `body.{i}.body.{0,2}`, `body.{n}`, `tail.*`, and the MeanShift convs
`sub_mean` / `add_mean`, which are kept in the state dict but never applied
(LIIF normalises its input outside the encoder).
"""
import math

import torch
import torch.nn as nn

from .base import conv_radius
from .models import register


def conv3x3(in_channels, out_channels):
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class MeanShift(nn.Conv2d):
    """A fixed 1x1 conv that adds or subtracts the DIV2K mean colour."""

    def __init__(self, rgb_range=1, rgb_mean=(0.4488, 0.4371, 0.4040), sign=-1):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean)
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, n_feats, res_scale):
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: conv + PixelShuffle, once for x3, log2(s) times for 2^n."""

    def __init__(self, scale, n_feats):
        layers = []
        if scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        elif scale >= 2 and scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        else:
            raise ValueError(f"EDSR upsampler supports scale 2, 3, 4, 8...; got {scale}")
        super().__init__(*layers)


class EDSR(nn.Module):
    def __init__(self, n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range, n_colors=3):
        super().__init__()
        self.no_upsampling = no_upsampling
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(conv3x3(n_colors, n_feats))
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  conv3x3(n_feats, n_feats))
        if no_upsampling:
            self.out_dim = n_feats
        else:
            self.out_dim = n_colors
            self.tail = nn.Sequential(Upsampler(scale, n_feats), conv3x3(n_feats, n_colors))
        # the encoder contract (models/base.py); an upsampling EDSR's features are not on the
        # input's grid, so it is encoded whole
        self.receptive_radius = conv_radius(self) if no_upsampling else None
        self.window = 1

    def forward(self, x):
        x = self.head(x)
        x = self.body(x) + x
        return x if self.no_upsampling else self.tail(x)


@register('edsr-baseline')
def make_edsr_baseline(n_resblocks=16, n_feats=64, res_scale=1, scale=2, no_upsampling=False, rgb_range=1):
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)


@register('edsr')
def make_edsr(n_resblocks=32, n_feats=256, res_scale=0.1, scale=2, no_upsampling=False, rgb_range=1):
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)
