"""LM-CiaoSR: CiaoSR converted to a latent-modulated function (LMF, He and Jin, CVPR 2024;
LMF's models/lmciaosr.py, whose names and arguments are kept, so its checkpoints load strictly).
CiaoSR's attention (ciaosr.py) moves to LR resolution: once per LR pixel it makes the
modulations of a render MLP (models/modulated.py), which is all a query runs.

Once per LR pixel p (the latent stage), U = the 3x3 unfold of the features (9C), N = the
non-local features (cross_scale.py):
  for the four neighbours (vy, vx) in LIIF's order: key_j = U viewed as (3, 3, C) -- not U's
  own channel order -- sliced [t:t+2, l:l+2] with t = (vx + 1) / 2 (the column shift) and
  l = (vy + 1) / 2: a fixed choice of 4C channels, not a spatial window; value_j = [key_j || N_p];
  rel_j = (-vy / h, -vx / w) (LMF computes the neighbour at a 1/h^2 shift; tiny constants);
      k_j = key_j * imnet_k([key_j || rel_j || cell']), v_j = value_j * imnet_v([value_j || rel_j || cell'])
      z = sum_j softmax_j(prenet_q(U) . k_j / softmax_scale) v_j;   M_p = hypernet_q(z)
  with cell' the hypernet cell (the official rule: the first h*w queries' cells) * (h, w);
  M_p = [scales (8 x 16) | shifts (8 x 16) | render latent (32)].
Per query, as LM-LIIF: the render MLP on [latent || (x - centre) * (h, w)] (no cell input),
members blended by area, then the bilinear LR input added: only in the eval forward (official:
LMF trains, and calibrates CMSR, on the path without it).
"""
import torch
import torch.nn.functional as F

from utils.coords import coord_seq
from .cross_scale import CrossScaleAttention, nonlocal_features
from .local_ensemble import ensemble_shifts, grid_rows, grid_size, plain_ensemble, sample_nearest
from .models import make, register
from .modulated import LatentModulated


LATENT_PIXELS = 16384  # LR pixels per latent-stage call: its activations (~6,000 values a pixel) stay bounded


@register('lmciaosr')
class LMCiaoSR(LatentModulated):
    calibration_top = 0.5  # the official calibration tries strengths 0 .. 0.5 for LM-CiaoSR
    local_ensemble = True

    def __init__(self, encoder, prenet_q, hypernet_q, imnet_q, imnet_k, imnet_v, local_size=2, feat_unfold=True,
                 non_local_attn=True, multi_scale=(2,), softmax_scale=1, mod_input=True, cmsr_spec=None):
        super().__init__(encoder, cmsr_spec)
        if not (feat_unfold and non_local_attn and mod_input and local_size == 2):
            raise NotImplementedError("lmciaosr: only the official configuration (feat_unfold, non_local_attn, "
                                      "mod_input, local_size 2) runs")
        self.softmax_scale = softmax_scale
        C = self.encoder.out_dim
        self.key_dim, self.value_dim = 4 * C, 4 * C + C * len(multi_scale)
        self.cs_attn = CrossScaleAttention(C, scale=multi_scale)
        self.imnet_k = make(imnet_k, args={'in_dim': self.key_dim + 4, 'out_dim': self.key_dim})
        self.imnet_v = make(imnet_v, args={'in_dim': self.value_dim + 4, 'out_dim': self.value_dim})
        self.latent_dim = 2 * imnet_q['args']['hidden_dim']
        render = make(imnet_q, args={'in_dim': self.latent_dim + 2, 'mod_up_merge': False})
        self.hypernet_q = make(hypernet_q, args={'in_dim': self.value_dim, 'out_dim': render.mod_dim + self.latent_dim})
        self.prenet_q = make(prenet_q, args={'in_dim': 9 * C, 'out_dim': self.key_dim})
        self.imnet_q = render

    @property
    def imnet(self):  # the render MLP, under the name the latent-modulated base reads
        return self.imnet_q

    @property
    def adds_lr_skip(self):  # the official eval forward's, but not its training path's nor its calibration's
        return not self.training and not self.calibrating

    @property
    def receptive_radius(self):
        return None  # the non-local features see the whole map

    def gen_feat(self, inp, crop=None):
        feat = super().gen_feat(inp, crop)
        self.nonlocal_feat = nonlocal_features(self.cs_attn, feat)
        return feat

    def hypernet_rows(self, hyper_cell):
        B, _, h, w = self.feat.shape
        rel_cell = (hyper_cell * grid_size(self.crop.full_h, self.crop.full_w, hyper_cell)).expand(B, h * w, 2)
        band = max(1, LATENT_PIXELS // (B * w))
        return torch.cat([self.latent_stage(r0, min(r0 + band, h), rel_cell[:, r0 * w:(r0 + band) * w])
                          for r0 in range(0, h, band)], dim=1).view(B * h * w, -1)

    def latent_stage(self, r0, r1, rel_cell):
        """hypernet_q's output for the LR pixels of rows r0 .. r1 - 1 (B, (r1 - r0) w, D)."""
        B, C, h, w = self.feat.shape
        top, bottom = max(r0 - 1, 0), min(r1 + 1, h)  # the 3x3 unfold's context rows
        unfold = F.unfold(self.feat[..., top:bottom, :], 3, padding=1).view(B, 9 * C, bottom - top, w)
        unfold = unfold[:, :, r0 - top:r1 - top].permute(0, 2, 3, 1).reshape(-1, 9 * C)
        nonlocal_rows = grid_rows(self.nonlocal_feat[..., r0:r1, :])
        rel_cell = rel_cell.reshape(-1, 2)
        q = self.prenet_q(unfold)
        # the neighbour's offset as LMF computes it: (centre - (centre + v / n^2)) * n, in float32
        ys, xs = coord_seq(h, device=self.feat.device)[r0:r1], coord_seq(w, device=self.feat.device)
        keys, values, w_k, w_v = [], [], [], []
        for vy, vx in ensemble_shifts(True)[0]:
            t, l = (vx + 1) // 2, (vy + 1) // 2
            start = 3 * C * t + C * l
            keys.append(torch.cat([unfold[:, start:start + 2 * C], unfold[:, start + 3 * C:start + 5 * C]], dim=-1))
            values.append(torch.cat([keys[-1], nonlocal_rows], dim=-1))
            rel = torch.stack(torch.meshgrid((ys - (ys + vy / h / h)) * h, (xs - (xs + vx / w / w)) * w,
                                             indexing='ij'), dim=-1).view(1, -1, 2).expand(B, -1, -1).reshape(-1, 2)
            w_k.append(self.imnet_k(torch.cat([keys[-1], rel, rel_cell], dim=-1)))
            w_v.append(self.imnet_v(torch.cat([values[-1], rel, rel_cell], dim=-1)))
        keys, values = torch.stack(keys), torch.stack(values)
        weights = ((q * keys * torch.stack(w_k)).sum(-1) / self.softmax_scale).softmax(0)
        return self.hypernet_q((weights.unsqueeze(-1) * values * torch.stack(w_v)).sum(0)).view(B, (r1 - r0) * w, -1)

    def query_rgb_plain(self, coord, cell):
        """The render as the equations: grid_sample of the modulation map per member, blend."""
        h, w = self.feat.shape[-2:]
        mod_map, mod_dim = self.gen_modulations(cell), self.imnet.mod_dim

        def predict(near, rel):
            m = sample_nearest(mod_map, near)
            return self.imnet(torch.cat([m[..., mod_dim:], rel], dim=-1), m[..., :mod_dim])
        return plain_ensemble(coord, h, w, True, predict)
