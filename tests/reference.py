"""The official code's dumps in ../shared/reference/<name>/ (seeded weights, inputs, outputs;
a README.txt each): loading them, and the model they were made with. Tests that use one skip
cleanly where it is absent (`shared.need`)."""
import functools
import json
import math
import os

import torch
import torch.nn.functional as F

import models
from models.cmsr import CMSR
from utils.coords import make_coord
from shared import SHARED, need


class Dump:
    def __init__(self, name):
        self.dir = os.path.join(SHARED, 'reference', name)

    def __call__(self, file):
        """The tensor (or dict of tensors) in `file`."""
        return torch.load(need(os.path.join(self.dir, file)), weights_only=True)

    def json(self, file):
        with open(need(os.path.join(self.dir, file))) as f:
            return json.load(f)

    def spec(self, **args):
        """The official model spec (spec.json), with `args` added."""
        spec = self.json('spec.json')
        spec['args'].update(args)
        return spec

    def model(self, **args):
        """The dump's model: built from its spec, its weights loaded strictly, in eval mode."""
        model = models.make(self.spec(**args))
        model.load_state_dict(self('sd.pt'), strict=True)
        return model.eval()

    def cmsr_tables(self, which):
        """A CMSR table of info.json ('shipped' or 'synthetic'), with numbers as keys (JSON's are strings)."""
        tables = self.json('info.json')['cmsr_tables']
        key = next(k for k in tables if k.startswith(which))
        return {float(s): {float(d): t for d, t in table.items()} for s, table in tables[key].items()}


@functools.lru_cache(maxsize=8)
def dump_model(name):
    """The dump's model, built and loaded once per process (tests reset what they change)."""
    return Dump(name).model()


def official_model(name, decoder='fast', s2m=None):
    """The dump's model with the given form, in eval mode, and CMSR from the official `cmsr_spec`
    with the Scale2Mod table `s2m` (on the official level grids) if given."""
    model = dump_model(name)
    model.decoder = decoder
    model.cmsr = CMSR.from_spec({'mse_threshold': 2e-5, 's2m_tables': s2m, 'log': True}, official_grid=True) \
        if s2m else None
    return model.eval()


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


# --- the official formulation, written from LMF.md and LTE.md for the equation-level tests ---------

def nearest(grid, coord):
    """grid (B, C, h, w) at coord (B, Q, 2) by grid_sample 'nearest' (the official lookups): (B, Q, C)."""
    return F.grid_sample(grid, coord.flip(-1).unsqueeze(1), mode='nearest', align_corners=False)[:, :, 0].transpose(1, 2)


def members(coord, h, w, local_ensemble=True):
    """For each local-ensemble member: (the nudged query it looks up with, the query's offset from
    that LR pixel's centre in LR pixels), on an h x w grid."""
    lr_coord = make_coord((h, w), flatten=False).permute(2, 0, 1).unsqueeze(0).expand(coord.shape[0], 2, h, w)
    size = torch.tensor([h, w], dtype=coord.dtype)
    for vy, vx in [(-1, -1), (-1, 1), (1, -1), (1, 1)] if local_ensemble else [(0, 0)]:
        eps = 1e-6 if local_ensemble else 0
        c = coord.clone()
        c[..., 0] += vy / h + eps
        c[..., 1] += vx / w + eps
        c = c.clamp(-1 + 1e-6, 1 - 1e-6)
        yield c, (coord - nearest(lr_coord, c)) * size


def ensemble(coord, h, w, predict, local_ensemble=True):
    """The local ensemble: predict(nudged query, offset) for each member, the outputs weighted by
    the area of the diagonally opposite member's rectangle."""
    preds, rels = zip(*[(predict(c, rel), rel) for c, rel in members(coord, h, w, local_ensemble)])
    if len(preds) == 1:
        return preds[0]
    areas = [(rel[..., 0] * rel[..., 1]).abs() + 1e-9 for rel in rels]
    return sum(p * (a / sum(areas)).unsqueeze(-1) for p, a in zip(preds, areas[::-1]))


def mlp(linears, x):
    """Linear layers with ReLUs between them."""
    for i, lin in enumerate(linears):
        x = x @ lin.weight.t() + lin.bias
        x = x.relu() if i < len(linears) - 1 else x
    return x


def modulated_render(imnet, x, m):
    """LMF's render MLP on x with the modulation vector m: [scales (depth x hd) | shifts | ...]."""
    hd, depth = imnet.hidden_dim, imnet.hidden_depth
    for l in range(depth):
        lin = imnet.layers[2 * l]
        x = ((x @ lin.weight.t() + lin.bias) * (1 + m[..., l * hd:(l + 1) * hd])
             + m[..., (depth + l) * hd:(depth + l + 1) * hd]).relu()
    return x @ imnet.layers[-1].weight.t() + imnet.layers[-1].bias


def bilinear_skip(inp, coord):
    """LTE's skip: the LR input sampled bilinearly at coord (border padding)."""
    return F.grid_sample(inp, coord.flip(-1).unsqueeze(1), mode='bilinear', padding_mode='border',
                         align_corners=False)[:, :, 0].transpose(1, 2)


def lte_basis(coef, freq, dy, dx, phase):
    """LTE's input coef * [cos(pi f) || sin(pi f)], f_k = freq[2k] dy + freq[2k+1] dx + phase_k."""
    f = torch.stack([freq[..., 2 * k] * dy + freq[..., 2 * k + 1] * dx for k in range(freq.shape[-1] // 2)], -1)
    f = math.pi * (f + phase)
    return coef * torch.cat([torch.cos(f), torch.sin(f)], dim=-1)
