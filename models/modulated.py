"""The latent-modulated decoders of LMF (He and Jin, CVPR 2024): what LM-LIIF, LM-LTE and
LM-CiaoSR add to the model contract (models/base.py). A hypernetwork runs once per LR pixel p:
M_p = [scales s_l | shifts t_l | the family's render inputs] (the official layout); a query runs,
for each local-ensemble member p, the render MLP (models/lmmlp.py) on the family's first layer of
(M_p, x - centre_p, cell), layer l scaled by 1 + s_l and shifted by t_l, blended by area.

The fast form tabulates per LR pixel [first-layer inputs | 1 + s_l | t'_l], t'_l = b_l (1 + s_l)
+ t_l (the biases folded into the shifts), gathered by integer index; `render_grid` decodes an
output grid by runs of output rows that read the same LR row, sharing one gathered table row
(with a 16-wide MLP the gathers, not the MLP, were the cost: benchmarks/RESULTS.md).
The hypernetwork sees the query cell ("hypernet cell"): uniform per image in every official
use, so the modulations are made once per (features, cell) and cached; non-uniform cells follow
the official rule (LR pixel p gets the cell of query p: a call needs at least h*w queries).
CMSR (models/cmsr.py), which a model may carry as `model.cmsr`, decodes `forward` and
`query_grid` in eval mode beyond x4 through `render_grid` (with a mask) and `shift_strength`.
"""
from collections import namedtuple
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .base import LocalImplicitSR, grid_coord
from .cmsr import CMSR
from .local_ensemble import axis_members, blend, blend_areas, ensemble_members, gather_rows, grid_size

Modulations = namedtuple('Modulations', 'rows table')  # hypernetwork output rows, render table


def row_runs(index):
    """Runs of consecutive equal values in `index` (n,), grouped by length: the positions of
    their elements (U, L) for each run length L."""
    counts = torch.unique_consecutive(index, return_counts=True)[1]
    starts = counts.cumsum(0) - counts
    return [starts[counts == L].view(-1, 1) + torch.arange(L, device=index.device) for L in counts.unique().tolist()]


class LatentModulated(LocalImplicitSR):
    """The LM extension of the contract. A family builds `imnet` (an lmmlp) and writes
    `hypernet_rows(hyper_cell)` (the hypernetwork's output per LR pixel, (B*h*w, mod_dim + ...))
    and `query_rgb_plain`; its render's first layer reads [latent (latent_dim) || offset (2) ||
    relative cell (2, if any)] unless it overrides `render_inputs` and `render_first_layer`."""

    cpu_chunk = 32768  # output rows sharing an LR row share its table row: larger blocks pay
    cell_clip = 4  # training's largest scale: CMSR widens cells beyond it (LMF's hard-coded max_scale)
    folds_first_bias = False  # True: the first layer's bias is folded into its shift, as the others'
    calibration_top = 1.0  # CMSR calibration tries strengths 0 .. calibration_top
    calibrating = False  # set while models/cmsr_calibration.py renders (LM-CiaoSR then adds no LR skip)
    supports_cmsr = True

    def __init__(self, encoder_spec, cmsr_spec=None):
        super().__init__(encoder_spec)
        self.cmsr = CMSR.from_spec(cmsr_spec) if cmsr_spec else None
        self.pinned_cell = None  # the hypernet cell of a whole call, while it is decoded in chunks

    # --- modulations, once per LR pixel -----------------------------------------------------

    def hypernet_cell(self, cell):
        """The cell input of the hypernet for the current call: (B, 1, 2) if every query of an
        image has the same cell, else the official per-pixel rule (B, h*w, 2)."""
        if self.pinned_cell is not None:
            return self.pinned_cell
        if (cell == cell[:, :1]).all():
            return cell[:, :1]
        h, w = self.feat.shape[-2:]
        if cell.shape[1] < h * w or not self.crop.whole:
            raise ValueError(f"{type(self).__name__}: non-uniform cells follow the official rule (LR pixel p uses "
                             f"the cell of query p), which needs a whole image and at least h*w queries")
        return cell[:, :h * w]

    @contextmanager
    def modulated_by(self, hyper_cell):
        """Queries inside use the modulations of `hyper_cell`, whatever their chunk's cells."""
        self.pinned_cell = hyper_cell
        try:
            yield
        finally:
            self.pinned_cell = None

    def modulations(self, hyper_cell):
        """The hypernetwork's rows and the render table for this hypernet cell (cached)."""
        return self.cached(hyper_cell, lambda: self.make_modulations(hyper_cell))

    def make_modulations(self, hyper_cell):
        # the table is float32, whatever the autocast
        mods = self.hypernet_rows(hyper_cell)
        scales, shifts = self.imnet.split_mods(mods[:, :self.imnet.mod_dim])
        scales = 1 + scales
        # (W a + b)(1 + s) + t = (W a)(1 + s) + (b (1 + s) + t): no bias add per query
        k = 0 if self.folds_first_bias else 1
        biases = torch.stack([layer.bias for layer in self.imnet.hidden[k:]])  # (depth - k, hd)
        shifts = torch.cat([shifts[:, :k], torch.addcmul(shifts[:, k:], scales[:, k:], biases)], dim=1)
        table = torch.cat([self.render_inputs(mods), scales.flatten(1), shifts.flatten(1)], dim=1).float()
        return Modulations(mods, table)

    def render_inputs(self, mods):
        """What a query's first render layer reads per LR pixel: its latent term W_z z + b_0."""
        first = self.imnet.hidden[0]
        return F.linear(mods[:, self.imnet.mod_dim:], first.weight[:, :self.latent_dim], first.bias)

    def render_first_layer(self, latent_term, dy, dx, rel_cell):
        """The first render layer's pre-activation from the gathered inputs, the offsets and the
        relative cell, broadcasting over queries."""
        w = self.imnet.hidden[0].weight[:, self.latent_dim:]  # columns: dy, dx (, cell_y, cell_x)
        out = latent_term + dy * w[:, 0] + dx * w[:, 1]
        return out + F.linear(rel_cell, w[:, 2:]) if w.shape[1] > 2 else out

    def table_split(self, table):
        """The table's columns as [first-layer inputs, 1 + s_0, ..., t'_0, ...] (one split, not a
        slice per layer: each slice's backward would zero a gradient as large as the rows)."""
        hd, depth = self.imnet.hidden_dim, self.imnet.hidden_depth
        return table.split([table.shape[-1] - 2 * depth * hd] + [hd] * 2 * depth, dim=-1)

    def gen_modulations(self, cell):
        """The modulation map (B, D, h, w) that queries with `cell` use (the official layout)."""
        B, _, h, w = self.feat.shape
        return self.modulations(self.hypernet_cell(cell)).rows.view(B, h, w, -1).permute(0, 3, 1, 2)

    def shift_strength(self, hyper_cell):
        """Mean |shift modulation| per LR pixel (B, 1, h, w): CMSR's measure of local detail."""
        _, shifts = self.imnet.split_mods(self.modulations(hyper_cell).rows[:, :self.imnet.mod_dim])
        B, _, h, w = self.feat.shape
        return shifts.abs().flatten(1).mean(1).view(B, 1, h, w)

    # --- queries ----------------------------------------------------------------------------

    def tables(self, cell):
        return (self.modulations(self.hypernet_cell(cell)).table,)

    def uses_cmsr(self, n_queries, h, w):
        return self.cmsr is not None and not self.training and self.cmsr.active(n_queries, h, w)

    def decodes_whole(self, h, w, H, W):
        return self.uses_cmsr(H * W, h, w)

    def forward(self, inp, coord=None, cell=None, bsize=None):
        """The official forward; decodes through CMSR where it applies (eval, beyond x4)."""
        self.gen_feat(inp)
        if coord is None:
            return None
        if self.uses_cmsr(coord.shape[1], *self.feat.shape[-2:]):
            return self.cmsr.decode(self, coord, self.hypernet_cell(cell), bsize)
        return self.render_points(coord, cell, self.hypernet_cell(cell), bsize)

    def query_grid(self, ys, xs, cell, chunk=None):
        """`query_rgb` of the grid ys x xs (one image), run by run (see the module doc); through
        CMSR where it applies (the whole output grid)."""
        if self.feat.shape[0] != 1:
            raise ValueError("query_grid decodes one image (batch size 1)")
        if self.crop.whole and self.uses_cmsr(len(ys) * len(xs), *self.feat.shape[-2:]):
            return self.cmsr.decode(self, grid_coord(ys, xs), cell.view(1, 1, 2), chunk).view(len(ys), len(xs), -1)
        return self.render_grid(ys, xs, cell, cell.view(1, 1, 2), chunk)

    def render_points(self, coord, cell, hyper_cell, chunk=None):
        """The queries (1, Q, 2) rendered with the modulations of `hyper_cell`, in chunks."""
        with self.modulated_by(hyper_cell):
            return self.batched_query(coord, cell, chunk)

    def render_grid(self, ys, xs, cell, hyper_cell, chunk=None, mask=None):
        """The grid ys x xs rendered with the modulations of `hyper_cell` (1, 1, 2): (n, m, 3); with
        `mask` (n, m), only its points, row-major: (N, 3)."""
        keep = slice(None) if mask is None else mask.flatten()  # the grid queries the plain form, LR skip read
        if self.decoder == 'plain':
            coord = grid_coord(ys, xs)[:, keep]
            out = self.render_points(coord, cell.view(1, 1, 2).expand_as(coord), hyper_cell, chunk)[0]
        else:
            table = self.modulations(hyper_cell).table  # the hypernetwork under autocast, if any
            with torch.autocast(ys.device.type, enabled=False):  # float32, as `query_rgb_fast`
                out = self.grid_runs(ys, xs, cell.float(), table, self.crop, mask)
                out = out + self.lr_skip(grid_coord(ys, xs)[:, keep]).view(out.shape) if self.adds_lr_skip else out
        return out if mask is not None else out.view(len(ys), len(xs), -1)

    def query_rgb_fast(self, coord, cell=None):
        """The per-query part runs in float32 even under autocast (the encoder and hypernetwork
        follow it): its matrix products are 16 wide, too small to gain from bf16, and on a CPU
        the conversions made it slower (benchmarks/RESULTS.md)."""
        with torch.autocast(coord.device.type, enabled=False):
            return super().query_rgb_fast(coord.float(), cell.float())

    def fast_query(self, coord, cell, tables, crop):
        iy, ix, rels = ensemble_members(coord, crop.full_h, crop.full_w, self.local_ensemble)
        parts = self.table_split(gather_rows(tables[0], iy, ix, crop))  # (members, B, Q, D) each
        rel_cell = cell * grid_size(crop.full_h, crop.full_w, cell)
        first = self.render_first_layer(parts[0], rels[..., :1], rels[..., 1:], rel_cell)
        return blend(self.render(first, parts), rels)

    def grid_runs(self, ys, xs, cell, table, crop, mask=None):
        """The grid ys x xs rendered run by run (see the module doc): (n, m, 3). With `mask` (n, m),
        only its points, row-major (N, 3): a run also ends where the rows' mask changes, and its
        points in each masked column share the column's gathered table row."""
        rows_m = axis_members(ys, crop.full_h, self.local_ensemble)  # [(index (n,), offset (n,))] per row shift
        cols_m = axis_members(xs, crop.full_w, self.local_ensemble)
        rel_cell = cell * grid_size(crop.full_h, crop.full_w, cell)
        if mask is not None:
            pattern = F.pad((mask[1:] != mask[:-1]).any(1).long(), (1, 0)).cumsum(0) * crop.full_h
            place = mask.flatten().cumsum(0) - 1  # a grid point's place among the masked ones
        preds, size = [], (ys.shape + xs.shape if mask is None else (int(mask.sum()),))
        for iy, dy in rows_m:
            runs = row_runs(iy if mask is None else pattern + iy)
            for ix, dx in cols_m:
                pred = None
                for out_rows in runs:  # (U, L): U runs of L rows each
                    if mask is None:  # every column: the runs' rows broadcast against the columns
                        index = ((iy[out_rows[:, :1]] - crop.top) * crop.w + ix - crop.left).unsqueeze(1)  # (U, 1, m)
                        dys, dxs, where = dy[out_rows][..., None, None], dx.view(1, 1, -1, 1), out_rows.flatten()
                    else:  # the runs' masked columns only
                        run, col = mask[out_rows[:, 0]].nonzero(as_tuple=True)  # (P,)
                        rows = out_rows[run]  # (P, L)
                        index = (iy[rows[:, 0]] - crop.top) * crop.w + ix[col] - crop.left
                        dys, dxs = dy[rows].t().unsqueeze(-1), dx[col].unsqueeze(-1)  # (L, P, 1), (P, 1)
                        where = place[rows.t() * len(xs) + col]
                    parts = self.table_split(table[index])
                    out = self.render(self.render_first_layer(parts[0], dys, dxs, rel_cell), parts)
                    if pred is None:  # (n, m, 3), or (N, 3) with a mask
                        pred = out.new_empty(*size, out.shape[-1])
                    pred.index_copy_(0, where.flatten(), out.reshape(where.numel(), *pred.shape[1:]))
                preds.append(pred)
        if len(preds) == 1:
            return preds[0]
        areas = torch.stack([dy.abs().view(-1, 1) * dx.abs().view(1, -1) + 1e-9
                             for _, dy in rows_m for _, dx in cols_m])
        return blend_areas(torch.stack(preds), areas if mask is None else areas[:, mask])

    def render(self, first, parts):
        """The render MLP from its first layer's pre-activation (..., hd) and the table's parts
        (`table_split`), broadcastable to it: (..., out_dim)."""
        depth = self.imnet.hidden_depth
        a = first
        for l, linear in enumerate(self.imnet.hidden):
            if l > 0:
                a = F.linear(a, linear.weight)  # the bias is in the tabulated shift
            a = torch.addcmul(parts[1 + depth + l], a, parts[1 + l]).relu_()
        return self.imnet.output(a)
