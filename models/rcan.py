"""RCAN (Zhang et al., ECCV 2018) as an encoder, with the official names (LMF's models/rcan.py):
n_resgroups residual groups (each n_resblocks RCABs, a conv, its input added; an RCAB: conv, ReLU,
conv, channel attention, its input added) and a conv, on EDSR's trunk (models/layers.py). The
channel attention pools over the whole image, so the encoder declares receptive_radius None and
models/upscale.py encodes an image whole (its memory grows with the LR image, about 64 x h x w
floats a tensor).
"""
import torch.nn as nn

from .layers import ChannelAttention, ResidualTrunk, conv
from .models import register


class RCAB(nn.Module):
    def __init__(self, n_feats, reduction):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats), nn.ReLU(True), conv(n_feats, n_feats),
                                  ChannelAttention(n_feats, reduction))

    def forward(self, x):
        return self.body(x) + x


class ResidualGroup(nn.Module):
    def __init__(self, n_feats, reduction, n_resblocks):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(n_feats, reduction) for _ in range(n_resblocks)], conv(n_feats, n_feats))

    def forward(self, x):
        return self.body(x) + x


class RCAN(ResidualTrunk):
    def __init__(self, n_resgroups, n_resblocks, n_feats, reduction, scale, no_upsampling, rgb_range):
        super().__init__([ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)], n_feats, scale,
                         no_upsampling, rgb_range)
        self.receptive_radius = None  # the encoder contract (models/base.py): global channel attention


@register('rcan')
def make_rcan(n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, scale=2, no_upsampling=False, rgb_range=1):
    return RCAN(n_resgroups, n_resblocks, n_feats, reduction, scale, no_upsampling, rgb_range)
