"""LM-LIIF: LIIF with a latent-modulated render MLP (LMF, He and Jin, CVPR 2024; models/modulated.py),
with the official names and arguments (its checkpoints load strictly).
  once per LR pixel p: M_p = hypernet([3x3 neighbourhood of feat at p (9C) || cell * (h, w)])
                           = [scales s_0..s_5 (96) | shifts t_0..t_5 (96) | latent z (16)]
  per query x and member p: render([z_p || (x - centre_p) * (h, w) || cell * (h, w)], s_p, t_p)
So the 576 feature inputs are read at LR resolution, and a query runs a 20 -> 16 x 6 -> 3 MLP.
The fast form computes the hypernet's first layer as a 3x3 convolution plus a cell term.
"""
import torch
import torch.nn.functional as F

from .local_ensemble import grid_size, lr_conv, plain_ensemble, sample_nearest
from .models import make, register
from .modulated import LatentModulated


@register('lmliif')
class LMLIIF(LatentModulated):
    def __init__(self, encoder_spec, imnet_spec=None, hypernet_spec=None, local_ensemble=True,
                 feat_unfold=True, cell_decode=True, mod_input=False, cmsr_spec=None):
        super().__init__(encoder_spec, cmsr_spec)
        if imnet_spec is None or hypernet_spec is None:
            raise ValueError("lmliif needs an imnet_spec (lmmlp) and a hypernet_spec (mlp)")
        # Variants the official configs never use are refused rather than guessed.
        if not mod_input:
            raise NotImplementedError("lmliif: only mod_input=True (the render MLP reads the latent "
                                      "code made by the hypernet) is implemented")
        if not cell_decode:
            raise NotImplementedError("lmliif: only cell_decode=True is implemented")
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.latent_dim = imnet_spec['args']['hidden_dim']
        imnet = make(imnet_spec, args={'in_dim': self.latent_dim + 2 + 2, 'mod_up_merge': False})
        self.feat_dim = self.encoder.out_dim * (9 if feat_unfold else 1)
        # constructed before imnet so that the state dict lists encoder, hypernet, imnet as officially
        self.hypernet = make(hypernet_spec, args={'in_dim': self.feat_dim + 2,
                                                  'out_dim': imnet.mod_dim + self.latent_dim})
        self.imnet = imnet

    def hypernet_rows(self, hyper_cell):
        # the first layer's feature term is a convolution over feat, then the cell term
        first = self.hypernet.first
        pre = lr_conv(self.feat, first.weight[:, :self.feat_dim], first.bias, 3 if self.feat_unfold else 1)
        B, _, h, w = self.feat.shape
        cell_term = F.linear(hyper_cell * grid_size(self.crop.full_h, self.crop.full_w, hyper_cell),
                             first.weight[:, self.feat_dim:])  # (B, 1 or hw, D)
        pre = pre.view(B, h * w, -1) + cell_term.to(pre.dtype)
        return self.hypernet.after_first(pre.reshape(B * h * w, -1))

    def query_rgb_plain(self, coord, cell):
        """coord, cell: (B, Q, 2) -> (B, Q, 3), written as the equations: unfold, hypernet on the
        unfolded features, grid_sample of the modulation map, render MLP per member."""
        B, C, h, w = self.feat.shape
        size = grid_size(h, w, coord)
        rich = F.unfold(self.feat, 3, padding=1) if self.feat_unfold else self.feat.view(B, C, h * w)
        hyper_in = torch.cat([rich.permute(0, 2, 1), (self.hypernet_cell(cell) * size).expand(B, h * w, 2)], dim=-1)
        mod_map = self.hypernet(hyper_in).permute(0, 2, 1).reshape(B, -1, h, w)
        mod_dim = self.imnet.mod_dim

        def predict(near, rel):
            m = sample_nearest(mod_map, near)
            return self.imnet(torch.cat([m[..., mod_dim:], rel, cell * size], dim=-1), m[..., :mod_dim])
        return plain_ensemble(coord, h, w, self.local_ensemble, predict)
