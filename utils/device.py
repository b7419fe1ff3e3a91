"""Device and precision choices shared by the command-line tools."""
import contextlib

import torch

from .errors import UserError


class DeviceError(UserError):
    """A device or precision this machine cannot provide; the message is one line."""


def resolve_device(name):
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda' -> torch.device."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise DeviceError("--device cuda: CUDA is not available here (no GPU, or torch built without CUDA)")
    return torch.device(name)


def autocast(device, precision):
    """A context that runs the model in `precision` ('fp32', 'bf16' or 'fp16') on `device`."""
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float16
    if device.type == 'cuda' and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceError("--precision bf16: this GPU does not support bfloat16 (use fp16 or fp32)")
    return torch.autocast(device_type=device.type, dtype=dtype)
