"""CMSR, controllable multi-scale rendering (LMF's `query_rgb_cmsr`), for models/lmliif.py.

CMSR never changes the render MLP; it changes the resolution at which the MLP is queried,
per LR pixel. Pixels whose modulations are weak (little detail: small mean |shift|) are
rendered at a low "decode scale" d and bilinearly upsampled; the rest at higher d.

  S = sqrt(#queries / (h*w)), the target scale (the queries must be the full output grid).
  Table (cmsr_spec['s2m_tables'], {target scale: {decode scale: threshold}}): the first
  target key >= S, else the last. Its decode scales below S, with thresholds [0, values...];
  if the last value is < 1, S itself is appended as the final level.
  Level i at scale d: the grid is feat_coord bilinearly resized to (int(h*d), int(w*d)) (pixel
  centres inside, clamped to the LR border centres in the outer ~d/2 rows/columns, as in the
  official code); a grid point belongs to the level when the strength of its nearest LR pixel
  lies in the level's threshold band (first level: <= T_1; last: >= T_i; else [T_i, T_i+1]).
  All levels' points are rendered in one call, each with cell (2/qh, 2/qw) * max(d/4, 1).
  Merge: the canvas starts as the normalised LR input; for each level with points it is
  bilinearly resampled (border padding) onto the level's grid and its points overwritten; the
  last level's canvas is the output, bilinearly resampled to the queries if d < S.
The modulations (and so the strengths) are those of the forward call's cell. cmsr_spec's
'mse_threshold' and 'path' only concern calibration (the official init_cmsr), not done here.
"""
import math

import torch
import torch.nn.functional as F

from utils.coords import make_coord


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


def render(model, inp, coord, hyper_cell, bsize=None):
    """CMSR output (1, Q, 3) for the full output grid `coord` (1, Q, 2), after model.gen_feat(inp)."""
    B, Q = coord.shape[:2]
    h, w = model.feat.shape[-2:]
    if B != 1:
        raise ValueError("CMSR renders one image at a time (batch size 1), as the official code")
    spec = model.cmsr_spec
    if spec.get('s2m_tables') is None:
        raise ValueError("cmsr_spec needs 's2m_tables' (calibrating them, init_cmsr, is not implemented)")
    scale = math.sqrt(Q / (h * w))
    levels, thresholds = decode_levels(spec['s2m_tables'], scale)
    strength = model.shift_strength(hyper_cell)
    grids, masks, coords, cells = [], [], [], []
    for i, d in enumerate(levels):
        grid = level_grid(h, w, d, device=coord.device)
        near = F.grid_sample(strength, grid.flip(-1).unsqueeze(0), mode='nearest', align_corners=False)
        mask = level_mask(near[0, 0], thresholds, i, len(levels))
        qh, qw = grid.shape[:2]
        points = grid[mask]
        # beyond the training scales, cells are widened as test.py does for the whole image
        cell = torch.tensor([2 / qh, 2 / qw], device=coord.device) * max(d / model.max_scale, 1)
        grids.append(grid)
        masks.append(mask)
        coords.append(points)
        cells.append(cell.expand_as(points))
    counts = [len(c) for c in coords]
    pred = model.batched_decode(torch.cat(coords).unsqueeze(0), torch.cat(cells).unsqueeze(0),
                                hyper_cell, bsize)[0]
    if spec.get('log'):
        # 'official_ratio' is what the official log accumulates (total_q / total_qn): it weights
        # level d's points by (d / S)^2, so it is not the fraction of points rendered.
        model.cmsr_log = {'scale': scale, 'levels': levels, 'thresholds': thresholds, 'points': counts,
                          'rendered_fraction': sum(counts) / Q,
                          'official_ratio': sum(n * d * d for n, d in zip(counts, levels)) / (scale * scale * Q)}

    canvas = inp
    last = len(levels) - 1
    for i, (grid, mask, preds) in enumerate(zip(grids, masks, pred.split(counts))):
        # The official code skips empty levels; when the last one is empty it then returns the
        # previous level's (1, 3, qh, qw) canvas instead of a (1, Q, 3) result. Here the last
        # level is always taken (resample, nothing to overwrite), giving the full-grid result.
        if len(preds) == 0 and i != last:
            continue
        canvas = resample(canvas, grid)
        canvas[:, :, mask] = preds.t().unsqueeze(0).to(canvas.dtype)
    if levels[-1] < scale:
        return resample(canvas, coord[0]).permute(0, 2, 1)
    # the last level is the output grid itself: its canvas, row-major, is the answer
    if canvas.shape[-2] * canvas.shape[-1] != Q:
        raise ValueError(f"CMSR needs the queries to be the full row-major output grid; got {Q} queries "
                         f"for a {canvas.shape[-2]}x{canvas.shape[-1]} grid")
    return canvas.flatten(2).permute(0, 2, 1)
