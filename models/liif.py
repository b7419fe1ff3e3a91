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

from utils.coords import coord_seq, make_coord, nearest_index
from .models import make, register

ENSEMBLE_EPS = 1e-6  # nudges shifted queries off latent boundaries, as the official code does


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

    def ensemble_shifts(self):
        """(row, col) shifts, in half latent cells, of the local-ensemble members, and the nudge."""
        if self.local_ensemble:
            return [(-1, -1), (-1, 1), (1, -1), (1, 1)], ENSEMBLE_EPS
        return [(0, 0)], 0

    def members(self, coord, full_h, full_w):
        """Local-ensemble members of each query (B, Q, 2): the row and column indices into the
        full_h x full_w latent grid (M, B, Q) and the query's offset from that latent's centre in
        latent units (M, B, Q, 2). Index arithmetic, no grid_sample."""
        centres_y = coord_seq(full_h, device=coord.device)
        centres_x = coord_seq(full_w, device=coord.device)
        shifts, eps = self.ensemble_shifts()
        iy, ix, rel = [], [], []
        for vy, vx in shifts:
            # shifted by half a latent cell, the query's nearest latent is the member's latent
            y = (coord[..., 0] + (vy / full_h + eps)).clamp_(-1 + 1e-6, 1 - 1e-6)
            x = (coord[..., 1] + (vx / full_w + eps)).clamp_(-1 + 1e-6, 1 - 1e-6)
            iy.append(nearest_index(y, full_h))
            ix.append(nearest_index(x, full_w))
            rel.append(torch.stack([(coord[..., 0] - centres_y[iy[-1]]) * full_h,
                                    (coord[..., 1] - centres_x[ix[-1]]) * full_w], dim=-1))
        return torch.stack(iy), torch.stack(ix), torch.stack(rel)

    def blend(self, preds, rels):
        """Members' predictions (M, B, Q, 3), each weighted by the area of the rectangle between
        the query and the diagonally opposite member's latent."""
        if len(preds) == 1:
            return preds[0]
        areas = (rels[..., 0] * rels[..., 1]).abs() + 1e-9
        weights = areas.flip(0) / areas.sum(0)  # flip pairs members 0<->3 and 1<->2
        return (preds * weights.unsqueeze(-1)).sum(0)

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
        shifts, eps = self.ensemble_shifts()
        size = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        preds, rels = [], []
        for vy, vx in shifts:
            shifted = coord.clone()
            shifted[..., 0] += vy / h + eps
            shifted[..., 1] += vx / w + eps
            shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
            q_feat = sample_nearest(feat, shifted)
            rel = (coord - sample_nearest(feat_coord, shifted)) * size
            inp = [q_feat, rel] + ([cell * size] if self.cell_decode else [])
            preds.append(self.imnet(torch.cat(inp, dim=-1)))
            rels.append(rel)
        return self.blend(torch.stack(preds), torch.stack(rels))

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

    def gather(self, rows, iy, ix, top, left):
        """Rows of a per-latent table (B*h*w, D), laid out like the feature map of the window
        starting at (top, left), at the full-grid latent indices iy, ix (..., B, Q): (..., B, Q, D)."""
        h, w = self.feat.shape[-2:]
        B = iy.shape[-2]
        batch_offset = (torch.arange(B, device=iy.device) * (h * w)).view(B, 1)
        index = (iy - top) * w + (ix - left) + batch_offset
        return rows.index_select(0, index.view(-1)).view(*index.shape, -1)

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
            return self.gather(grid_rows(self.feat), iy, ix, top, left)
        _, w_coord, w_cell, _ = self.first_layer_parts()
        iy, ix, rels = self.members(coord, full_h, full_w)
        hidden = self.gather(self.latent, iy, ix, top, left)  # (M, B, Q, hidden)
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
        return self.blend(preds, rels)


def grid_rows(grid):
    """(B, C, h, w) -> (B*h*w, C), contiguous so that gathering rows is fast."""
    return grid.permute(0, 2, 3, 1).reshape(-1, grid.shape[1]).contiguous()


def sample_nearest(grid, coord):
    """Value of `grid` (B, C, h, w) at the cell nearest to each coord (B, Q, 2): (B, Q, C)."""
    samples = F.grid_sample(grid, coord.flip(-1).unsqueeze(1), mode='nearest', align_corners=False)
    return samples[:, :, 0, :].permute(0, 2, 1)
