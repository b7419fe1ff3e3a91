"""Exponential moving average of a model's weights (evaluated and saved beside the model)."""
import copy

import torch

from .config import ConfigError


class EMA:
    def __init__(self, model, decay):
        if not 0 < decay < 1:
            raise ConfigError(f"ema.decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        """ema <- decay * ema + (1 - decay) * weights, for every parameter; buffers are copied."""
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self):
        return {'decay': self.decay, 'sd': self.model.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state['sd'])
