"""Layers that encoders share (one definition each): same-size convolutions and the receptive
radius they add up to, EDSR's mean shift, upsampler and residual trunk (RCAN's too), RCAN's
channel attention, and the window attention of Swin-style transformers (SwinIR; the next window
encoder reuses it)."""
import math

import torch
import torch.nn as nn


def conv(in_channels, out_channels, kernel_size=3):
    """A convolution that keeps the spatial size (odd kernels)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


def conv_radius(module):
    """The receptive radius of a convolutional encoder: the sum of the reach of its convolutions
    (exact for a chain of convolutions, an upper bound with skips and dense connections)."""
    return sum(max(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
               for m in module.modules() if isinstance(m, nn.Conv2d))


class MeanShift(nn.Conv2d):
    """A fixed 1x1 conv that adds or subtracts the DIV2K mean colour (kept in EDSR's and RCAN's
    state dicts, never applied: the models normalise their input outside the encoder)."""

    def __init__(self, rgb_range=1, rgb_mean=(0.4488, 0.4371, 0.4040), sign=-1):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean)
        for p in self.parameters():
            p.requires_grad = False


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: conv + PixelShuffle, once for x3, log2(s) times for 2^n."""

    def __init__(self, scale, n_feats):
        layers = []
        if scale == 3:
            layers += [conv(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        elif scale >= 2 and scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        else:
            raise ValueError(f"EDSR upsampler supports scale 2, 3, 4, 8...; got {scale}")
        super().__init__(*layers)


class ResidualTrunk(nn.Module):
    """EDSR's layout, which RCAN shares (official names): `head` conv, `body` (the blocks, then a
    conv) with a skip over it, an upsampling `tail` unless no_upsampling, and the mean shifts."""

    def __init__(self, blocks, n_feats, scale, no_upsampling, rgb_range, n_colors=3):
        super().__init__()
        self.no_upsampling = no_upsampling
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(conv(n_colors, n_feats))
        self.body = nn.Sequential(*blocks, conv(n_feats, n_feats))
        if not no_upsampling:
            self.tail = nn.Sequential(Upsampler(scale, n_feats), conv(n_feats, n_colors))
        self.out_dim = n_feats if no_upsampling else n_colors
        self.window = 1  # the encoder contract (models/base.py)

    def forward(self, x):
        x = self.head(x)
        x = self.body(x) + x
        return x if self.no_upsampling else self.tail(x)


class ChannelAttention(nn.Module):
    """RCAN's channel attention (official names `conv_du.{0,2}`): each channel scaled by a
    sigmoid gate computed from the channels' means over the WHOLE image, so an output depends on
    every input pixel (tiles would change it)."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(x.mean((2, 3), keepdim=True))


# --- window attention (Swin) --------------------------------------------------------------------

class DropPath(nn.Module):
    """Stochastic depth: in train mode, zero the whole residual branch of a sample with
    probability p and scale the kept ones by 1 / (1 - p); identity in eval mode."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x.div(keep) * mask


class Mlp(nn.Module):
    """A transformer block's feed-forward part (names `fc1`, `fc2`)."""

    def __init__(self, dim, hidden, drop):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def to_windows(x, ws):
    """(B, H, W, C) -> (B * H/ws * W/ws, ws * ws, C), windows row-major, tokens row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def from_windows(windows, ws, b, h, w):
    """The inverse of `to_windows`: -> (B, H, W, C)."""
    x = windows.view(b, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


def shifted_window_mask(h, w, ws, shift):
    """(nW, ws*ws, ws*ws): 0 between tokens of the same roll region, -100 otherwise. After the
    roll by -shift, rows split into [0, h-ws), [h-ws, h-shift), [h-shift, h), columns alike;
    the 3 x 3 region pairs get labels 0..8."""
    labels = torch.zeros(1, h, w, 1)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for label, (sh, sw) in enumerate((sh, sw) for sh in cuts for sw in cuts):
        labels[:, sh, sw, :] = label
    labels = to_windows(labels, ws).squeeze(-1)         # (nW, ws*ws)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative position bias."""

    def __init__(self, dim, ws, num_heads, qkv_bias, qk_scale, attn_drop, proj_drop):
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        # index[i, j] = (dh + ws-1) * (2ws-1) + (dw + ws-1), (dh, dw) = position of query i - key j
        pos = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing='ij')).flatten(1)
        rel = (pos[:, :, None] - pos[:, None, :]) + (ws - 1)
        self.register_buffer('relative_position_index', rel[0] * (2 * ws - 1) + rel[1])
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def forward(self, x, mask=None):
        """x: (B*nW, N, C); mask: (nW, N, N) or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(x))
