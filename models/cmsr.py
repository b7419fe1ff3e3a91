"""CMSR, controllable multi-scale rendering (LMF's `query_rgb_cmsr`), which a latent-modulated
model (models/modulated.py) carries as `model.cmsr`. It changes, per LR pixel, the resolution at
which the render MLP is queried, never the MLP: pixels whose modulations are weak (small mean
|shift|, little detail) render at a low decode scale d and are bilinearly upsampled.

  S = sqrt(#queries / (h*w)) (the queries: the full output grid). The Scale2Mod table
  (scale2mod.py) of the first target key >= S (else the last) gives decode scales below S and
  thresholds [0, values...], S itself appended when the last value is < 1. Level i renders the
  points of an int(h d) x int(w d) grid whose nearest LR pixel's strength lies in its band
  (first: <= T_1, last: >= T_i, else [T_i, T_i+1]), with the output's modulations and cell
  (2/qh, 2/qw) * max(d / 4, 1), in runs of rows (`render_grid` with a mask). Merge: the canvas
  starts as the normalised LR input; each level with points resamples it bilinearly (border) onto
  its grid and overwrites its points; the last canvas is the output (resampled to the queries if
  d < S or if they are not its grid, as with other scales per axis, unhandled officially).
The level grids are the levels' pixel centres, so an image whose pixels all go to S equals the
full render, borders included; the official code resizes the LR centre grid (`official_grid`):
flat blocks along the edges, hidden by the paper's shave. It needs the whole output grid.
"""
import math
from typing import Protocol

import torch
import torch.nn.functional as F

from utils.coords import make_coord
from . import scale2mod

class Renderable(Protocol):
    """What CMSR and its calibration use of a model, after `gen_feat` of one image."""
    inp: torch.Tensor  # the normalised LR input (1, 3, h, w), CMSR's first canvas
    feat: torch.Tensor  # the features (1, C, h, w)
    cell_clip: float  # the largest training scale: cells are widened beyond it
    cpu_chunk: int
    calibration_top: float  # calibration tries strengths 0 .. calibration_top

    def gen_feat(self, inp): ...
    def shift_strength(self, hyper_cell): ...  # mean |shift modulation| per LR pixel (1, 1, h, w)
    def render_grid(self, ys, xs, cell, hyper_cell, chunk=None, mask=None): ...  # -> (n, m, 3), masked (N, 3)


def decode_levels(s2m, scale):
    """(decode scales, thresholds) for target scale `scale`; thresholds has one more entry."""
    keys = sorted(s2m, key=float)
    key = next((k for k in keys if float(k) >= scale), keys[-1])
    entries = sorted((float(d), float(t)) for d, t in s2m[key].items())
    levels = [d for d, _ in entries if d < scale]
    thresholds = [0.0] + [t for d, t in entries if d < scale]
    if thresholds[-1] < 1:
        levels.append(scale)
        thresholds.append(1.0)
    return levels, thresholds


def level_grid(h, w, d, official=False, device=None):
    """Coordinates (qh, qw, 2) at which decode scale d renders: its pixel centres, or (official)
    the LR centre grid bilinearly resized."""
    size = (int(h * d), int(w * d))
    if not official:
        return make_coord(size, flatten=False, device=device)
    feat_coord = make_coord((h, w), flatten=False, device=device).permute(2, 0, 1).unsqueeze(0)
    return F.interpolate(feat_coord, size=size, mode='bilinear', align_corners=False)[0].permute(1, 2, 0)


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


def decode_grid(model, ys, xs, cell, chunk, hyper_cell, mask=None):
    """The model's render (3, n, m) at the grid ys x xs with `cell` (2,) and the modulations of
    `hyper_cell`, in blocks of rows holding about `chunk` points; with `mask` (n, m), only its
    points, row-major (N, 3)."""
    rows = max(1, chunk * len(ys) // max(len(ys) * len(xs) if mask is None else int(mask.sum()), 1))
    out = torch.cat([model.render_grid(ys[i:i + rows], xs, cell, hyper_cell, mask=None if mask is None else
                                       mask[i:i + rows]).float() for i in range(0, len(ys), rows)])
    return out.permute(2, 0, 1) if mask is None else out


def is_grid_of(coord, qh, qw):
    """Whether queries (Q, 2) are qh rows of qw points, row-major (as a full output grid)."""
    if len(coord) != qh * qw:
        return False
    rows = coord[:, 0].view(qh, qw)
    return bool((rows == rows[:, :1]).all()) and (qh == 1 or bool(rows[1, 0] != rows[0, 0]))


class CMSR:
    """A Scale2Mod table in use: what a latent-modulated model carries as `model.cmsr` (the
    official `cmsr_spec`), with a record of what it rendered (`last`: the last image's levels and
    points; `take_stats`: totals since the last call)."""

    def __init__(self, s2m, source='cmsr_spec', official_grid=False):
        self.s2m = scale2mod.check(s2m, source)
        self.source = source
        self.official_grid = official_grid
        self.last = None
        self.stats = {'images': 0, 'queries': 0, 'rendered': 0}

    @classmethod
    def from_spec(cls, spec, official_grid=False):
        """From the official `cmsr_spec` {mse_threshold, path, s2m_tables, log}: the table is what
        counts ('mse_threshold' and 'path' only record where it came from)."""
        if not isinstance(spec, dict) or spec.get('s2m_tables') is None:
            raise scale2mod.CMSRError("cmsr_spec needs 's2m_tables' (scripts/calibrate_cmsr.py makes them)")
        return cls(spec['s2m_tables'], spec.get('path') or 'cmsr_spec', official_grid)

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

    def decode(self, model: Renderable, coord, hyper_cell, chunk=None):
        """CMSR output (1, Q, 3) for the full output grid `coord` (1, Q, 2), after model.gen_feat."""
        B, Q = coord.shape[:2]
        h, w = model.feat.shape[-2:]
        if B != 1:
            raise ValueError("CMSR renders one image at a time (batch size 1), as the official code")
        scale = math.sqrt(Q / (h * w))
        levels, thresholds = decode_levels(self.s2m, scale)
        strength = model.shift_strength(hyper_cell)
        rendered = []  # (grid, mask, the values of its points) per level
        for i, d in enumerate(levels):
            grid = level_grid(h, w, d, self.official_grid, device=coord.device)
            near = F.grid_sample(strength, grid.flip(-1).unsqueeze(0), mode='nearest', align_corners=False)
            mask = level_mask(near[0, 0], thresholds, i, len(levels))
            qh, qw = grid.shape[:2]
            # beyond the training scales, cells are widened as test.py does for the whole image
            cell = torch.tensor([2 / qh, 2 / qw], device=coord.device) * max(d / model.cell_clip, 1)
            rendered.append((grid, mask, decode_grid(model, grid[:, 0, 0], grid[0, :, 1], cell, chunk or
                                                     model.cpu_chunk, hyper_cell, mask) if mask.any() else
                             coord.new_zeros(0, 3)))
        counts = [int(mask.sum()) for _, mask, _ in rendered]
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
        for i, (grid, mask, preds) in enumerate(rendered):
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


def attach(model, option, checkpoint):
    """A --cmsr option of test.py and demo.py: give `model` (read from `checkpoint`) a CMSR with the
    Scale2Mod table the option names (a bare --cmsr: the one beside the checkpoint); returns its path."""
    if not model.supports_cmsr:
        raise scale2mod.CMSRError(f"--cmsr: {checkpoint} holds a {type(model).__name__} model, which has no CMSR "
                                  f"(only latent-modulated models, such as LM-LIIF, have one)")
    path = scale2mod.path_for(option, checkpoint)
    model.cmsr = CMSR(scale2mod.load(path, f'--cmsr {path}'), f'--cmsr {path}')
    return path
