"""LMF's render MLP (`lmmlp`): an MLP whose hidden layers are modulated per query. Layer l
computes ReLU((W_l a + b_l) * (1 + s_l) + t_l), the scales s_l and shifts t_l coming from the
hypernetwork's modulation vector in the official layout: all scales first, layer l's at
[l * hidden_dim, (l + 1) * hidden_dim), then all shifts in the same order. The output layer is a
plain Linear. Names are the official ones (`layers.0, layers.2, ...`, an MLP's), so LMF's
checkpoints load strictly.
"""
from .mlp import MLP
from .models import register


@register('lmmlp')
class LMMLP(MLP):
    def __init__(self, in_dim, out_dim, hidden_dim, hidden_depth, mod_scale=True, mod_shift=True,
                 mod_up_merge=False):
        if not (mod_scale and mod_shift) or mod_up_merge:  # the official models': others are refused, not guessed
            raise NotImplementedError("lmmlp: only mod_scale=True, mod_shift=True and mod_up_merge=False are "
                                      "implemented")
        super().__init__(in_dim, out_dim, [hidden_dim] * hidden_depth)
        self.hidden_dim, self.hidden_depth = hidden_dim, hidden_depth
        self.mod_dim = 2 * hidden_depth * hidden_dim

    @property
    def hidden(self):
        """The modulated Linears, layer 0 first."""
        return [self.layers[2 * l] for l in range(self.hidden_depth)]

    @property
    def output(self):
        return self.layers[-1]

    def split_mods(self, mod):
        """(..., mod_dim) -> (scales, shifts), each (..., hidden_depth, hidden_dim)."""
        return mod.unflatten(-1, (2, self.hidden_depth, self.hidden_dim)).unbind(-3)

    def forward(self, x, mod):
        """x: (..., in_dim), mod: (..., mod_dim) -> (..., out_dim). The equations as written."""
        scales, shifts = self.split_mods(mod)
        for l, linear in enumerate(self.hidden):
            x = (linear(x) * (1 + scales[..., l, :]) + shifts[..., l, :]).relu()
        return self.output(x)
