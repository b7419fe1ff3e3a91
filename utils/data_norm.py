"""The config's `data_norm` ({inp: {sub, div}, gt: {sub, div}}; sub 0 / div 1 where absent, as the official
train_liif.py and test.py default), made into tensors once per run rather than once per batch. (The official
checkpoints were trained with 0.5 / 0.5 and do not record it; see `models.checkpoint.load_model`.)"""
import torch

from .config import ConfigError


class DataNorm:
    def __init__(self, data_norm, device):
        self.spec = data_norm or {}

        def stats(key, shape):
            part = self.spec.get(key) or {}
            return tuple(torch.tensor(part.get(k, [default]), device=device).view(shape)
                         for k, default in (('sub', 0.0), ('div', 1.0)))
        self.inp_sub, self.inp_div = stats('inp', (1, -1, 1, 1))
        self.gt_sub, self.gt_div = stats('gt', (1, 1, -1))

    def normalise(self, batch):
        """(inp, gt) of a sample batch, as the model sees them."""
        return (batch['inp'] - self.inp_sub) / self.inp_div, (batch['gt'] - self.gt_sub) / self.gt_div

    def to_rgb(self, pred):
        """Model output (B, Q, 3) back to colours in [0, 1] (clamped)."""
        return (pred.float() * self.gt_div + self.gt_sub).clamp_(0, 1)

    def effective(self):
        """The data_norm dict in use, defaults filled in (what a checkpoint records)."""
        values = [t.flatten().tolist() for t in (self.inp_sub, self.inp_div, self.gt_sub, self.gt_div)]
        return {'inp': {'sub': values[0], 'div': values[1]}, 'gt': {'sub': values[2], 'div': values[3]}}

    def scalars(self):
        """(sub, div) for whole-image upscaling, which needs them shared by input and target: numbers,
        or per-channel tuples (a CiaoSR-repository checkpoint subtracts the mean colour)."""
        inp, gt = self.effective().values()
        if any(len(v) not in (1, 3) for v in [*inp.values(), *gt.values()]) or inp != gt:
            raise ConfigError(f"data_norm {self.spec}: whole-image evaluation needs the same sub and div (one value or "
                              f"three) for inp and gt")
        return tuple(v[0] if len(v) == 1 else tuple(v) for v in inp.values())


def normalise(img, norm):
    """img (..., C, h, w) normalised by norm = (sub, div), each a number or per-channel values."""
    sub, div = (torch.as_tensor(v, dtype=img.dtype, device=img.device).view(-1, 1, 1) for v in norm)
    return (img - sub) / div
