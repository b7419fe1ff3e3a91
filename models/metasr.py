"""MetaSR (Hu et al., CVPR 2019) as LIIF's paper compares it, with its names (`encoder.*`,
`imnet.layers.{0,2}`): a meta-MLP maps a query's position in its LR pixel and the relative cell to
the weights of a per-query linear layer on that pixel's 3x3-unfolded latent (the pixel holding the
query pixel's top-left corner).
"""
import torch
import torch.nn.functional as F

from utils.coords import coord_seq, make_coord, nearest_index
from .base import LocalImplicitSR
from .local_ensemble import gather_rows, grid_rows, grid_size, sample_nearest
from .models import make, register


@register('metasr')
class MetaSR(LocalImplicitSR):
    def __init__(self, encoder_spec):
        super().__init__(encoder_spec)
        # (relative row, relative col, relative cell) -> a (C*9) x 3 weight matrix
        self.imnet = make({'name': 'mlp', 'args': {'in_dim': 3, 'out_dim': self.encoder.out_dim * 9 * 3,
                                                   'hidden_list': [256]}})

    def meta_linear(self, q_feat, rel):
        """The per-query linear layer: unfolded latents (N, C*9) and (rel row, rel col, rel cell) (N, 3)."""
        weights = self.imnet(rel).view(len(rel), -1, 3)
        return torch.bmm(q_feat.unsqueeze(1), weights).squeeze(1)

    def query_rgb_plain(self, coord, cell):
        """The official formulation: grid_sample of the unfolded features and of the pixel corners."""
        B, C, h, w = self.feat.shape
        feat = F.unfold(self.feat, 3, padding=1).view(B, C * 9, h, w)
        pixel_corner = make_coord((h, w), flatten=False, device=coord.device) - grid_size(1 / h, 1 / w, coord)
        pixel_corner = pixel_corner.permute(2, 0, 1).expand(B, 2, h, w)
        corner = coord - cell / 2
        near = (corner + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6)
        rel = (corner - sample_nearest(pixel_corner, near)) * grid_size(h / 2, w / 2, coord)
        rel = torch.cat([rel, cell[..., :1] * (h / 2)], dim=-1)
        return self.meta_linear(sample_nearest(feat, near).reshape(-1, C * 9), rel.view(-1, 3)).view(B, -1, 3)

    def make_tables(self):
        B, C, h, w = self.feat.shape
        return (grid_rows(F.unfold(self.feat, 3, padding=1).view(B, C * 9, h, w)),)

    def fast_query(self, coord, cell, tables, crop):
        full_h, full_w = crop.full_h, crop.full_w
        # the LR pixel holding the query's top-left corner; offsets from that pixel's corner
        corner = coord - cell / 2
        iy = nearest_index((corner[..., 0] + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6), full_h)
        ix = nearest_index((corner[..., 1] + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6), full_w)
        pixel_corner_y = coord_seq(full_h, device=coord.device)[iy] - 1 / full_h
        pixel_corner_x = coord_seq(full_w, device=coord.device)[ix] - 1 / full_w
        rel = torch.stack([(corner[..., 0] - pixel_corner_y) * (full_h / 2),
                           (corner[..., 1] - pixel_corner_x) * (full_w / 2),
                           cell[..., 0] * (full_h / 2)], dim=-1)
        q_feat = gather_rows(tables[0], iy, ix, crop)
        return self.meta_linear(q_feat.view(-1, q_feat.shape[-1]), rel.view(-1, 3)).view(*coord.shape[:2], 3)
