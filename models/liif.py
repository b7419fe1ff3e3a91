"""LIIF: Local Implicit Image Function (Chen, Liu, Wang, CVPR 2021). An MLP maps, for each
local-ensemble member (models/local_ensemble.py), [unfold3x3(feat) at the member's latent (9C),
the query's offset from it * (h, w) (2), cell * (h, w) (2)] to RGB; the members are blended by
the opposite rectangles' areas. The fast form (`fast_query`): the first layer is linear, so its
feature part is a 3x3 convolution at LR resolution (`make_tables`); a query gathers one hidden
vector per member by index, adds its offset and cell terms, and the members run the rest at once.
"""
import torch
import torch.nn.functional as F

from utils.coords import nearest_index
from .base import LocalImplicitSR
from .local_ensemble import (blend, ensemble_members, gather_rows, grid_rows, grid_size, lr_conv, plain_ensemble,
                             sample_nearest)
from .models import make, register


@register('liif')
class LIIF(LocalImplicitSR):
    def __init__(self, encoder_spec, imnet_spec=None, local_ensemble=True, feat_unfold=True, cell_decode=True):
        super().__init__(encoder_spec)
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        if imnet_spec is not None:
            in_dim = self.encoder.out_dim * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
            self.imnet = make(imnet_spec, args={'in_dim': in_dim})
        else:
            self.imnet = None

    def query_rgb_plain(self, coord, cell=None):
        """coord, cell: (B, Q, 2) -> (B, Q, 3). Written like the paper, with grid_sample."""
        feat = self.feat
        B, C, h, w = feat.shape
        if self.imnet is None:
            return sample_nearest(feat, coord)
        if self.feat_unfold:
            feat = F.unfold(feat, 3, padding=1).view(B, C * 9, h, w)
        rel_cell = [cell * grid_size(h, w, coord)] if self.cell_decode else []
        return plain_ensemble(coord, h, w, self.local_ensemble,
                              lambda near, rel: self.imnet(torch.cat([sample_nearest(feat, near), rel, *rel_cell], -1)))

    def make_tables(self):
        """The first layer's feature term (+ bias) of every latent, one row each: (B*h*w, hidden)."""
        if self.imnet is None:
            return (grid_rows(self.feat),)
        first = self.imnet.first
        c = self.feat.shape[1] * (9 if self.feat_unfold else 1)
        return (lr_conv(self.feat, first.weight[:, :c], first.bias, 3 if self.feat_unfold else 1),)

    def fast_query(self, coord, cell, tables, crop):
        (rows,) = tables
        if self.imnet is None:
            iy, ix = nearest_index(coord[..., 0], crop.full_h), nearest_index(coord[..., 1], crop.full_w)
            return gather_rows(rows, iy, ix, crop)
        iy, ix, rels = ensemble_members(coord, crop.full_h, crop.full_w, self.local_ensemble)
        hidden = gather_rows(rows, iy, ix, crop)  # (M, B, Q, hidden)
        lead = hidden.shape[:-1]
        # the coordinate and cell terms in one matrix product (the cell is the same for all members)
        extra, w_extra = rels, self.imnet.first.weight[:, -(4 if self.cell_decode else 2):]
        if self.cell_decode:
            extra = torch.cat([rels, (cell * grid_size(crop.full_h, crop.full_w, cell)).expand_as(rels)], dim=-1)
        extra, w_extra = extra.reshape(-1, extra.shape[-1]).to(hidden.dtype), w_extra.t().to(hidden.dtype)
        hidden = hidden.view(-1, hidden.shape[-1])
        if torch.is_grad_enabled():  # a fresh 2-D tensor, so the in-place ReLUs below need no autograd copies
            hidden = torch.addmm(hidden, extra, w_extra)
        else:  # the gathered rows are fresh: add in place, saving a copy
            hidden.addmm_(extra, w_extra)
        return blend(self.imnet.after_first(hidden).view(*lead, -1), rels)  # all members in one call
