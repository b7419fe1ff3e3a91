"""The latent-modulated decoders of LMF (He and Jin, "Latent Modulated Function for
Computational Optimal Continuous Image Representation", CVPR 2024): what LM-LIIF (lmliif.py)
and LM-LTE (lmlte.py) share.

A hypernetwork runs once per LR pixel p and returns, in the official layout,
    M_p = [scales s_0..s_{L-1} | shifts t_0..t_{L-1} | the family's render inputs]
(`mod_dim` = 2 L hd values, then e.g. LM-LIIF's latent z or LM-LTE's coef and freq). A query
at x, for each local-ensemble member (the LR pixel p nearest to x nudged half a pixel
diagonally), runs the render MLP (models/lmmlp.py) on the family's first layer of
(M_p, x - centre_p, cell), every hidden layer l scaled by 1 + s_l and shifted by t_l; the
members are blended by area, as in LIIF.

The fast form tabulates per LR pixel what a query gathers (`render_table`):
    [first-layer inputs | 1 + s_0..s_{L-1} | t'_0..t'_{L-1}],  t'_l = b_l (1 + s_l) + t_l
(layer l's bias folded into its shift, so a query adds no biases), and a query gathers one
row per member by integer indexing (no grid_sample). `query_grid` decodes rows x columns of
an output grid without per-query gathers: output rows that a member reads from the same LR
row (a run of about `scale` rows) share one gathered row of the table, broadcast over the
run. With a 16-wide MLP, gathering the ~200 table values per query and member cost more than
the MLP itself (measured in benchmarks/RESULTS.md).

The hypernetwork sees the query cell. Cells are uniform per image in every official use, and
the table is then made once per (features, cell) and cached. For non-uniform cells the
official rule is kept: LR pixel p gets the cell of query p of the call (so a call needs at
least h*w queries, and `forward` applies it to the whole call before chunking).

CMSR (models/cmsr.py) is an object a model may carry (`model.cmsr`): in eval mode, beyond x4,
`forward` and `query_grid` render through it.
"""
import torch
import torch.nn.functional as F

from .base import LocalImplicitSR
from .cmsr import CMSR
from .local_ensemble import axis_members, blend, blend_areas, ensemble_members, gather_rows


def row_runs(index):
    """Runs of consecutive equal values in `index` (n,), grouped by length: a list of (the
    run's value (U,), the positions of its elements (U, L)) for each run length L."""
    values, counts = torch.unique_consecutive(index, return_counts=True)
    starts = counts.cumsum(0) - counts
    steps = torch.arange(int(counts.max()), device=index.device)
    return [(values[counts == L], starts[counts == L].view(-1, 1) + steps[:L]) for L in counts.unique().tolist()]


class LatentModulated(LocalImplicitSR):
    """The LM base. A family builds `hypernet` and `imnet` (an lmmlp) and provides:
      hypernet_rows(hyper_cell)   the hypernetwork's output rows (B*h*w, mod_dim + extra);
      table_inputs(mods)          the first-layer inputs a query gathers, per LR pixel;
      first_layer(inputs, dy, dx, rel_cell)  the first hidden layer's pre-activation (without
                                  its bias when `folds_first_bias`), broadcasting over queries;
      query_rgb_plain(coord, cell)  the equations as written (with `hypernet_cell(cell)`);
    and may add `skip` (an LR term added to the output)."""

    cpu_chunk = 32768  # output rows sharing an LR row share its table row: larger blocks pay
    max_scale = 4  # training's largest scale; CMSR widens cells beyond it (hard-coded officially)
    folds_first_bias = True
    cmsr_top = 1.0  # CMSR calibration tries thresholds 0 .. cmsr_top

    def __init__(self, encoder_spec, cmsr_spec=None):
        super().__init__(encoder_spec)
        self.cmsr = CMSR.from_spec(cmsr_spec) if cmsr_spec else None
        self.pinned_cell = None  # the hypernet cell of a whole call, while it is decoded in chunks

    def gen_feat(self, inp, window=None):
        self.cache = None  # (hypernet cell, modulation rows, render table, grad mode) of the last cell
        return super().gen_feat(inp, window)

    # --- modulations, once per LR pixel -----------------------------------------------------

    def hypernet_cell(self, cell):
        """The cell input of the hypernet for the current call: (B, 1, 2) if every query of an
        image has the same cell, else the official per-pixel rule (B, h*w, 2)."""
        if self.pinned_cell is not None:
            return self.pinned_cell
        if (cell == cell[:, :1]).all():
            return cell[:, :1]
        h, w = self.feat.shape[-2:]
        if cell.shape[1] < h * w or self.window != (0, 0, h, w):
            raise ValueError(f"{type(self).__name__}: non-uniform cells follow the official rule (LR pixel p uses "
                             f"the cell of query p), which needs a whole image and at least h*w queries")
        return cell[:, :h * w]

    def modulations(self, hyper_cell):
        """Hypernet output rows (B*h*w, D) for this hypernet cell (cached)."""
        self.update_cache(hyper_cell)
        return self.cache[1]

    def render_table(self, hyper_cell):
        """Per-LR-pixel rows of what a query gathers (see the module doc); a missing scale (shift)
        block reads as 1 (0). Float32, whatever the autocast."""
        self.update_cache(hyper_cell)
        return self.cache[2]

    def update_cache(self, hyper_cell):
        # rebuilt for another cell, and when grad mode changed (a table made under no_grad
        # would silently cut the hypernet out of the graph)
        grad = torch.is_grad_enabled()
        if self.cache is not None and self.cache[0].shape == hyper_cell.shape \
                and torch.equal(self.cache[0], hyper_cell) and self.cache[3] == grad:
            return
        mods = self.hypernet_rows(hyper_cell)
        scales, shifts = self.imnet.split_mods(mods[:, :self.imnet.mod_dim])
        n, depth, hd = mods.shape[0], self.imnet.hidden_depth, self.imnet.hidden_dim
        scales = 1 + scales if scales is not None else mods.new_ones(n, depth, hd)
        shifts = shifts if shifts is not None else mods.new_zeros(n, depth, hd)
        # (W a + b)(1 + s) + t = (W a)(1 + s) + (b (1 + s) + t): no bias add per query
        k = 0 if self.folds_first_bias else 1
        biases = torch.stack([layer.bias for layer in self.imnet.hidden_layers()[k:]])  # (depth - k, hd)
        shifts = torch.cat([shifts[:, :k], torch.addcmul(shifts[:, k:], scales[:, k:], biases)], dim=1)
        table = torch.cat([self.table_inputs(mods), scales.flatten(1), shifts.flatten(1)], dim=1).float()
        self.cache = (hyper_cell.clone(), mods, table, grad)

    def table_split(self, table):
        """The table's columns as [first-layer inputs, 1 + s_0, ..., t'_0, ...] (one split, not a
        slice per layer: each slice's backward would zero a gradient as large as the rows)."""
        hd = self.imnet.hidden_dim
        return table.split([table.shape[-1] - 2 * self.imnet.hidden_depth * hd] + [hd] * 2 * self.imnet.hidden_depth,
                           dim=-1)

    def gen_modulations(self, cell):
        """The modulation map (B, D, h, w) that queries with `cell` use (the official layout)."""
        B = self.feat.shape[0]
        h, w = self.feat.shape[-2:]
        return self.modulations(self.hypernet_cell(cell)).view(B, h, w, -1).permute(0, 3, 1, 2)

    def shift_strength(self, hyper_cell):
        """Mean |shift modulation| per LR pixel (B, 1, h, w): CMSR's measure of local detail."""
        _, shifts = self.imnet.split_mods(self.modulations(hyper_cell)[:, :self.imnet.mod_dim])
        if shifts is None:
            raise ValueError("CMSR needs shift modulations (mod_shift=True)")
        B = self.feat.shape[0]
        h, w = self.feat.shape[-2:]
        return shifts.abs().flatten(1).mean(1).view(B, 1, h, w)

    # --- queries ----------------------------------------------------------------------------

    def tables(self, cell):
        return (self.render_table(self.hypernet_cell(cell)),)

    def skip(self, coord, top, left, full_h, full_w, h, w):
        """What the family adds to the blended output at coord (B, Q, 2) (window as
        `query_window`), or None."""
        return None

    def forward(self, inp, coord=None, cell=None, bsize=None):
        """The official forward; renders through CMSR where it applies (eval, beyond x4)."""
        self.gen_feat(inp)
        if coord is None:
            return None
        if self.cmsr is not None and not self.training and self.cmsr.active(coord.shape[1], *self.feat.shape[-2:]):
            return self.cmsr.render(self, coord, self.hypernet_cell(cell), bsize)
        return self.batched_query(coord, cell, bsize)

    def batched_query(self, coord, cell, bsize=None, hyper_cell=None):
        """Queries in chunks, with the hypernet cell of the whole call (the official rule)."""
        self.pinned_cell = hyper_cell if hyper_cell is not None else self.hypernet_cell(cell)
        try:
            return super().batched_query(coord, cell, bsize)
        finally:
            self.pinned_cell = None

    def decodes_whole(self, h, w, H, W):
        return self.cmsr is not None and not self.training and self.cmsr.active(H * W, h, w)

    @property
    def supports_cmsr(self):
        return bool(self.imnet.mod_shift)

    def query_rgb_fast(self, coord, cell=None):
        """The per-query part runs in float32 even under autocast (the encoder and hypernetwork
        follow it): its matrix products are 16 wide, too small to gain from bf16, and on a CPU
        the conversions made it slower (benchmarks/RESULTS.md)."""
        with torch.autocast(coord.device.type, enabled=False):
            return super().query_rgb_fast(coord.float(), cell.float())

    def query_window(self, coord, cell, tables, top, left, full_h, full_w, h, w):
        iy, ix, rels = ensemble_members(coord, full_h, full_w, self.local_ensemble)
        rows = gather_rows(tables[0], iy, ix, top, left, h, w)  # (members, B, Q, D)
        parts = self.table_split(rows)
        rel_cell = cell * torch.tensor([full_h, full_w], dtype=cell.dtype, device=cell.device)
        first = self.first_layer(parts[0], rels[..., :1], rels[..., 1:], rel_cell)
        out = blend(self.render(first, parts), rels)
        skip = self.skip(coord, top, left, full_h, full_w, h, w)
        return out if skip is None else out + skip

    def query_grid(self, ys, xs, cell, chunk=None, hyper_cell=None):
        """`query_rgb` of the grid ys x xs (one image), run by run (see the module doc); through
        CMSR where it applies (the whole output grid, decoded in chunks of `chunk` queries).
        `hyper_cell` (1, 1, 2): the hypernet's cell where it is not `cell` (a CMSR level: the
        output's cell for the modulations, the level's for the render); such a grid is decoded as it is."""
        if self.feat.shape[0] != 1:
            raise ValueError("query_grid decodes one image (batch size 1)")
        h, w = self.feat.shape[-2:]
        coord = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1).view(1, -1, 2)
        if hyper_cell is None:
            hyper_cell = cell.view(1, 1, 2)
            if self.window == (0, 0, h, w) and self.decodes_whole(h, w, len(ys), len(xs)):
                return self.cmsr.render(self, coord, hyper_cell, chunk).view(len(ys), len(xs), -1)
        if self.decoder == 'plain':
            return self.batched_query(coord, cell.view(1, 1, 2).expand_as(coord), chunk,
                                      hyper_cell=hyper_cell).view(len(ys), len(xs), -1)
        table = self.render_table(hyper_cell)
        with torch.autocast(ys.device.type, enabled=False):  # float32, as `query_rgb_fast`
            out = self.grid_runs(ys, xs, cell.float(), table, *self.window, h, w)
            skip = self.skip(coord, *self.window, h, w)
        return out if skip is None else out + skip.view(out.shape)

    def grid_runs(self, ys, xs, cell, table, top, left, full_h, full_w, h, w):
        rows_m = axis_members(ys, full_h, self.local_ensemble)  # [(index (n,), offset (n,))] per row shift
        cols_m = axis_members(xs, full_w, self.local_ensemble)
        rel_cell = cell * torch.tensor([full_h, full_w], dtype=cell.dtype, device=cell.device)
        grid = table.view(h, w, -1)
        preds = []
        for iy, dy in rows_m:
            runs = row_runs(iy)
            for ix, dx in cols_m:
                pred = None
                for lr_rows, out_rows in runs:  # out_rows (U, L): U runs of L rows each
                    U, L = out_rows.shape
                    parts = self.table_split(grid.index_select(0, lr_rows - top).index_select(1, ix - left).unsqueeze(1))
                    first = self.first_layer(parts[0], dy[out_rows].view(U, L, 1, 1), dx.view(1, 1, -1, 1), rel_cell)
                    out = self.render(first, parts)  # (U, L, m, 3)
                    if pred is None:
                        pred = out.new_empty(len(ys), len(xs), out.shape[-1])
                    pred.index_copy_(0, out_rows.view(-1), out.view(U * L, len(xs), -1))
                preds.append(pred)
        if len(preds) == 1:
            return preds[0]
        areas = torch.stack([dy.abs().view(-1, 1) * dx.abs().view(1, -1) + 1e-9 for _, dy in rows_m for _, dx in cols_m])
        return blend_areas(torch.stack(preds), areas)

    def render(self, first, parts):
        """The render MLP from its first layer's pre-activation (..., hd) and the table's parts
        (`table_split`), broadcastable to it: (..., out_dim)."""
        depth = self.imnet.hidden_depth
        a = first
        for l, linear in enumerate(self.imnet.hidden_layers()):
            if l > 0:
                a = F.linear(a, linear.weight)  # the bias is in the tabulated shift
            a = torch.addcmul(parts[1 + depth + l], a, parts[1 + l]).relu_()
        return self.imnet.layers[-1](a)
