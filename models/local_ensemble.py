"""The geometry LIIF-style decoders share: which LR pixels (latents) answer a query, how far the
query is from each, and how their answers are blended (the local ensemble). Index arithmetic
only: a query finds its pixels with `nearest_index`, not grid_sample."""
import torch
import torch.nn.functional as F

from utils.coords import coord_seq, nearest_index

ENSEMBLE_EPS = 1e-6  # nudges shifted queries off pixel boundaries, as the official code does


def ensemble_shifts(local_ensemble):
    """(row, col) shifts, in half LR pixels, of the ensemble members, and the nudge."""
    if local_ensemble:
        return [(-1, -1), (-1, 1), (1, -1), (1, 1)], ENSEMBLE_EPS
    return [(0, 0)], 0


def shifted(coord, vy, vx, h, w, eps):
    """Queries (B, Q, 2) moved by (vy, vx) half pixels of an h x w grid (and nudged), kept inside."""
    out = coord.clone()
    out[..., 0] += vy / h + eps
    out[..., 1] += vx / w + eps
    return out.clamp_(-1 + 1e-6, 1 - 1e-6)


def ensemble_members(coord, full_h, full_w, local_ensemble):
    """Members of each query (B, Q, 2): row and column indices into the full_h x full_w LR grid
    (M, B, Q) and the query's offset from that pixel's centre in LR pixels (M, B, Q, 2)."""
    centres_y = coord_seq(full_h, device=coord.device)
    centres_x = coord_seq(full_w, device=coord.device)
    shifts, eps = ensemble_shifts(local_ensemble)
    iy, ix, rel = [], [], []
    for vy, vx in shifts:
        # nudged half an LR pixel towards the member, the query's nearest pixel is the member
        y = (coord[..., 0] + (vy / full_h + eps)).clamp_(-1 + 1e-6, 1 - 1e-6)
        x = (coord[..., 1] + (vx / full_w + eps)).clamp_(-1 + 1e-6, 1 - 1e-6)
        iy.append(nearest_index(y, full_h))
        ix.append(nearest_index(x, full_w))
        rel.append(torch.stack([(coord[..., 0] - centres_y[iy[-1]]) * full_h,
                                (coord[..., 1] - centres_x[ix[-1]]) * full_w], dim=-1))
    return torch.stack(iy), torch.stack(ix), torch.stack(rel)


def axis_members(seq, n, local_ensemble):
    """`ensemble_members` along one axis, for queries on a grid (rows `seq` x some columns, or
    the reverse): for each of the axis' shifts, (-1, 1) or (0,), the index into the n LR pixels
    of that axis and the offset from its centre in LR pixels, both (len(seq),). The same floats
    as `ensemble_members` gives each query of the grid."""
    centres = coord_seq(n, device=seq.device)
    shifts, eps = ensemble_shifts(local_ensemble)
    members = []
    for v in sorted({vy for vy, _ in shifts}):
        index = nearest_index((seq + (v / n + eps)).clamp_(-1 + 1e-6, 1 - 1e-6), n)
        members.append((index, (seq - centres[index]) * n))
    return members


def gather_rows(rows, iy, ix, top, left, h, w):
    """Rows of a per-pixel table (B*h*w, D) laid out like the h x w window at (top, left) of the
    full grid, at full-grid indices iy, ix (..., B, Q): (..., B, Q, D)."""
    B = iy.shape[-2]
    batch_offset = (torch.arange(B, device=iy.device) * (h * w)).view(B, 1)
    index = (iy - top) * w + (ix - left) + batch_offset
    return rows.index_select(0, index.view(-1)).view(*index.shape, -1)


def blend(preds, rels):
    """Members' outputs (M, B, Q, 3), each weighted by the area of the rectangle between the
    query and the diagonally opposite member's pixel centre."""
    if len(preds) == 1:
        return preds[0]
    return blend_areas(preds, (rels[..., 0] * rels[..., 1]).abs() + 1e-9)


def blend_areas(preds, areas):
    """`blend` given each member's area |dy * dx| + 1e-9, (M, ...) (M = 4)."""
    weights = areas.flip(0) / areas.sum(0)  # flip pairs members 0<->3 and 1<->2
    return (preds * weights.unsqueeze(-1)).sum(0)


def grid_rows(grid):
    """(B, C, h, w) -> (B*h*w, C), contiguous so that gathering rows is fast."""
    return grid.permute(0, 2, 3, 1).reshape(-1, grid.shape[1]).contiguous()


def sample_nearest(grid, coord):
    """Value of `grid` (B, C, h, w) at the cell nearest to each coord (B, Q, 2): (B, Q, C)."""
    samples = F.grid_sample(grid, coord.flip(-1).unsqueeze(1), mode='nearest', align_corners=False)
    return samples[:, :, 0, :].permute(0, 2, 1)
