"""CiaoSR's cross-scale attention (Cao et al., CVPR 2023, "the attention in attention"; the
CrossScaleAttention of CSNLN as CiaoSR's code has it, official names), and the non-local
features CiaoSR and LM-CiaoSR compute with it, as LMF computes them (tiles of 48 x 48).

For a feature map X (B, C, H, W) and each scale s of `scale` (officially [2]):
  X padded by reflection at the bottom/right to a multiple of s; E = PReLU(1x1 conv)(X) (the
  `conv_assembly`), M = PReLU(1x1 conv to C/2)(X) (`conv_match_1`); the reference R =
  PReLU(1x1 conv)(X bilinearly downscaled by s) (`conv_match_2`);
  every R pixel's 3x3 patch (C/2 x 3 x 3, divided by its L2 norm or 1e-4) is a filter scored
  against M's 3x3 neighbourhoods; a softmax of 10 x the scores over the patches weights the
  3s x 3s patches of E taken at stride s (zero "same" padding) in a transposed convolution
  (stride s) back to s H x s W; a 3x3 conv of stride s (`down`) brings it to H x W, / 6;
  cropped to the input's size. The scales' outputs are concatenated (C per scale).
Its cost grows with (H W)^2, hence LMF's tiles.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

TILE = 48  # LMF's non-local tiles (its gen_feat): maps of more than TILE^2 pixels are split


def conv1x1_prelu(in_channels, out_channels):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.PReLU())


class CrossScaleAttention(nn.Module):
    def __init__(self, channel=64, reduction=2, scale=(2,), softmax_scale=10):
        super().__init__()
        self.scale, self.softmax_scale = list(scale), softmax_scale
        self.register_buffer('escape_NaN', torch.FloatTensor([1e-4]))
        self.conv_match_1 = conv1x1_prelu(channel, channel // reduction)
        self.conv_match_2 = conv1x1_prelu(channel, channel // reduction)
        self.conv_assembly = conv1x1_prelu(channel, channel)
        self.down = nn.Conv2d(channel, channel, 3, stride=2, padding=1)
        for s in (3, 4):  # the official names of the other scales' downsampling convs
            if s in self.scale:
                setattr(self, f'downx{s}', nn.Conv2d(channel, channel, 3, stride=s, padding=1))

    def forward(self, x):
        return torch.cat([self.attend(x, s) for s in self.scale], dim=1)

    def attend(self, x, s):
        H, W = x.shape[-2:]
        # (a map one pixel thin, which the official reflection cannot pad, repeats its edge)
        x = F.pad(x, (0, -W % s, 0, -H % s), mode='reflect' if min(H, W) > 1 else 'replicate')
        Hp, Wp = x.shape[-2:]
        embed, match = self.conv_assembly(x), self.conv_match_1(x)
        ref = self.conv_match_2(F.interpolate(x, scale_factor=1 / s, mode='bilinear', align_corners=False))
        # E's 3s x 3s patches at stride s with TensorFlow's "same" padding: one per reference pixel
        k = 3 * s
        pad_h, pad_w = max(0, (math.ceil(Hp / s) - 1) * s + k - Hp), max(0, (math.ceil(Wp / s) - 1) * s + k - Wp)
        raw = F.pad(embed, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        raw = F.unfold(raw, k, stride=s).transpose(1, 2)                   # (B, L, C * k * k)
        patches = F.unfold(ref, 3, padding=1).transpose(1, 2)             # (B, L, C/2 * 9)
        down = self.down if s == 2 else getattr(self, f'downx{s}')
        out = []
        for i in range(x.shape[0]):
            w = patches[i] / torch.max(patches[i].norm(dim=1, keepdim=True), self.escape_NaN)
            score = F.conv2d(match[i:i + 1], w.view(-1, *match.shape[1:2], 3, 3), padding=1)   # (1, L, Hp, Wp)
            attn = F.softmax(score * self.softmax_scale, dim=1)
            y = F.conv_transpose2d(attn, raw[i].view(-1, x.shape[1], k, k), stride=s, padding=s)
            out.append(down(y) / 6)
        return torch.cat(out)[..., :H, :W]


def nonlocal_features(attention, feat):
    """LMF's non-local features of `feat` (B, C, h, w): the attention over the whole map when it
    has at most TILE^2 pixels, else over TILE x TILE tiles (the last of a row or column takes
    the remainder), each seen with one pixel of context where the map has one; a map thinner
    than a tile in either direction gets no tiles, hence zeros (as officially)."""
    h, w = feat.shape[-2:]
    if h * w <= TILE * TILE:
        return attention(feat)
    out = feat.new_zeros(feat.shape[0], feat.shape[1] * len(attention.scale), h, w)
    rows, cols = h // TILE, w // TILE
    for i in range(rows):
        r0, r1 = i * TILE, h if i == rows - 1 else (i + 1) * TILE
        for j in range(cols):
            c0, c1 = j * TILE, w if j == cols - 1 else (j + 1) * TILE
            top, left = int(r0 > 0), int(c0 > 0)
            tile = attention(feat[..., r0 - top:r1 + (r1 < h), c0 - left:c1 + (c1 < w)])
            out[..., r0:r1, c0:c1] = tile[..., top:top + r1 - r0, left:left + c1 - c0]
    return out
