"""SwinIR (Liang et al., 2021) as an encoder: the `swinir` of jaewon-lee-b/lte (upsampler 'none'),
mapping an image normalised as (x - 0.5) / 0.5 to 64 features, with the official names (its
checkpoints load strictly; `attn_mask` and `relative_position_index` are buffers in them).
Official behaviour that matters: the input is reflect-padded at the bottom/right to a multiple of
the window (the edge not repeated) and the features are never cropped back (10 x 13 in, 16 x 16
out); x0 = conv_first(x), LayerNorm'd tokens through the residual Swin transformer blocks (RSTB:
t + flatten(conv(blocks(t))), odd blocks shifted by half a window with the 0/-100 mask), a
LayerNorm, conv_after_body(.) + x0, a conv to 64 channels and LeakyReLU; stochastic depth rising
linearly to drop_path_rate (train only). `window` and `receptive_radius` (`swinir_radius`) are
its side of the tiling contract (models/base.py).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import DropPath, Mlp, WindowAttention, from_windows, shifted_window_mask, to_windows
from .models import register


def swinir_radius(depths, window_size, resi_connection='1conv'):
    """Input pixels on each side that one output feature can depend on, for a crop whose corner
    is on the full image's window grid: each layer spreads a wrong value (outside the crop, or
    padded) by its reach (a 3x3 conv by 1, '3conv' by 2; a window attention by window_size - 1;
    norms and MLPs by 0); the crop's own edge effects (shifted-window wrap, masks, reflection)
    stay within a window of those, hence one more window of margin (the tests check crops)."""
    conv = {'1conv': 1, '3conv': 2}[resi_connection]
    radius = 1                                  # conv_first
    radius += sum(depths) * (window_size - 1)   # one window attention per Swin block
    radius += len(depths) * conv                # the conv closing each RSTB
    radius += conv + 1                          # conv_after_body, conv_before_upsample
    return radius + window_size                 # margin: shifted-window masks, reflect padding


class SwinBlock(nn.Module):
    """x + attn(norm1 x), then + mlp(norm2 x); window attention, on the rolled image if shifted."""

    def __init__(self, dim, resolution, num_heads, ws, shift, mlp_ratio, qkv_bias, qk_scale,
                 drop, attn_drop, drop_path):
        super().__init__()
        if resolution <= ws:  # official: an image no larger than a window is one unshifted window
            ws, shift = resolution, 0
        self.ws, self.shift, self.resolution = ws, shift, resolution
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        mask = shifted_window_mask(resolution, resolution, ws, shift) if shift else None
        self.register_buffer('attn_mask', mask)  # None (not in the state dict) when not shifted

    def forward(self, x, size):
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
            if size == (self.resolution, self.resolution):
                mask = self.attn_mask
            else:
                mask = shifted_window_mask(h, w, self.ws, self.shift).to(x.device, x.dtype)
        else:
            mask = None  # the official recomputed mask for an unshifted block is all zeros
        y = from_windows(self.attn(to_windows(y, self.ws), mask), self.ws, b, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def conv_block(dim, resi_connection):
    """The conv closing an RSTB (and conv_after_body)."""
    if resi_connection == '1conv':
        return nn.Conv2d(dim, dim, 3, padding=1)
    return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim // 4, 1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim, 3, padding=1))


def to_image(tokens, size):
    """(B, H*W, C) -> (B, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *size)


class BlockList(nn.Module):
    """The official `residual_group`: a container whose `blocks` are applied in turn."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x, size):
        for block in self.blocks:
            x = block(x, size)
        return x


class RSTB(nn.Module):
    """Residual Swin transformer block: t + flatten(conv(image(blocks(t))))."""

    def __init__(self, dim, blocks, resi_connection):
        super().__init__()
        self.residual_group = BlockList(blocks)
        self.conv = conv_block(dim, resi_connection)

    def forward(self, x, size):
        return self.conv(to_image(self.residual_group(x, size), size)).flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """Image to tokens: (B, C, H, W) -> (B, H*W, C), then LayerNorm (as official, patch size 1)."""

    def __init__(self, dim, patch_norm):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if patch_norm else None

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


@register('swinir')
class SwinIR(nn.Module):
    def __init__(self, img_size=48, patch_size=1, in_chans=3, embed_dim=180, depths=(6,) * 6,
                 num_heads=(6,) * 6, window_size=8, mlp_ratio=2., qkv_bias=True, qk_scale=None,
                 drop_rate=0., attn_drop_rate=0., drop_path_rate=0.1, patch_norm=True, ape=False,
                 upsampler='none', resi_connection='1conv', no_upsampling=True):
        super().__init__()
        if upsampler not in ('none', '', None):
            raise ValueError(f"swinir is implemented as an encoder only (upsampler 'none'); got {upsampler!r}")
        if not no_upsampling:  # the official factory ignores it; an upsampling SwinIR is not here
            raise ValueError("swinir is implemented as an encoder only: no_upsampling must be True")
        if resi_connection not in ('1conv', '3conv'):
            raise ValueError(f"resi_connection must be '1conv' or '3conv'; got {resi_connection!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        self.out_dim = 64
        self.window = window_size
        self.receptive_radius = swinir_radius(depths, window_size, resi_connection)
        resolution = img_size // patch_size

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.ape = ape
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, resolution * resolution, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=.02)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            first = sum(depths[:i])
            blocks = [SwinBlock(embed_dim, resolution, heads, window_size, 0 if j % 2 == 0 else window_size // 2,
                                mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate, rates[first + j])
                      for j in range(depth)]
            self.layers.append(RSTB(embed_dim, blocks, resi_connection))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = conv_block(embed_dim, resi_connection)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, self.out_dim, 3, padding=1),
                                                  nn.LeakyReLU(inplace=True))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        """Official init: Linear trunc_normal std .02, bias 0; LayerNorm 1 / 0; convs left as is."""
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        """(B, in_chans, H, W) -> (B, 64, Hp, Wp), Hp, Wp = H, W rounded up to window multiples."""
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.window, -w % self.window
        x = F.pad(x, (0, pad_w, 0, pad_h), 'reflect')  # never cropped back (official)
        size = tuple(x.shape[-2:])
        x0 = self.conv_first(x)
        t = self.patch_embed(x0)
        if self.ape:
            t = t + self.absolute_pos_embed
        t = self.pos_drop(t)
        for layer in self.layers:
            t = layer(t, size)
        feat = to_image(self.norm(t), size)
        return self.conv_before_upsample(self.conv_after_body(feat) + x0)
