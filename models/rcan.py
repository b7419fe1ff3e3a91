"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018) as an encoder, with the official names (LMF's models/rcan.py), so its
checkpoints load strictly: `head.0`, `body.{g}.body.{b}.body.{0,2}` (an RCAB's convolutions),
`body.{g}.body.{b}.body.3.conv_du.{0,2}` (its channel attention), `body.{g}.body.{n_resblocks}`
(a group's closing conv), `body.{n_resgroups}`, `tail.*`, and the MeanShift convs (kept, never
applied).

  x0 = head(x); features = body(x0) + x0, body = n_resgroups residual groups + a conv;
  residual group: n_resblocks RCABs + a conv, plus its input; RCAB: conv, ReLU, conv, channel
  attention, plus its input.
The channel attention pools over the whole image (models/layers.py), so a feature depends on
every input pixel: the encoder declares receptive_radius None and models/upscale.py encodes an
image whole (its memory then grows with the LR image: about 64 channels x h x w floats a tensor).
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
