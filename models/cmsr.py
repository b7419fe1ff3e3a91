"""CMSR, controllable multi-scale rendering (LMF's `query_rgb_cmsr`), for the latent-modulated
models (models/modulated.py: LM-LIIF, LM-LTE), which carry it as `model.cmsr`.

CMSR never changes the render MLP; it changes the resolution at which the MLP is queried,
per LR pixel. Pixels whose modulations are weak (little detail: small mean |shift|) are
rendered at a low "decode scale" d and bilinearly upsampled; the rest at higher d.

  S = sqrt(#queries / (h*w)), the target scale (the queries must be the full output grid).
  Table ({target scale: {decode scale: threshold}}, the official cmsr_spec's s2m_tables): the first
  target key >= S, else the last. Its decode scales below S, with thresholds [0, values...];
  if the last value is < 1, S itself is appended as the final level.
  Level i at scale d: the grid is feat_coord bilinearly resized to (int(h*d), int(w*d)) (pixel
  centres inside, clamped to the LR border centres in the outer ~d/2 rows/columns, as in the
  official code); a grid point belongs to the level when the strength of its nearest LR pixel
  lies in the level's threshold band (first level: <= T_1; last: >= T_i; else [T_i, T_i+1]).
  All levels' points are rendered in one call, each with cell (2/qh, 2/qw) * max(d/4, 1).
  Merge: the canvas starts as the normalised LR input; for each level with points it is
  bilinearly resampled (border padding) onto the level's grid and its points overwritten; the
  last level's canvas is the output, bilinearly resampled to the queries if d < S (or if the
  queries are not its grid: other scales per axis, which the official code does not handle).
The strengths are those of the forward call's cell. CMSR needs the whole output grid at once,
so models/upscale.py decodes an image whole (not in tiles) when it applies.

Calibration (the official init_cmsr / update_scale2mean; `calibrate_image`, driven by
scripts/calibrate_cmsr.py) makes the table for a target scale S from LR images and the trained
model, without ground truth: the reference is the model's own full render at S.
  Start: {d: 1 for the official decode scales d <= S} and S: 1.
  Per image and per decode scale d < S (ascending): render the level grid at d (true cells, no
  clip), bilinearly resample it to the S grid, and bin the output pixels by their LR pixel's
  strength: value v = 0, 0.01, ..., 1 holds the pixels within 0.001 of v. Walk the values up,
  accepting v while its bin's MSE against the reference (normalised space) is at most
  `mse_threshold` (an empty bin is accepted), stopping at the first failure; the last accepted
  value (0 if none) becomes the entry for d if smaller, and every smaller d is lowered to it.
  Cells are the true ones throughout (no cell clip), as the data set gives them.
So thresholds never decrease with d, and for every image seen and every d, each value up to
table[d] whose bin had pixels got them within the MSE bound from level d. Tables are YAML
{S: {d: threshold}}, as the official files, keeping every decode scale (the official shipped x6
table has 1, 2, 4, 6 only; how it drops the others is not documented).
"""
import math
import os

import torch
import torch.nn.functional as F
import yaml

from utils.config import is_number, load_yaml
from utils.coords import coord_seq, make_coord, nearest_index
from utils.errors import UserError
from utils.files import atomic_write

DECODE_SCALES = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # the decode scales a calibrated table starts with
N_VALUES = 101   # candidate thresholds 0, 0.01, ..., 1 (LM-LTE: 0, 0.005, ..., 0.5: `cmsr_top`)
BIN = 0.001      # a candidate's bin: the pixels whose strength lies within this of it
DENSE = 0.3      # a level rendering this share of its grid or more decodes the whole grid (grid
                 # decoding costs about a third of decoding its points one by one)


class CMSRError(UserError):
    """A Scale2Mod table or model that CMSR cannot use; one line naming the file."""


def decode_levels(tables, scale):
    """(decode scales, thresholds) for target scale `scale`; thresholds has one more entry."""
    keys = sorted(tables, key=float)
    key = next((k for k in keys if float(k) >= scale), keys[-1])
    entries = sorted((float(d), float(t)) for d, t in tables[key].items())
    levels = [d for d, _ in entries if d < scale]
    thresholds = [0.0] + [t for d, t in entries if d < scale]
    if thresholds[-1] < 1:
        levels.append(scale)
        thresholds.append(1.0)
    return levels, thresholds


def level_grid(h, w, d, device=None):
    """Coordinates (qh, qw, 2) at which decode scale d renders: the LR centre grid resized."""
    feat_coord = make_coord((h, w), flatten=False, device=device).permute(2, 0, 1).unsqueeze(0)
    grid = F.interpolate(feat_coord, size=(int(h * d), int(w * d)), mode='bilinear', align_corners=False)
    return grid[0].permute(1, 2, 0)


def level_mask(strength, thresholds, i, n_levels):
    """Which grid points (given their pixel's strength) level i of n renders."""
    if i == 0:
        return strength <= thresholds[1]
    if i == n_levels - 1:
        return strength >= thresholds[i]
    return (strength >= thresholds[i]) & (strength <= thresholds[i + 1])


def resample(img, coord):
    """Bilinear samples (B, C, *coord.shape[:-1]) of img (B, C, h, w) at coords (..., 2) (border)."""
    grid = coord.flip(-1).unsqueeze(0).expand(img.shape[0], *coord.shape)
    if grid.dim() == 3:
        grid = grid.unsqueeze(1)
    out = F.grid_sample(img, grid, mode='bilinear', padding_mode='border', align_corners=False)
    return out.view(*img.shape[:2], *coord.shape[:-1])


class CMSR:
    """A Scale2Mod table in use: what a latent-modulated model carries as `model.cmsr` (the
    official `cmsr_spec`), with a record of what it rendered (`last`: the last image's levels and
    points; `take_stats`: totals since the last call)."""

    def __init__(self, tables, source='cmsr_spec'):
        self.tables = check_table(tables, source)
        self.source = source
        self.last = None
        self.stats = {'images': 0, 'queries': 0, 'rendered': 0}

    @classmethod
    def from_spec(cls, spec):
        """From the official `cmsr_spec` {mse_threshold, path, s2m_tables, log}: the table is what
        counts ('mse_threshold' and 'path' only record where it came from)."""
        if not isinstance(spec, dict) or spec.get('s2m_tables') is None:
            raise CMSRError("cmsr_spec needs 's2m_tables' (scripts/calibrate_cmsr.py makes them)")
        return cls(spec['s2m_tables'], spec.get('path') or 'cmsr_spec')

    @staticmethod
    def active(n_queries, h, w):
        """The official rule: CMSR renders calls of more than 16 queries per LR pixel (beyond x4)."""
        return n_queries > 16 * h * w

    def take_stats(self):
        """{images, queries, rendered} of the calls rendered since the last call, then reset."""
        stats, self.stats = self.stats, {'images': 0, 'queries': 0, 'rendered': 0}
        return stats

    def rendered_fraction(self):
        """The fraction of the output pixels rendered since the last call, then reset; None when
        CMSR rendered nothing (x4 and below)."""
        stats = self.take_stats()
        return stats['rendered'] / stats['queries'] if stats['queries'] else None

    def render(self, model, coord, hyper_cell, bsize=None):
        """CMSR output (1, Q, 3) for the full output grid `coord` (1, Q, 2), after model.gen_feat."""
        B, Q = coord.shape[:2]
        h, w = model.feat.shape[-2:]
        if B != 1:
            raise ValueError("CMSR renders one image at a time (batch size 1), as the official code")
        scale = math.sqrt(Q / (h * w))
        levels, thresholds = decode_levels(self.tables, scale)
        strength = model.shift_strength(hyper_cell)
        grids, masks, coords, cells, dense = [], [], [], [], {}
        for i, d in enumerate(levels):
            grid = level_grid(h, w, d, device=coord.device)
            near = F.grid_sample(strength, grid.flip(-1).unsqueeze(0), mode='nearest', align_corners=False)
            mask = level_mask(near[0, 0], thresholds, i, len(levels))
            qh, qw = grid.shape[:2]
            # beyond the training scales, cells are widened as test.py does for the whole image
            cell = torch.tensor([2 / qh, 2 / qw], device=coord.device) * max(d / model.max_scale, 1)
            if mask.float().mean() >= DENSE:  # the same values, faster: the level's grid row run by row run
                dense[i] = decode_grid(model, grid[:, 0, 0], grid[0, :, 1], cell, bsize or model.cpu_chunk,
                                       hyper_cell)[:, mask].t()
            points = grid[:0, 0] if i in dense else grid[mask]  # the points decoded one by one
            grids.append(grid)
            masks.append(mask)
            coords.append(points)
            cells.append(cell.expand_as(points))
        sizes = [len(c) for c in coords]
        sparse = model.batched_query(torch.cat(coords).unsqueeze(0), torch.cat(cells).unsqueeze(0), bsize,
                                     hyper_cell=hyper_cell)[0] if sum(sizes) else coord.new_zeros(0, 3)
        pred = [dense.get(i, part) for i, part in enumerate(sparse.split(sizes))]
        counts = [int(mask.sum()) for mask in masks]
        # 'official_ratio' is what the official log accumulates (total_q / total_qn): it weights
        # level d's points by (d / S)^2, so it is not the fraction of points rendered.
        self.last = {'scale': scale, 'levels': levels, 'thresholds': thresholds, 'points': counts,
                     'rendered_fraction': sum(counts) / Q,
                     'official_ratio': sum(n * d * d for n, d in zip(counts, levels)) / (scale * scale * Q)}
        self.stats['images'] += 1
        self.stats['queries'] += Q
        self.stats['rendered'] += sum(counts)

        canvas = model.inp
        last = len(levels) - 1
        for i, (grid, mask, preds) in enumerate(zip(grids, masks, pred)):
            # The official code skips empty levels; when the last one is empty it then returns the
            # previous level's (1, 3, qh, qw) canvas instead of a (1, Q, 3) result. Here the last
            # level is always taken (resample, nothing to overwrite), giving the full-grid result.
            if len(preds) == 0 and i != last:
                continue
            canvas = resample(canvas, grid)
            canvas[:, :, mask] = preds.t().unsqueeze(0).to(canvas.dtype)
        if levels[-1] == scale and is_grid_of(coord[0], *canvas.shape[-2:]):
            # the last level is the output grid itself: its canvas, row-major, is the answer
            return canvas.flatten(2).permute(0, 2, 1)
        # a lower last level, or an output grid that is not int(h S) x int(w S) (other scales per axis)
        return resample(canvas, coord[0]).permute(0, 2, 1)


def is_grid_of(coord, qh, qw):
    """Whether queries (Q, 2) are qh rows of qw points, row-major (as a full output grid)."""
    if len(coord) != qh * qw:
        return False
    rows = coord[:, 0].view(qh, qw)
    return bool((rows == rows[:, :1]).all()) and (qh == 1 or bool(rows[1, 0] != rows[0, 0]))


# --- tables: reading, checking, attaching ----------------------------------------------------

def load_table(path, label=None):
    """The Scale2Mod tables {S: {d: threshold}} in the YAML file at `path` (yaml.safe_load),
    checked; errors name `label` (default: the path)."""
    label = label or path
    return check_table(load_yaml(path, label), label)


def check_table(data, label):
    """`data` if it is {target scale > 0: {decode scale > 0: threshold >= 0, ...}, ...}."""
    if not isinstance(data, dict) or not data:
        raise CMSRError(f"{label}: expected a Scale2Mod table {{target scale: {{decode scale: threshold}}}}, "
                        f"got {type(data).__name__ if data is not None else 'an empty file'}")
    for scale, table in data.items():
        if not is_number(scale) or scale <= 0:
            raise CMSRError(f"{label}: target scale {scale!r} is not a positive number")
        if not isinstance(table, dict) or not table:
            raise CMSRError(f"{label}: target scale {scale}: expected a mapping {{decode scale: threshold}}, "
                            f"got {table!r}")
        for d, t in table.items():
            bad = (f"decode scale {d!r} is not a positive number" if not is_number(d) or d <= 0 else
                   f"decode scale {d}: threshold {t!r} is not a number >= 0" if not (is_number(t) and t >= 0)
                   else None)
            if bad:
                raise CMSRError(f"{label}: target scale {scale}: {bad}")
    return data


BESIDE = 'beside'  # a bare --cmsr: the table shipped beside the checkpoint


def table_path(option, checkpoint):
    """The table a --cmsr option names: its own value, or for a bare --cmsr the table beside the
    checkpoint (`NAME.pth` -> `NAME-cmsr.yaml`, as save/pretrained/ ships them)."""
    return os.path.splitext(checkpoint)[0] + '-cmsr.yaml' if option == BESIDE else option


def attach(model, tables, label):
    """Give `model` (an LM-LIIF or LM-LTE) a CMSR with the checked `tables` (`load_table`);
    errors name `label`, e.g. the command-line option."""
    if not model.supports_cmsr:
        raise CMSRError(f"{label}: model {type(model).__name__} has no CMSR (it needs an lmliif or lmlte "
                        f"checkpoint with shift modulations)")
    model.cmsr = CMSR(tables, label)


def number(x):
    """A YAML-friendly number: 6 rather than 6.0, as the official tables write them."""
    x = float(x)
    return int(x) if x.is_integer() else x


def save_table(path, tables, header=''):
    """Write tables {S: {d: threshold}} as YAML (sorted, as the official yaml.dump), atomically."""
    data = {number(s): {number(d): number(round(t, 4)) for d, t in sorted(table.items())}
            for s, table in sorted(tables.items())}
    text = ''.join(f'# {line}\n' for line in header.splitlines()) + yaml.safe_dump(data, default_flow_style=False)
    atomic_write(path, lambda f: f.write(text.encode()))


# --- calibration -----------------------------------------------------------------------------

def start_table(scale):
    """The table a calibration at target scale `scale` starts from: every threshold 1."""
    table = {d: 1.0 for d in DECODE_SCALES if d <= scale}
    table[scale] = 1.0  # the values no lower level accepts stay at the target scale
    return table


def level_axes(h, w, d, device=None):
    """The row and column coordinates of decode scale d's grid (`level_grid` is their product)."""
    grid = level_grid(h, w, d, device)
    return grid[:, 0, 0], grid[0, :, 1]


def decode_grid(model, ys, xs, cell, chunk, hyper_cell=None):
    """The model's render (3, n, m) at the grid ys x xs with `cell` (2,), in row blocks (with
    `hyper_cell`, the hypernet's cell of a CMSR level: `query_grid`)."""
    rows = max(1, chunk // len(xs))
    return torch.cat([model.query_grid(ys[i:i + rows], xs, cell, hyper_cell=hyper_cell).float()
                      for i in range(0, len(ys), rows)]).permute(2, 0, 1)


def accepted_value(err, strength, mse_threshold, top=1.0):
    """The walk over the candidate values: the last value v (0, top/100, ..., top) before the
    first whose bin (pixels with |strength - v| <= BIN) has a mean error above `mse_threshold`;
    an empty bin passes. err, strength: per output pixel. 0 when the first value fails."""
    step = top / (N_VALUES - 1)
    k = torch.round(strength / step).long()
    inside = ((strength - k * step).abs() <= BIN) & (k >= 0) & (k < N_VALUES)
    sums = torch.bincount(k[inside], weights=err[inside].double(), minlength=N_VALUES)
    counts = torch.bincount(k[inside], minlength=N_VALUES)
    accepted = 0.0
    for i, (total, n) in enumerate(zip(sums.tolist(), counts.tolist())):
        if n and total / n > mse_threshold:
            break
        accepted = round(i * step, 10)
    return accepted


@torch.no_grad()
def calibrate_image(model, inp, scale, mse_threshold, table, chunk=32768):
    """One step of calibration (see the module doc): lowers the thresholds of `table` (decode
    scale -> threshold, target `scale`) with the LR image `inp` (1, 3, h, w, normalised).
    Returns what this image alone accepts, {d: value}."""
    model.gen_feat(inp)
    h, w = model.feat.shape[-2:]
    H, W = round(h * scale), round(w * scale)
    ys, xs = coord_seq(H, device=inp.device), coord_seq(W, device=inp.device)
    cell = torch.tensor([2 / H, 2 / W], device=inp.device)
    reference = decode_grid(model, ys, xs, cell, chunk)
    strength = model.shift_strength(cell.view(1, 1, 2))[0, 0].float()
    strength = strength[nearest_index(ys, h)][:, nearest_index(xs, w)].flatten()  # each pixel's LR pixel's
    coord = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), dim=-1)
    accepted = {}
    for d in sorted(k for k in table if k < scale):
        ly, lx = level_axes(h, w, d, device=inp.device)
        level = decode_grid(model, ly, lx, torch.tensor([2 / len(ly), 2 / len(lx)], device=inp.device), chunk)
        err = (resample(level.unsqueeze(0), coord)[0] - reference).square().mean(0).flatten()
        accepted[d] = accepted_value(err, strength, mse_threshold, model.cmsr_top)
        table[d] = min(table[d], accepted[d])
        for k in table:
            if k < d:
                table[k] = min(table[k], table[d])
    return accepted
