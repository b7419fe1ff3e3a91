"""LM-LIIF (models/lmliif.py, lmmlp.py) against the equations written out here, on random weights
(the official dump is checked in tests/test_lm_official.py)."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import models
from reference import ensemble, max_diff, mlp, modulated_render, nearest

TOL = 1e-5


pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: a second thread only adds contention

def small_spec(local_ensemble=True, feat_unfold=True):
    return {'name': 'lmliif', 'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True, 'n_resblocks': 1, 'n_feats': 8}},
        'imnet_spec': {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': 16, 'hidden_depth': 4,
                                                 'mod_scale': True, 'mod_shift': True}},
        'hypernet_spec': {'name': 'mlp', 'args': {'out_dim': 1, 'hidden_list': [48, 40]}},
        'local_ensemble': local_ensemble, 'feat_unfold': feat_unfold, 'cell_decode': True, 'mod_input': True}}


def equations(model, inp, coord, cell):
    """LM-LIIF as LMF.md writes it: hypernet per LR pixel on [unfolded feat || cell of query p
    (official rule) * (h, w)], then per member nearest modulations, render MLP, area blend."""
    feat = model.encoder(inp)
    B, C, h, w = feat.shape
    rich = F.unfold(feat, 3, padding=1) if model.feat_unfold else feat.flatten(2)
    size = torch.tensor([h, w], dtype=torch.float32)
    hyper = [m for m in model.hypernet.layers if isinstance(m, torch.nn.Linear)]
    mod_map = mlp(hyper, torch.cat([rich.transpose(1, 2), cell[:, :h * w] * size], dim=-1)).transpose(1, 2)
    mod_map = mod_map.reshape(B, -1, h, w)

    def predict(c, rel):
        m = nearest(mod_map, c)
        latent = m[..., model.imnet.mod_dim:]
        return modulated_render(model.imnet, torch.cat([latent, rel, cell * size], dim=-1), m)
    return ensemble(coord, h, w, predict, model.local_ensemble)


def random_queries(B, Q, gen):
    corners = torch.tensor(list(itertools.product([-1.0, 1.0, 0.0], repeat=2)))
    coord = torch.cat([corners.expand(B, -1, -1), torch.rand(B, Q - len(corners), 2, generator=gen) * 2 - 1], dim=1)
    return coord


@pytest.mark.parametrize('local_ensemble, feat_unfold', list(itertools.product([True, False], repeat=2)))
@torch.no_grad()
def test_fast_and_plain_decoders_equal_the_equations(local_ensemble, feat_unfold):
    gen = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    model = models.make(small_spec(local_ensemble, feat_unfold)).eval()
    inp = torch.rand(2, 3, 7, 9, generator=gen) * 2 - 1
    coord = random_queries(2, 150, gen)
    per_image = torch.tensor([[2 / 20, 2 / 31], [2 / 9, 2 / 15]]).unsqueeze(1)
    cells = {'uniform per image': per_image.expand(2, 150, 2),
             'non-uniform (official per-pixel rule)': torch.rand(2, 150, 2, generator=gen) * 0.4}
    for what, cell in cells.items():
        expected = equations(model, inp, coord, cell)
        assert expected.abs().max() > 1e-2
        for decoder in ('fast', 'plain'):
            model.decoder = decoder
            assert max_diff(model(inp, coord, cell), expected) < TOL, (what, decoder)
            assert max_diff(model(inp, coord, cell, bsize=40), expected) < TOL, (what, decoder)


def test_unsupported_variants_are_refused():
    spec = small_spec()
    spec['args']['mod_input'] = False
    with pytest.raises(NotImplementedError, match='mod_input'):
        models.make(spec)
    model = models.make(small_spec())
    model.gen_feat(torch.rand(1, 3, 7, 9))
    with pytest.raises(ValueError, match='non-uniform'):
        model.query_rgb(torch.zeros(1, 10, 2), torch.rand(1, 10, 2))
