"""CiaoSR: continuous implicit attention-in-attention (Cao et al., CVPR 2023), as LMF's port
(models/ciaosr.py of HeZongyao/LMF; the same function as the CiaoSR repository's network on
maps of at most 48 x 48 latents). Names and arguments are LMF's, so its checkpoints load
strictly; scripts/convert_ciaosr.py maps the CiaoSR repository's.

  feat = encoder(inp) (B, C, h, w); U = its 3x3 unfold (9C, channel c*9 + k);
  N = the non-local features of feat (cross_scale.py, C per scale), once per image;
  a query x with cell c: q = U at x (nearest, NOT clamped: zero beyond the grid);
  four neighbours j, x shifted by (+-r_h + 1e-6, +-r_w + 1e-6), r = (1 - c_0) / (h - 1, w - 1)
  for the cell c_0 of the call's first query (clamped), give key_j = U and value_j = [U || N] of
  their nearest LR pixel; with delta_j = (x - its centre) * (h, w), r_c = c * (h, w):
      k_j = key_j * imnet_k([key_j || delta_j || r_c]),  v_j = value_j * imnet_v([value_j || delta_j || r_c])
      out = imnet_q(sum_j softmax_j(q . k_j / softmax_scale) v_j) + bilinear LR input at x.
The fast form: imnet_k's and imnet_v's first layers are linear in [features || delta || r_c],
so their feature parts are convolutions computed once per LR pixel (as LIIF's); a query gathers
those rows, q and the values by integer index, and the four neighbours run in one call.
The non-local features see the whole map, so an image is encoded whole (models/upscale.py).
"""
import torch
import torch.nn.functional as F

from utils.coords import make_coord, pixel_index
from .base import LocalImplicitSR
from .cross_scale import CrossScaleAttention, nonlocal_features
from .local_ensemble import (ensemble_members, ensemble_shifts, gather_rows, grid_rows, grid_size, lr_conv,
                             sample_nearest, shifted)
from .models import make, register


@register('ciaosr')
class CiaoSR(LocalImplicitSR):
    adds_lr_skip = True
    reach = 3  # a neighbour up to one LR pixel away (on small maps), and its 3x3 neighbourhood
    cpu_chunk = 1024

    def __init__(self, encoder, imnet_q, imnet_k, imnet_v, local_size=2, feat_unfold=True, non_local_attn=True,
                 multi_scale=(2,), softmax_scale=1):
        super().__init__(encoder)
        if not feat_unfold or local_size not in (1, 2):  # the official code runs only these
            raise NotImplementedError("ciaosr: only feat_unfold=True and local_size 1 or 2 are implemented")
        self.local_ensemble = local_size == 2
        self.softmax_scale = softmax_scale
        C = self.encoder.out_dim
        self.key_dim = 9 * C
        self.value_dim = 9 * C + (C * len(multi_scale) if non_local_attn else 0)
        self.imnet_q = make(imnet_q, args={'in_dim': self.value_dim, 'out_dim': 3})
        self.imnet_k = make(imnet_k, args={'in_dim': self.key_dim + 4, 'out_dim': self.key_dim})
        self.imnet_v = make(imnet_v, args={'in_dim': self.value_dim + 4, 'out_dim': self.value_dim})
        self.cs_attn = CrossScaleAttention(C, scale=multi_scale) if non_local_attn else None

    @property
    def receptive_radius(self):
        return None if self.cs_attn is not None else self.encoder.receptive_radius

    def gen_feat(self, inp, crop=None):
        feat = super().gen_feat(inp, crop)
        self.nonlocal_feat = nonlocal_features(self.cs_attn, feat) if self.cs_attn is not None else None
        return feat

    def neighbour_radius(self, cell, h, w):
        """The neighbours' shift in [-1, 1] units, from the first query's cell: ((B, 1), (B, 1))."""
        return (1 - cell[:, :1, 0]) / (h - 1), (1 - cell[:, :1, 1]) / (w - 1)

    def attend(self, q, keys, values, w_k, w_v):
        """The local attention over the neighbours (first dim): its output (B, Q, value_dim)."""
        weights = ((q * keys * w_k).sum(-1) / self.softmax_scale).softmax(0)
        return (weights.unsqueeze(-1) * values * w_v).sum(0)

    def query_rgb_plain(self, coord, cell):
        """The equations as written: grid_sample of U, [U || N] and the LR centres per neighbour."""
        B, C, h, w = self.feat.shape
        unfold = F.unfold(self.feat, 3, padding=1).view(B, 9 * C, h, w)
        value_map = unfold if self.nonlocal_feat is None else torch.cat([unfold, self.nonlocal_feat], dim=1)
        q = F.grid_sample(unfold, coord.flip(-1).unsqueeze(1), mode='nearest', align_corners=False)[:, :, 0]
        centres = make_coord((h, w), flatten=False, device=coord.device).permute(2, 0, 1).expand(B, 2, h, w)
        size = grid_size(h, w, coord)
        r_h, r_w = self.neighbour_radius(cell, h, w)
        keys, values, w_k, w_v = [], [], [], []
        shifts, eps = ensemble_shifts(self.local_ensemble)
        for vy, vx in shifts:
            near = shifted(coord, vy * r_h + eps, vx * r_w + eps)
            rel = (coord - sample_nearest(centres, near)) * size
            keys.append(sample_nearest(unfold, near))
            values.append(sample_nearest(value_map, near))
            w_k.append(self.imnet_k(torch.cat([keys[-1], rel, cell * size], dim=-1)))
            w_v.append(self.imnet_v(torch.cat([values[-1], rel, cell * size], dim=-1)))
        out = self.attend(q.permute(0, 2, 1), *map(torch.stack, (keys, values, w_k, w_v)))
        return self.imnet_q(out)

    def make_tables(self):
        """Per LR pixel: [U || N] (the values; U the keys and q), and the feature terms (with the
        biases) of imnet_k's and imnet_v's first layers."""
        C = self.feat.shape[1]
        first_k, first_v = self.imnet_k.first, self.imnet_v.first
        hidden_k = lr_conv(self.feat, first_k.weight[:, :9 * C], first_k.bias, 3)
        hidden_v = lr_conv(self.feat, first_v.weight[:, :9 * C], first_v.bias, 3)
        unfold = F.unfold(self.feat, 3, padding=1).view(self.feat.shape[0], 9 * C, *self.feat.shape[-2:])
        if self.nonlocal_feat is None:
            return grid_rows(unfold), torch.cat([hidden_k, hidden_v], dim=1)
        hidden_v = hidden_v + lr_conv(self.nonlocal_feat, first_v.weight[:, 9 * C:self.value_dim], None, 1)
        return grid_rows(torch.cat([unfold, self.nonlocal_feat], dim=1)), torch.cat([hidden_k, hidden_v], dim=1)

    def fast_query(self, coord, cell, tables, crop):
        value_rows, hidden_rows = tables
        # q: the query's own LR pixel, zero beyond the grid (the official grid_sample's padding)
        iy, ix = pixel_index(coord[..., 0], crop.full_h), pixel_index(coord[..., 1], crop.full_w)
        inside = ((iy >= 0) & (iy < crop.full_h) & (ix >= 0) & (ix < crop.full_w)).unsqueeze(-1)
        q = gather_rows(value_rows, iy.clamp(0, crop.full_h - 1), ix.clamp(0, crop.full_w - 1), crop)
        q = q[..., :self.key_dim] * inside
        iy, ix, rels = ensemble_members(coord, crop.full_h, crop.full_w, self.local_ensemble,
                                        self.neighbour_radius(cell, crop.full_h, crop.full_w))
        values = gather_rows(value_rows, iy, ix, crop)  # (M, B, Q, value_dim)
        hidden = gather_rows(hidden_rows, iy, ix, crop)
        lead = hidden.shape[:-1]
        # the offset and cell terms of the first layers (fresh tensors: the ReLUs after them work in place)
        extra = torch.cat([rels, (cell * grid_size(crop.full_h, crop.full_w, cell)).expand_as(rels)], dim=-1)
        extra, hidden = extra.view(-1, 4).to(hidden.dtype), hidden.view(-1, hidden.shape[-1])
        k = self.imnet_k.first.out_features
        hidden_k = torch.addmm(hidden[:, :k], extra, self.imnet_k.first.weight[:, -4:].t().to(hidden.dtype))
        hidden_v = torch.addmm(hidden[:, k:], extra, self.imnet_v.first.weight[:, -4:].t().to(hidden.dtype))
        w_k = self.imnet_k.after_first(hidden_k).view(*lead, -1)
        w_v = self.imnet_v.after_first(hidden_v).view(*lead, -1)
        return self.imnet_q(self.attend(q, values[..., :self.key_dim], values, w_k, w_v))
