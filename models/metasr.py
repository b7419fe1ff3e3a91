"""MetaSR (Hu et al., CVPR 2019) as LIIF's paper compares it: a meta-MLP maps a query's
position inside its LR pixel and the relative cell size to the weights of a per-query linear
layer, which is applied to the 3x3-unfolded latent of that LR pixel.

Key names (`encoder.*`, `imnet.layers.{0,2}`) match the official LIIF code's `metasr`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.coords import coord_seq, nearest_index
from .models import make, register


@register('metasr')
class MetaSR(nn.Module):
    def __init__(self, encoder_spec):
        super().__init__()
        self.encoder = make(encoder_spec)
        # (relative row, relative col, relative cell) -> a (C*9) x 3 weight matrix
        self.imnet = make({'name': 'mlp', 'args': {'in_dim': 3, 'out_dim': self.encoder.out_dim * 9 * 3,
                                                   'hidden_list': [256]}})

    def gen_feat(self, inp, window=None):
        """As `LIIF.gen_feat`: `window = (top, left, full_h, full_w)` places `inp` in a larger image."""
        self.feat = self.encoder(inp)
        h, w = self.feat.shape[-2:]
        self.window = tuple(window) if window is not None else (0, 0, h, w)
        return self.feat

    def query_rgb(self, coord, cell):
        """coord, cell: (B, Q, 2) -> (B, Q, 3)."""
        top, left, full_h, full_w = self.window
        B, Q = coord.shape[:2]
        feat = self.feat
        h, w = feat.shape[-2:]
        feat = F.unfold(feat, 3, padding=1).view(B, -1, h * w).transpose(1, 2)  # (B, h*w, C*9)
        # the LR pixel holding the query's top-left corner; offsets from that pixel's corner
        corner = coord - cell / 2
        iy = nearest_index((corner[..., 0] + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6), full_h)
        ix = nearest_index((corner[..., 1] + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6), full_w)
        pixel_corner_y = coord_seq(full_h, device=coord.device)[iy] - 1 / full_h
        pixel_corner_x = coord_seq(full_w, device=coord.device)[ix] - 1 / full_w
        rel = torch.stack([(corner[..., 0] - pixel_corner_y) * (full_h / 2),
                           (corner[..., 1] - pixel_corner_x) * (full_w / 2),
                           cell[..., 0] * (full_h / 2)], dim=-1)
        weights = self.imnet(rel.view(B * Q, 3)).view(B * Q, -1, 3)
        index = ((iy - top) * w + (ix - left)).unsqueeze(-1).expand(B, Q, feat.shape[-1])
        q_feat = torch.gather(feat, 1, index).reshape(B * Q, 1, -1)
        return torch.bmm(q_feat, weights).view(B, Q, 3)

    def forward(self, inp, coord, cell):
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)
