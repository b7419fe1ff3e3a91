"""Optional speed-ups of the training step (README.md, Training): channels_last (NHWC convolutions;
the fast decoder's latent rows are then a free view), compile (torch.compile of the model) and
cuda_graphs (the compiled step replayed as CUDA graphs; needs the fixed shapes training batches have).
A switch this machine cannot provide is turned off with a note, never an error, so one config runs
everywhere."""
import os
import shutil
from dataclasses import dataclass, field

import torch

from .config import ConfigError

SWITCHES = {'channels_last': 'auto', 'compile': False, 'cuda_graphs': False}


def switch(cfg, key):
    value = cfg.get(key, SWITCHES[key])
    allowed = ('auto', True, False) if SWITCHES[key] == 'auto' else (True, False)
    if value not in allowed:
        raise ConfigError(f"{key} {value!r}: expected {', '.join(str(a).lower() for a in allowed)}")
    return value


def compile_unsupported(device):
    """Why torch.compile cannot run on `device` here, or None."""
    if not torch._dynamo.is_dynamo_supported():
        return 'torch.compile is not supported by this Python or platform'
    if device.type == 'cpu' and not any(shutil.which(c) for c in (os.environ.get('CXX', ''), 'g++', 'clang++') if c):
        return 'no C++ compiler found for CPU kernels'
    return None


@dataclass
class SpeedUps:
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    notes: list = field(default_factory=list)  # switches turned off here, and why

    @classmethod
    def from_config(cls, cfg, device):
        channels_last, compile_, cuda_graphs = (switch(cfg, k) for k in SWITCHES)
        notes = []
        if cuda_graphs and device.type != 'cuda':
            notes.append(f'cuda_graphs: off (needs a CUDA device, training on {device.type})')
            cuda_graphs = False
        compile_ = compile_ or cuda_graphs
        why = compile_unsupported(device) if compile_ else None
        if why:
            notes.append(f'compile{" and cuda_graphs" if cuda_graphs else ""}: off ({why})')
            compile_ = cuda_graphs = False
        return cls(channels_last is True or (channels_last == 'auto' and device.type == 'cuda'),
                   compile_, cuda_graphs, notes)

    def describe(self):
        return ', '.join(k for k in SWITCHES if getattr(self, k)) or 'none'

    def prepare(self, model):
        """The model in the chosen memory layout (before optimizers and EMA copies are made)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def wrap(self, model):
        """The callable the training step runs: the model itself, or its compiled form (which
        shares its parameters, so checkpoints keep saving the plain module)."""
        if not self.compile:
            return model
        return torch.compile(model, mode='reduce-overhead' if self.cuda_graphs else None)

    def batch_input(self, inp):
        return inp.contiguous(memory_format=torch.channels_last) if self.channels_last else inp

    def step_begin(self):
        """Mark a new iteration, so CUDA-graph outputs of the last one may be overwritten."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()


def compile_decoder(model, device):
    """test.py's and demo.py's --compile: the model's queries run through torch.compile (the
    encoder runs once per tile and stays eager). Returns why it is off, or None when on."""
    why = compile_unsupported(device)
    if why:
        return f'--compile: off ({why})'
    model.compile_decoder()
    return None
