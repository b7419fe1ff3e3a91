"""The LIIF decoder network: Linear/ReLU layers, keys `layers.0, layers.2, ...`."""
import torch.nn as nn

from .models import register


@register('mlp')
class MLP(nn.Module):
    def __init__(self, in_dim, out_dim, hidden_list):
        super().__init__()
        layers = []
        last = in_dim
        for hidden in hidden_list:
            layers += [nn.Linear(last, hidden), nn.ReLU(inplace=True)]  # in place: no parameters, same keys
            last = hidden
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    @property
    def first(self):
        """The first Linear: decoders whose input starts with per-LR-pixel features run its
        feature part once per LR pixel."""
        return self.layers[0]

    def after_first(self, x):
        """The layers after `first` (its ReLU included) on (N, hidden) rows."""
        return self.layers[1:](x)

    def forward(self, x):
        shape = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*shape, -1)
