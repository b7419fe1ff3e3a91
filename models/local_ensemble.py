"""The geometry LIIF-style decoders share: which LR pixels (latents) answer a query, how far the
query is from each, and how their answers are blended (the local ensemble); index arithmetic for
the fast forms, the official grid_sample formulation for the plain ones."""
import torch
import torch.nn.functional as F

from utils.coords import coord_seq, make_coord, nearest_index

ENSEMBLE_EPS = 1e-6  # nudges shifted queries off pixel boundaries, as the official code does


def ensemble_shifts(local_ensemble):
    """(row, col) shifts, in half LR pixels, of the ensemble members, and the nudge."""
    if local_ensemble:
        return [(-1, -1), (-1, 1), (1, -1), (1, 1)], ENSEMBLE_EPS
    return [(0, 0)], 0


def grid_size(h, w, like):
    """tensor([h, w]) in `like`'s dtype and device: [-1, 1] units to LR pixels of an h x w grid."""
    return torch.tensor([h, w], dtype=like.dtype, device=like.device)


def shifted(coord, dy, dx):
    """Queries (B, Q, 2) moved by (dy, dx) in [-1, 1] units (numbers, or tensors broadcasting
    with coord[..., 0]), kept inside the grid."""
    out = coord.clone()
    out[..., 0] += dy
    out[..., 1] += dx
    return out.clamp_(-1 + 1e-6, 1 - 1e-6)


def ensemble_members(coord, full_h, full_w, local_ensemble, radius=None):
    """Members of each query (B, Q, 2): row and column indices into the full_h x full_w LR grid
    (M, B, Q) and the query's offset from that pixel's centre in LR pixels (M, B, Q, 2). A
    member's row depends only on its row shift and its column only on its column shift, so each
    axis is worked out once (`axis_members`), in the members' order (row shift, then column).
    `radius`: the (row, col) shift in [-1, 1] units (default half an LR pixel; CiaoSR's is per
    image, tensors broadcasting with coord[..., 0])."""
    ry, rx = radius or (1 / full_h, 1 / full_w)
    rows = axis_members(coord[..., 0], full_h, local_ensemble, ry)
    cols = axis_members(coord[..., 1], full_w, local_ensemble, rx)
    iy = torch.stack([index for index, _ in rows for _ in cols])
    ix = torch.stack([index for _ in rows for index, _ in cols])
    rel = torch.stack([torch.stack([dy, dx], dim=-1) for _, dy in rows for _, dx in cols])
    return iy, ix, rel


def axis_members(seq, n, local_ensemble, radius=None):
    """The local ensemble along one axis of n LR pixels, for query coordinates `seq` (any shape)
    on that axis: for each of the axis' shifts, (-1, 1) or (0,), the index of the member's pixel
    and the query's offset from its centre in LR pixels, both shaped as `seq`."""
    centres = coord_seq(n, device=seq.device)
    shifts, eps = ensemble_shifts(local_ensemble)
    radius = 1 / n if radius is None else radius
    members = []
    for v in sorted({vy for vy, _ in shifts}):
        # nudged half an LR pixel towards the member, the query's nearest pixel is the member
        index = nearest_index((seq + (v * radius + eps)).clamp_(-1 + 1e-6, 1 - 1e-6), n)
        members.append((index, (seq - centres[index]) * n))
    return members


def gather_rows(rows, iy, ix, crop):
    """Rows of a per-pixel table (B*h*w, D) laid out like the features at `crop` of the full LR
    grid, at full-grid indices iy, ix (..., B, Q): (..., B, Q, D)."""
    B = iy.shape[-2]
    batch_offset = (torch.arange(B, device=iy.device) * (crop.h * crop.w)).view(B, 1)
    index = (iy - crop.top) * crop.w + (ix - crop.left) + batch_offset
    return rows.index_select(0, index.view(-1)).view(*index.shape, -1)


def plain_ensemble(coord, h, w, local_ensemble, predict):
    """The local ensemble as the official code writes it (the plain forms): for each member,
    `predict(near, rel)` with `near` the shifted queries (B, Q, 2) that `sample_nearest` turns into
    the member's LR pixel and `rel` the query's offset from that pixel's centre in LR pixels; the
    members' outputs blended."""
    centres = make_coord((h, w), flatten=False, device=coord.device).permute(2, 0, 1).expand(coord.shape[0], 2, h, w)
    shifts, eps = ensemble_shifts(local_ensemble)
    preds, rels = [], []
    for vy, vx in shifts:
        near = shifted(coord, vy / h + eps, vx / w + eps)
        rels.append((coord - sample_nearest(centres, near)) * grid_size(h, w, coord))
        preds.append(predict(near, rels[-1]))
    return blend(torch.stack(preds), torch.stack(rels))


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


def lr_conv(feat, weight, bias, k):
    """A linear layer over each LR pixel's k x k neighbourhood of `feat` (unfold's channel-major
    order: weight (D, C*k*k)), as a convolution: rows (B*h*w, D). The first layer of a decoder
    whose input starts with unfolded features, computed once at LR resolution."""
    weight = weight.reshape(weight.shape[0], feat.shape[1], k, k)  # (c, ky, kx) is a conv weight's layout
    return grid_rows(F.conv2d(feat, weight, bias, padding=k // 2))


def lr_skip(inp, coord, crop):
    """The bilinear sample (border padding, align_corners=False, as LTE's skip connection) of the
    LR input at coord (B, Q, 2): (B, Q, C). `inp` is the crop of the input at `crop`; for whole
    features, its own frame (the features may then be larger than the input, as SwinIR pads it)."""
    if not crop.whole:  # coordinates in the crop's frame
        hc, wc = inp.shape[-2:]
        coord = (coord + 1) * grid_size(crop.full_h / hc, crop.full_w / wc, coord) - 1 \
            - grid_size(2 * crop.top / hc, 2 * crop.left / wc, coord)
    out = F.grid_sample(inp, coord.flip(-1).unsqueeze(1).to(inp.dtype), mode='bilinear', padding_mode='border',
                        align_corners=False)
    return out[:, :, 0, :].permute(0, 2, 1)
