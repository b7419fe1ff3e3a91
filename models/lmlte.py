"""LM-LTE: LTE with a latent-modulated render MLP (LMF, He and Jin, CVPR 2024; models/modulated.py,
LTE's front end in lte.py), with the official names and arguments (checkpoints load strictly).
  once per LR pixel p (LTE's basis at delta = (1, 1): each frequency pair summed):
      g_k = freq_p[2k] + freq_p[2k+1] + phase(cell * (h, w))_k
      M_p = hypernet(coef_p * [cos(pi g) || sin(pi g)])
          = [scales s_0..s_7 (128) | shifts t_0..t_7 (128) | render coef c (16) | render freq F (16)]
  per query x and member p, delta = (x - centre_p) * (h, w), r = cell * (h, w):
      f_k = F_p[2k] delta_row + F_p[2k+1] delta_col + imphase(r)_k     (k < 8)
      out = render(c_p * [cos(pi f) || sin(pi f)], s_p, t_p), blended by area, + the LR skip.
"""
import torch.nn as nn
import torch.nn.functional as F

from .local_ensemble import grid_size, plain_ensemble, sample_nearest
from .lte import TextureEstimator, fourier
from .models import make, register
from .modulated import LatentModulated


@register('lmlte')
class LMLTE(TextureEstimator, LatentModulated):
    calibration_top = 0.5  # the official calibration tries strengths 0 .. 0.5 for LM-LTE
    folds_first_bias = True

    def __init__(self, encoder_spec, imnet_spec=None, hypernet_spec=None, hidden_dim=128, local_ensemble=True,
                 cell_decode=True, mod_input=False, cmsr_spec=None):
        super().__init__(encoder_spec, cmsr_spec)
        if imnet_spec is None or hypernet_spec is None:
            raise ValueError("lmlte needs an imnet_spec (lmmlp) and a hypernet_spec (mlp)")
        if not (mod_input and cell_decode):  # undocumented officially: refused rather than guessed
            raise NotImplementedError("lmlte: only mod_input=True and cell_decode=True are implemented")
        self.local_ensemble = local_ensemble
        self.build_texture(hidden_dim)
        self.render_dim = imnet_spec['args']['hidden_dim']
        imnet = make(imnet_spec, args={'in_dim': self.render_dim, 'mod_up_merge': False})
        self.hypernet = make(hypernet_spec, args={'in_dim': hidden_dim, 'out_dim': imnet.mod_dim + 2 * self.render_dim})
        self.imphase = nn.Linear(2, self.render_dim // 2, bias=False)
        self.imnet = imnet

    def hypernet_input(self, coef, freq, rel_cell):
        """The hypernetwork's input from coef, freq (..., hidden) and the relative cell."""
        return fourier(coef, freq, 1, 1, self.phase(rel_cell))

    def hypernet_rows(self, hyper_cell):
        B = self.feat.shape[0]
        coef, freq = self.texture_rows().view(B, -1, 2 * self.coef.out_channels).chunk(2, dim=-1)
        rel_cell = hyper_cell * grid_size(self.crop.full_h, self.crop.full_w, hyper_cell)
        x = self.hypernet_input(coef, freq, rel_cell.to(coef.dtype))
        return self.hypernet(x.reshape(-1, x.shape[-1]))

    def render_inputs(self, mods):
        return mods[:, self.imnet.mod_dim:]  # the render coef and freq

    def render_first_layer(self, inputs, dy, dx, rel_cell):
        coef, freq = inputs.split(self.render_dim, dim=-1)
        return F.linear(fourier(coef, freq, dy, dx, self.imphase(rel_cell)), self.imnet.hidden[0].weight)

    def query_rgb_plain(self, coord, cell):
        """The equations as written: hypernet on the coef/freq maps, grid_sample of the
        modulation map, render MLP per member, blend (the LR skip is added by the base)."""
        B, _, h, w = self.feat.shape
        size = grid_size(h, w, coord)
        hyper_cell = self.hypernet_cell(cell)
        x = self.hypernet_input(self.coef(self.feat).permute(0, 2, 3, 1), self.freq(self.feat).permute(0, 2, 3, 1),
                                (hyper_cell * size).view(B, -1, 1, 2) if hyper_cell.shape[1] == 1
                                else (hyper_cell * size).view(B, h, w, 2))
        mod_map = self.hypernet(x).permute(0, 3, 1, 2)
        mod_dim, rd = self.imnet.mod_dim, self.render_dim

        def predict(near, rel):
            m = sample_nearest(mod_map, near)
            x = fourier(m[..., mod_dim:mod_dim + rd], m[..., mod_dim + rd:], rel[..., :1], rel[..., 1:],
                        self.imphase(cell * size))
            return self.imnet(x, m[..., :mod_dim])
        return plain_ensemble(coord, h, w, self.local_ensemble, predict)
