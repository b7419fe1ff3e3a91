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

    def forward(self, x):
        shape = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*shape, -1)
