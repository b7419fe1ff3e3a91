"""LM-LIIF's render MLP: a small MLP whose hidden layers are modulated per query.

Layer l (l = 0 .. hidden_depth-1) computes ReLU((W_l a + b_l) * (1 + s_l) + t_l), where the
scale s_l and shift t_l come from the hypernetwork's modulation vector; the output layer is
a plain Linear. Parameter names follow the official LMF code (`layers.0, layers.2, ...`,
hidden layers at even indices, ReLUs between), so its checkpoints load strictly.

Modulation vector layout (the official one): all scales first, layer l's at
[l*hidden_dim, (l+1)*hidden_dim), then all shifts in the same order. With only one of
mod_scale / mod_shift the other block is absent (by analogy; the official configs turn both on).
"""
import torch.nn as nn

from .models import register


@register('lmmlp')
class LMMLP(nn.Module):
    def __init__(self, in_dim, out_dim, hidden_dim, hidden_depth, mod_scale=True, mod_shift=True,
                 mod_up_merge=False):
        super().__init__()
        if mod_up_merge:
            # the official LM-LIIF always builds its render MLP with mod_up_merge=False
            raise NotImplementedError("lmmlp: mod_up_merge=True is not implemented")
        self.hidden_dim = hidden_dim
        self.hidden_depth = hidden_depth
        self.mod_scale = mod_scale
        self.mod_shift = mod_shift
        self.mod_dim = hidden_depth * hidden_dim * (int(mod_scale) + int(mod_shift))
        layers = []
        last = in_dim
        for _ in range(hidden_depth):
            layers += [nn.Linear(last, hidden_dim), nn.ReLU(inplace=True)]
            last = hidden_dim
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    @property
    def hidden(self):
        """The modulated Linears, layer 0 first."""
        return [self.layers[2 * l] for l in range(self.hidden_depth)]

    @property
    def output(self):
        """The plain output Linear."""
        return self.layers[-1]

    def split_mods(self, mod):
        """(..., mod_dim) -> (scales, shifts), each (..., hidden_depth, hidden_dim) or None."""
        block = self.hidden_depth * self.hidden_dim
        lead = mod.shape[:-1]
        scales = shifts = None
        offset = 0
        if self.mod_scale:
            scales = mod[..., :block].reshape(*lead, self.hidden_depth, self.hidden_dim)
            offset = block
        if self.mod_shift:
            shifts = mod[..., offset:offset + block].reshape(*lead, self.hidden_depth, self.hidden_dim)
        return scales, shifts

    def forward(self, x, mod):
        """x: (..., in_dim), mod: (..., mod_dim) -> (..., out_dim). The equations as written."""
        scales, shifts = self.split_mods(mod)
        a = x
        for l, linear in enumerate(self.hidden):
            a = linear(a)
            if scales is not None:
                a = a * (1 + scales[..., l, :])
            if shifts is not None:
                a = a + shifts[..., l, :]
            a = a.relu()
        return self.output(a)
