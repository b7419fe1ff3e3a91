"""RDN (Zhang et al., 2018) as an LIIF encoder, with the official key names
(`SFENet1`, `SFENet2`, `RDBs.{i}.convs.{j}.conv.0`, `RDBs.{i}.LFF`, `GFF.{0,1}`, `UPNet`)."""
import torch
import torch.nn as nn

from .layers import conv, conv_radius
from .models import register

# (number of blocks, convs per block, growth rate)
RDN_CONFIGS = {'A': (20, 6, 32), 'B': (16, 8, 64)}


class DenseLayer(nn.Module):
    """conv + ReLU whose output is concatenated to its input."""

    def __init__(self, in_channels, growth, kernel_size):
        super().__init__()
        self.conv = nn.Sequential(conv(in_channels, growth, kernel_size), nn.ReLU())

    def forward(self, x):
        return torch.cat([x, self.conv(x)], 1)


class RDB(nn.Module):
    """Residual dense block: densely connected convs, 1x1 local fusion, local residual."""

    def __init__(self, G0, G, n_convs, kernel_size):
        super().__init__()
        self.convs = nn.Sequential(*[DenseLayer(G0 + i * G, G, kernel_size) for i in range(n_convs)])
        self.LFF = conv(G0 + n_convs * G, G0, 1)

    def forward(self, x):
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    def __init__(self, G0=64, RDNkSize=3, RDNconfig='B', scale=2, no_upsampling=False, n_colors=3):
        super().__init__()
        if RDNconfig not in RDN_CONFIGS:
            raise ValueError(f"unknown RDNconfig {RDNconfig!r}; known: {', '.join(RDN_CONFIGS)}")
        n_blocks, n_convs, G = RDN_CONFIGS[RDNconfig]
        k = RDNkSize
        self.no_upsampling = no_upsampling
        self.SFENet1 = conv(n_colors, G0, k)
        self.SFENet2 = conv(G0, G0, k)
        self.RDBs = nn.ModuleList([RDB(G0, G, n_convs, k) for _ in range(n_blocks)])
        self.GFF = nn.Sequential(conv(n_blocks * G0, G0, 1), conv(G0, G0, k))
        self.window = 1  # the encoder contract (models/base.py), as in edsr.py
        if no_upsampling:
            self.out_dim = G0
            self.receptive_radius = conv_radius(self)
            return
        self.receptive_radius = None
        self.out_dim = n_colors
        if scale in (2, 3):
            self.UPNet = nn.Sequential(conv(G0, G * scale * scale, k), nn.PixelShuffle(scale),
                                       conv(G, n_colors, k))
        elif scale == 4:
            self.UPNet = nn.Sequential(conv(G0, G * 4, k), nn.PixelShuffle(2),
                                       conv(G, G * 4, k), nn.PixelShuffle(2),
                                       conv(G, n_colors, k))
        else:
            raise ValueError(f"RDN upsampler supports scale 2, 3, 4; got {scale}")

    def forward(self, x):
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        block_outputs = []
        for block in self.RDBs:
            x = block(x)
            block_outputs.append(x)
        x = self.GFF(torch.cat(block_outputs, 1)) + shallow
        return x if self.no_upsampling else self.UPNet(x)


register('rdn')(RDN)
