"""LIIF: Local Implicit Image Function (Chen, Liu, Wang, CVPR 2021).

An encoder turns the LR image into a grid of latent codes; an MLP maps (latent code near x,
x relative to it, query cell size) to the RGB value at any continuous coordinate x.

The decoder exists in two forms that compute the same function:
- `query_rgb_plain`: the paper's equations as written (unfold, grid_sample, one MLP call per
  local-ensemble member). Easy to check; the test oracle.
- `query_rgb_fast` (the default): the first MLP layer is linear, so its feature part is a 3x3
  convolution computed once at LR resolution ("latent map"); a query then gathers one
  hidden-size vector per member by integer indexing, adds its coordinate and cell terms, and
  the four members run through the rest of the MLP in one call.

Both accept an optional window (set by `gen_feat(inp, window=...)`): the features then cover
only a crop of a larger latent grid, and queries keep the global geometry. This is what lets
`models.upscale` decode a huge image tile by tile with the untiled result.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.coords import make_coord, nearest_index
from .local_ensemble import (blend, ensemble_members, ensemble_shifts, gather_rows, grid_rows, sample_nearest,
                             shifted)
from .models import make, register


@register('liif')
class LIIF(nn.Module):
    def __init__(self, encoder_spec, imnet_spec=None, local_ensemble=True, feat_unfold=True, cell_decode=True):
        super().__init__()
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.encoder = make(encoder_spec)
        if imnet_spec is not None:
            in_dim = self.encoder.out_dim * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
            self.imnet = make(imnet_spec, args={'in_dim': in_dim})
        else:
            self.imnet = None
        self.decoder = 'fast'  # or 'plain'; not a constructor argument so checkpoints stay official
        self.compiled_query = None  # set by compile_decoder()

    # --- shared geometry -------------------------------------------------------------------

    def gen_feat(self, inp, window=None):
        """Encode `inp`. `window = (top, left, full_h, full_w)` says that `inp` is the crop of a
        full_h x full_w image starting at (top, left); queries then use the full image's frame."""
        self.feat = self.encoder(inp)
        h, w = self.feat.shape[-2:]
        self.window = tuple(window) if window is not None else (0, 0, h, w)
        # the fast form's first-layer map, made here so that it shares the features' precision
        self.latent = self.latent_map() if self.decoder == 'fast' and self.imnet is not None else None
        return self.feat

    def query_rgb(self, coord, cell=None):
        if self.decoder == 'plain':
            return self.query_rgb_plain(coord, cell)
        return self.query_rgb_fast(coord, cell)

    def forward(self, inp, coord, cell):
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)

    # --- plain form: the paper's equations --------------------------------------------------

    def query_rgb_plain(self, coord, cell=None):
        """coord, cell: (B, Q, 2) -> (B, Q, 3). Written like the paper, with grid_sample."""
        feat = self.feat
        h, w = feat.shape[-2:]
        if self.window != (0, 0, h, w):
            raise ValueError("the plain LIIF decoder works on whole feature maps only; "
                             "tiled inference needs the fast form")
        if self.imnet is None:
            return sample_nearest(feat, coord)
        if self.feat_unfold:
            feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, h, w)
        feat_coord = make_coord((h, w), flatten=False, device=coord.device)
        feat_coord = feat_coord.permute(2, 0, 1).unsqueeze(0).expand(feat.shape[0], 2, h, w)
        shifts, eps = ensemble_shifts(self.local_ensemble)
        size = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        preds, rels = [], []
        for vy, vx in shifts:
            near = shifted(coord, vy, vx, h, w, eps)
            q_feat = sample_nearest(feat, near)
            rel = (coord - sample_nearest(feat_coord, near)) * size
            inp = [q_feat, rel] + ([cell * size] if self.cell_decode else [])
            preds.append(self.imnet(torch.cat(inp, dim=-1)))
            rels.append(rel)
        return blend(torch.stack(preds), torch.stack(rels))

    # --- fast form: first layer at LR resolution, integer gathers ----------------------------

    def first_layer_parts(self):
        """Split the first Linear into its feature, coordinate and cell parts."""
        first = self.imnet.layers[0]
        if not isinstance(first, nn.Linear):
            raise TypeError("the fast LIIF decoder needs an imnet whose layers[0] is nn.Linear")
        c = self.encoder.out_dim * (9 if self.feat_unfold else 1)
        w = first.weight
        return w[:, :c], w[:, c:c + 2], w[:, c + 2:], first.bias

    def latent_map(self):
        """First-layer feature term (+ bias) of every latent, one row each: (B*h*w, hidden)."""
        w_feat, _, _, bias = self.first_layer_parts()
        k = 3 if self.feat_unfold else 1
        # unfold's channel-major order (c, ky, kx) is exactly a conv weight's layout
        w_feat = w_feat.reshape(w_feat.shape[0], self.feat.shape[1], k, k)
        return grid_rows(F.conv2d(self.feat, w_feat, bias, padding=k // 2))

    def query_rgb_fast(self, coord, cell=None):
        """coord, cell: (B, Q, 2) -> (B, Q, 3)."""
        if self.imnet is not None and self.latent is None:
            self.latent = self.latent_map()
        return (self.compiled_query or self.query_window)(coord, cell, *self.window)

    def compile_decoder(self):
        """Run the fast form's queries through torch.compile (fused elementwise work around the
        matrix products). The window geometry is passed as arguments, so tiles of any position
        and size share a few compiled graphs instead of recompiling for each."""
        self.compiled_query = torch.compile(self.query_window, dynamic=True)

    def query_window(self, coord, cell, top, left, full_h, full_w):
        """The fast form, for the current features covering a window at (top, left) of a
        full_h x full_w latent grid."""
        if self.imnet is None:
            iy, ix = nearest_index(coord[..., 0], full_h), nearest_index(coord[..., 1], full_w)
            return gather_rows(grid_rows(self.feat), iy, ix, top, left, *self.feat.shape[-2:])
        _, w_coord, w_cell, _ = self.first_layer_parts()
        iy, ix, rels = ensemble_members(coord, full_h, full_w, self.local_ensemble)
        hidden = gather_rows(self.latent, iy, ix, top, left, *self.feat.shape[-2:])  # (M, B, Q, hidden)
        lead = hidden.shape[:-1]
        # the coordinate and cell terms in one matrix product (the cell is the same for all members)
        extra, w_extra = rels, w_coord
        if self.cell_decode:
            rel_cell = cell * torch.tensor([full_h, full_w], dtype=cell.dtype, device=cell.device)
            extra = torch.cat([rels, rel_cell.expand_as(rels)], dim=-1)
            w_extra = torch.cat([w_coord, w_cell], dim=1)
        extra, w_extra = extra.reshape(-1, extra.shape[-1]).to(hidden.dtype), w_extra.t().to(hidden.dtype)
        hidden = hidden.view(-1, hidden.shape[-1])
        if torch.is_grad_enabled():  # a fresh 2-D tensor, so the in-place ReLUs below need no autograd copies
            hidden = torch.addmm(hidden, extra, w_extra)
        else:  # the gathered rows are fresh: add in place, saving a copy
            hidden.addmm_(extra, w_extra)
        preds = self.imnet.layers[1:](hidden).view(*lead, -1)  # all members in one call
        return blend(preds, rels)
