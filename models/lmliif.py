"""LM-LIIF: LIIF with a latent-modulated render MLP (He and Jin, "Latent Modulated Function for
Computational Optimal Continuous Image Representation", CVPR 2024). Parameter names and
constructor arguments follow the official LMF code, so its checkpoints load strictly.

Data flow:
  inp (B, 3, h, w) --encoder--> feat (B, C, h, w)
  once per LR pixel p (the hypernetwork):
      M_p = hypernet([3x3 neighbourhood of feat at p (9C) || cell * (h, w)])
          = [scales s_0..s_5 (96) | shifts t_0..t_5 (96) | latent z (16)]
  per query x and local-ensemble member (the LR pixel p nearest to x nudged half a pixel
  diagonally, as in LIIF):
      out = render([z_p || (x - centre_p) * (h, w) || cell * (h, w)], s_p, t_p)
      (models/lmmlp.py: 20 -> 16 x 6 -> 3, hidden layer l scaled by 1 + s_l and shifted by t_l)
  the members' outputs are blended by area, as in LIIF.
So the wide part of the decoder (576 feature inputs) runs at LR resolution; a query costs only
index gathers and the 20 -> 16 x 6 -> 3 MLP.

The hypernetwork sees the query cell. Cells are uniform per image in every official use, and
then the modulation map is computed once per (features, cell) and cached. For non-uniform
cells the official rule is kept: LR pixel p gets the cell of query p of the call (so a call
needs at least h*w queries, and `forward` applies it to the whole call before chunking).

Decoder forms, as in models/liif.py (`self.decoder`, not a constructor argument):
- 'fast' (default): the hypernet's first layer is a 3x3 convolution over `feat` plus a cell
  term (no unfold); the render MLP's first layer latent term, 1 + s_l and the biases folded
  into the shifts (b_l (1 + s_l) + t_l) are tabulated per LR pixel, and a query gathers one
  table row per member by integer indexing (no grid_sample).
  `query_grid` decodes a grid of queries (rows x columns, what models/upscale.py asks for)
  without per-query gathers: the geometry and blend weights are worked out per row and per
  column, and the output rows that one member reads from the same LR row (a run of about
  `scale` rows) share one gathered row of modulations, broadcast over the run. With a 16-wide
  MLP, gathering 208 table values per query and member cost more than the MLP itself (the
  queries of an x8 decode of 180x320 on 2 CPU cores: about 2.7 s with per-query gathers,
  1.3 s by runs).
- 'plain': the equations as written (unfold, grid_sample, render MLP per member): the oracle.

With `cmsr_spec`, `forward` may render through models/cmsr.py instead (see there).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.coords import make_coord
from . import cmsr
from .local_ensemble import (axis_members, blend, blend_areas, ensemble_members, ensemble_shifts, gather_rows,
                             grid_rows, sample_nearest, shifted)
from .models import make, register

DEFAULT_BSIZE = int(2160 * 3840 * 0.5)  # the official forward's query chunk: half a 4K image


def row_runs(index):
    """Runs of consecutive equal values in `index` (n,), grouped by length: a list of (the
    run's value (U,), the positions of its elements (U, L)) for each run length L."""
    values, counts = torch.unique_consecutive(index, return_counts=True)
    starts = counts.cumsum(0) - counts
    steps = torch.arange(int(counts.max()), device=index.device)
    return [(values[counts == L], starts[counts == L].view(-1, 1) + steps[:L]) for L in counts.unique().tolist()]


@register('lmliif')
class LMLIIF(nn.Module):
    def __init__(self, encoder_spec, imnet_spec=None, hypernet_spec=None, local_ensemble=True,
                 feat_unfold=True, cell_decode=True, mod_input=False, cmsr_spec=None):
        super().__init__()
        if imnet_spec is None or hypernet_spec is None:
            raise ValueError("lmliif needs an imnet_spec (lmmlp) and a hypernet_spec (mlp)")
        # Variants whose official behaviour LMF.md does not document are refused rather than guessed.
        if not mod_input:
            raise NotImplementedError("lmliif: only mod_input=True (the render MLP reads the latent "
                                      "code made by the hypernet) is implemented")
        if not cell_decode:
            raise NotImplementedError("lmliif: only cell_decode=True is implemented")
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cmsr_spec = cmsr_spec
        self.max_scale = 4  # training's largest scale; CMSR widens cells beyond it (hard-coded officially)

        self.encoder = make(encoder_spec)
        self.latent_dim = imnet_spec['args']['hidden_dim']
        imnet = make(imnet_spec, args={'in_dim': self.latent_dim + 2 + 2, 'mod_up_merge': False})
        self.mod_dim = imnet.mod_dim
        self.feat_dim = self.encoder.out_dim * (9 if feat_unfold else 1)
        # constructed before imnet so that the state dict lists encoder, hypernet, imnet as officially
        self.hypernet = make(hypernet_spec, args={'in_dim': self.feat_dim + 2,
                                                  'out_dim': self.mod_dim + self.latent_dim})
        self.imnet = imnet
        self.decoder = 'fast'  # or 'plain'
        self.compiled_query = None  # query_window through torch.compile, set by compile_decoder()

    # --- encoder and hypernetwork: once per LR pixel -----------------------------------------

    def gen_feat(self, inp, window=None):
        """Encode `inp`. `window = (top, left, full_h, full_w)` says that `inp` is the crop of a
        full_h x full_w image starting at (top, left); queries then use the full image's frame
        (as in models/liif.py, so that models/upscale.py can decode tile by tile)."""
        self.feat = self.encoder(inp)
        h, w = self.feat.shape[-2:]
        self.window = tuple(window) if window is not None else (0, 0, h, w)
        # the hypernet's first layer without its cell term: cell-independent, so made here
        first = self.hypernet.layers[0]
        k = 3 if self.feat_unfold else 1
        # unfold's channel-major order (c, ky, kx) is exactly a conv weight's layout
        w_feat = first.weight[:, :self.feat_dim].reshape(-1, self.feat.shape[1], k, k)
        self.hyper_pre = grid_rows(F.conv2d(self.feat, w_feat, first.bias, padding=k // 2))
        self.cache = None  # (hypernet cell, modulation rows, render table, grad mode) of the last cell
        return self.feat

    def hypernet_cell(self, cell):
        """The cell input of the hypernet for the current call: (B, 1, 2) if every query of an
        image has the same cell, else the official per-pixel rule (B, h*w, 2)."""
        if (cell == cell[:, :1]).all():
            return cell[:, :1]
        h, w = self.feat.shape[-2:]
        if cell.shape[1] < h * w or self.window != (0, 0, h, w):
            raise ValueError("lmliif: non-uniform cells follow the official rule (LR pixel p uses the "
                             "cell of query p), which needs a whole image and at least h*w queries")
        return cell[:, :h * w]

    def modulations(self, hyper_cell):
        """Hypernet output rows (B*h*w, mod_dim + latent_dim) for this hypernet cell (cached)."""
        self.update_cache(hyper_cell)
        return self.cache[1]

    def render_table(self, hyper_cell):
        """Per-LR-pixel rows of what a query gathers: [W_0 z + b_0 | 1 + s_0..s_5 | t'_0..t'_5],
        t'_0 = t_0 and t'_l = b_l (1 + s_l) + t_l (layer l's bias folded into its shift); a
        missing scale (shift) block reads as 1 (0). Float32, whatever the autocast."""
        self.update_cache(hyper_cell)
        return self.cache[2]

    def update_cache(self, hyper_cell):
        # rebuilt for another cell, and when grad mode changed (a table made under no_grad
        # would silently cut the hypernet out of the graph)
        grad = torch.is_grad_enabled()
        if self.cache is not None and self.cache[0].shape == hyper_cell.shape \
                and torch.equal(self.cache[0], hyper_cell) and self.cache[3] == grad:
            return
        B = self.feat.shape[0]
        h, w = self.feat.shape[-2:]
        full_h, full_w = self.window[2:]
        first = self.hypernet.layers[0]
        size = torch.tensor([full_h, full_w], dtype=hyper_cell.dtype, device=hyper_cell.device)
        cell_term = F.linear(hyper_cell * size, first.weight[:, self.feat_dim:])   # (B, 1 or h*w, D)
        pre = self.hyper_pre.view(B, h * w, -1) + cell_term.to(self.hyper_pre.dtype)
        mods = self.hypernet.layers[1:](pre.reshape(B * h * w, -1))
        # the render MLP's first-layer latent term does not depend on the query either
        layers = self.imnet.hidden_layers()
        latent = F.linear(mods[:, self.mod_dim:], layers[0].weight[:, :self.latent_dim], layers[0].bias)
        scales, shifts = self.imnet.split_mods(mods[:, :self.mod_dim])
        n, depth, hd = mods.shape[0], self.imnet.hidden_depth, self.imnet.hidden_dim
        scales = 1 + scales if scales is not None else mods.new_ones(n, depth, hd)
        shifts = shifts if shifts is not None else mods.new_zeros(n, depth, hd)
        # (W a + b)(1 + s) + t = (W a)(1 + s) + (b (1 + s) + t): no bias add per query
        biases = torch.stack([layer.bias for layer in layers[1:]])                  # (depth - 1, hd)
        shifts = torch.cat([shifts[:, :1], torch.addcmul(shifts[:, 1:], scales[:, 1:], biases)], dim=1)
        table = torch.cat([latent, scales.flatten(1), shifts.flatten(1)], dim=1).float()  # see `query_rgb_fast`
        self.cache = (hyper_cell.clone(), mods, table, grad)

    def gen_modulations(self, cell):
        """The modulation map (B, mod_dim + latent_dim, h, w) that queries with `cell` use."""
        B = self.feat.shape[0]
        h, w = self.feat.shape[-2:]
        mods = self.modulations(self.hypernet_cell(cell))
        return mods.view(B, h, w, -1).permute(0, 3, 1, 2)

    def shift_strength(self, hyper_cell):
        """Mean |shift modulation| per LR pixel (B, 1, h, w): CMSR's measure of local detail."""
        _, shifts = self.imnet.split_mods(self.modulations(hyper_cell)[:, :self.mod_dim])
        if shifts is None:
            raise ValueError("CMSR needs shift modulations (mod_shift=True)")
        B = self.feat.shape[0]
        h, w = self.feat.shape[-2:]
        return shifts.abs().flatten(1).mean(1).view(B, 1, h, w)

    # --- queries ---------------------------------------------------------------------------

    def query_rgb(self, coord, cell):
        """coord, cell: (B, Q, 2) -> (B, Q, 3), normalised RGB at `coord` (after gen_feat)."""
        return self.decode(coord, cell, self.hypernet_cell(cell))

    def forward(self, inp, coord=None, cell=None, bsize=None):
        """The official forward: encode, then decode all queries in chunks of about `bsize`
        (numerically irrelevant: queries are independent). Without coord, only encodes."""
        self.gen_feat(inp)
        if coord is None:
            return None
        hyper_cell = self.hypernet_cell(cell)
        if self.cmsr_active(coord.shape[1], *self.feat.shape[-2:]):
            return cmsr.render(self, inp, coord, hyper_cell, bsize)
        return self.batched_decode(coord, cell, hyper_cell, bsize)

    def cmsr_active(self, n_queries, h, w):
        """Whether `forward` renders n_queries for an h x w input through CMSR: with a table, in
        eval mode, and beyond x4 (more than 16 queries per LR pixel), as the official rule.
        models/upscale.py asks this to decode such an image whole instead of in tiles."""
        return self.cmsr_spec is not None and not self.training and n_queries > 16 * h * w

    def batched_decode(self, coord, cell, hyper_cell, bsize=None):
        Q = coord.shape[1]
        n_chunks = math.ceil(Q / (bsize or DEFAULT_BSIZE))
        chunk = math.ceil(Q / n_chunks)  # equal chunks, as the official code splits them
        return torch.cat([self.decode(coord[:, i:i + chunk], cell[:, i:i + chunk], hyper_cell)
                          for i in range(0, Q, chunk)], dim=1)

    def decode(self, coord, cell, hyper_cell):
        if self.decoder == 'plain':
            return self.query_rgb_plain(coord, cell, hyper_cell)
        return self.query_rgb_fast(coord, cell, hyper_cell)

    def query_rgb_fast(self, coord, cell, hyper_cell=None):
        """coord, cell: (B, Q, 2) -> (B, Q, 3): gathers from the render table, no grid_sample.

        The per-query part runs in float32 even under autocast (the encoder and hypernetwork
        follow it): its matrix products are 16 wide, too small to gain from bf16, and on a CPU
        the conversions made it 1.9x slower (x8 of 180x320: 2.35 s against 1.25 s)."""
        if hyper_cell is None:
            hyper_cell = self.hypernet_cell(cell)
        table = self.render_table(hyper_cell)
        query = self.compiled_query or self.query_window
        with torch.autocast(coord.device.type, enabled=False):
            return query(coord.float(), cell.float(), table, *self.window, *self.feat.shape[-2:])

    def query_grid(self, ys, xs, cell):
        """The queries at every (y, x) of ys (n,) x xs (m,), in the full image's frame, with the
        cell (2,) for all of them (one image, B = 1): (n, m, 3), as `query_rgb` of that grid."""
        if self.feat.shape[0] != 1:
            raise ValueError("query_grid decodes one image (batch size 1)")
        hyper_cell = cell.view(1, 1, 2)
        if self.decoder == 'plain':  # the oracle
            coord = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1).view(1, -1, 2)
            return self.query_rgb_plain(coord, hyper_cell.expand_as(coord), hyper_cell).view(len(ys), len(xs), -1)
        table = self.render_table(hyper_cell)
        with torch.autocast(ys.device.type, enabled=False):  # float32, as `query_rgb_fast`
            return self.grid_runs(ys, xs, cell, table, *self.window, *self.feat.shape[-2:])

    def compile_decoder(self):
        """Run the per-query form (`query_rgb`: forward, CMSR's levels) through torch.compile,
        the geometry passed as arguments so that windows of any position and size share a few
        graphs (as models/liif.py). `query_grid` stays eager: its grouping of rows into runs is
        data-dependent, and the compiled alternatives were slower on a 2-core CPU (x8 of
        180x320 through upscale(): 6.3 s with the compiled per-query form, 3.6 s with the MLP
        alone compiled, 2.7 s eager); CMSR's x8 went from 1.7 to 1.5 s."""
        self.compiled_query = torch.compile(self.query_window, dynamic=True)

    def query_window(self, coord, cell, table, top, left, full_h, full_w, h, w):
        """The fast form for queries (B, Q, 2), with the features' h x w window at (top, left)
        of the full_h x full_w LR grid."""
        iy, ix, rels = ensemble_members(coord, full_h, full_w, self.local_ensemble)
        rows = gather_rows(table, iy, ix, top, left, h, w)  # (members, B, Q, D)
        lead = rows.shape[:-1]
        size = torch.tensor([full_h, full_w], dtype=cell.dtype, device=cell.device)
        extra = torch.cat([rels, (cell * size).expand_as(rels)], dim=-1).view(-1, 4)
        w_extra = self.imnet.layers[0].weight[:, self.latent_dim:]
        rows = rows.view(-1, rows.shape[-1])
        first = torch.addmm(rows[:, :self.imnet.hidden_dim], extra, w_extra.t())
        return blend(self.render(first, rows).view(*lead, -1), rels)

    def grid_runs(self, ys, xs, cell, table, top, left, full_h, full_w, h, w):
        """`query_window` for the grid ys x xs of one image, run by run (see the module doc)."""
        rows_m = axis_members(ys, full_h, self.local_ensemble)  # [(index (n,), offset (n,))] per row shift
        cols_m = axis_members(xs, full_w, self.local_ensemble)
        hd = self.imnet.hidden_dim
        w0 = self.imnet.layers[0].weight[:, self.latent_dim:]  # columns: dy, dx, cell_y, cell_x
        size = torch.tensor([full_h, full_w], dtype=cell.dtype, device=cell.device)
        cell_term = F.linear(cell * size, w0[:, 2:])
        grid = table.view(h, w, -1)
        preds = []
        for iy, dy in rows_m:
            row_terms = dy.view(-1, 1) * w0[:, 0] + cell_term  # (n, hd)
            runs = row_runs(iy)
            for ix, dx in cols_m:
                col_terms = dx.view(-1, 1) * w0[:, 1]  # (m, hd)
                pred = None
                for lr_rows, out_rows in runs:  # out_rows (U, L): U runs of L rows each
                    U, L = out_rows.shape
                    mods = grid.index_select(0, lr_rows - top).index_select(1, ix - left).unsqueeze(1)
                    first = (row_terms[out_rows.view(-1)].view(U, L, 1, hd) + col_terms).add_(mods[..., :hd])
                    out = self.render(first, mods)  # (U, L, m, 3)
                    if pred is None:
                        pred = out.new_empty(len(ys), len(xs), out.shape[-1])
                    pred.index_copy_(0, out_rows.view(-1), out.view(U * L, len(xs), -1))
                preds.append(pred)
        if len(preds) == 1:
            return preds[0]
        areas = torch.stack([dy.abs().view(-1, 1) * dx.abs().view(1, -1) + 1e-9 for _, dy in rows_m for _, dx in cols_m])
        return blend_areas(torch.stack(preds), areas)

    def render(self, first, rows):
        """The render MLP from its first layer's pre-activation (..., hd) and table rows (see
        `render_table`) holding the modulations, (..., D), broadcastable to it: (..., out_dim)."""
        hd = self.imnet.hidden_dim
        depth = self.imnet.hidden_depth
        a = first
        for l, linear in enumerate(self.imnet.hidden_layers()):
            if l > 0:
                a = F.linear(a, linear.weight)  # the bias is in the tabulated shift
            scale = rows[..., (1 + l) * hd:(2 + l) * hd]
            shift = rows[..., (1 + depth + l) * hd:(2 + depth + l) * hd]
            a = torch.addcmul(shift, a, scale).relu_()
        return self.imnet.layers[-1](a)

    def query_rgb_plain(self, coord, cell, hyper_cell=None):
        """coord, cell: (B, Q, 2) -> (B, Q, 3), written as the equations: unfold, hypernet on the
        unfolded features, grid_sample of the modulation map, render MLP per member."""
        feat = self.feat
        B, C, h, w = feat.shape
        if self.window != (0, 0, h, w):
            raise ValueError("the plain LM-LIIF decoder works on whole feature maps only")
        if hyper_cell is None:
            hyper_cell = self.hypernet_cell(cell)
        size = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        rich = F.unfold(feat, 3, padding=1) if self.feat_unfold else feat.view(B, C, h * w)
        hyper_in = torch.cat([rich.permute(0, 2, 1), (hyper_cell * size).expand(B, h * w, 2)], dim=-1)
        mod_map = self.hypernet(hyper_in).permute(0, 2, 1).reshape(B, -1, h, w)
        feat_coord = make_coord((h, w), flatten=False, device=coord.device)
        feat_coord = feat_coord.permute(2, 0, 1).unsqueeze(0).expand(B, 2, h, w)
        shifts, eps = ensemble_shifts(self.local_ensemble)
        preds, rels = [], []
        for vy, vx in shifts:
            near = shifted(coord, vy, vx, h, w, eps)
            q_mod = sample_nearest(mod_map, near)
            rel = (coord - sample_nearest(feat_coord, near)) * size
            x = torch.cat([q_mod[..., self.mod_dim:], rel, cell * size], dim=-1)
            preds.append(self.imnet(x, q_mod[..., :self.mod_dim]))
            rels.append(rel)
        return blend(torch.stack(preds), torch.stack(rels))
