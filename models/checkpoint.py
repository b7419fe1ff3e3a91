"""Checkpoints in the official LIIF format, {'model': {'name', 'args', 'sd'}, 'optimizer': {...}, 'epoch': n}:
read with `torch.load(weights_only=True)` only, written atomically."""
import inspect
import os
import pickle

import torch

from utils.data_norm import DataNorm
from utils.errors import UserError, first_line, message
from utils.files import atomic_write
from .base import LocalImplicitSR
from .models import make, registry


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message is one line and names the file."""


def strip_module_prefix(sd):
    """Keys saved from a DataParallel / DistributedDataParallel wrapper start with 'module.'."""
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}


def load_checkpoint(path):
    """The checkpoint dict at `path`, checked to hold a model spec with weights."""
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic != b'PK' and magic[:1] != b'\x80':  # torch.save writes a zip file (or, long ago, a pickle)
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (not a torch.save file)")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (it holds objects other than "
                              f"tensors and plain containers, which are not loaded for safety)") from None
    except Exception as e:  # a damaged file can fail anywhere inside the unpickler
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first_line(e)})") from None
    spec = ckpt.get('model') if isinstance(ckpt, dict) else None
    if not (isinstance(spec, dict) and {'name', 'sd'} <= spec.keys() and isinstance(spec['sd'], dict)):
        raise CheckpointError(f"{path}: not a model checkpoint (expected a dict with "
                              f"'model': {{'name', 'args', 'sd'}})")
    return ckpt


def make_model(spec, source):
    """models.make(spec); an unknown model, or an argument a constructor does not take, is a one-line
    error naming `source` and the argument's key."""
    try:
        return make(spec)
    except KeyError as e:
        raise CheckpointError(f"{source}: {e.args[0]}") from None
    except (TypeError, ValueError, RuntimeError) as e:  # a constructor given arguments it cannot use
        found = unknown_arg(spec, 'model') or f"model {spec['name']!r} rejects its args ({first_line(e)})"
        raise CheckpointError(f"{source}: {found}") from None


def unknown_arg(spec, key):
    """'KEY.args.ARG: NAME takes no argument ARG (...)' for the first argument, of `spec` or of a spec in
    its args, that the constructor does not take (None if there is none)."""
    args = spec.get('args') if isinstance(spec.get('args'), dict) else {}
    for arg, value in args.items():
        if isinstance(value, dict) and 'name' in value and (found := unknown_arg(value, f'{key}.args.{arg}')):
            return found
    cls = registry.entries.get(spec['name']) if isinstance(spec['name'], str) else None
    params = inspect.signature(cls).parameters if cls else {}
    bad = [] if any(p.kind == p.VAR_KEYWORD for p in params.values()) else [a for a in args if a not in params]
    return bad and f"{key}.args.{bad[0]}: {spec['name']!r} takes no argument {bad[0]!r} (it takes {', '.join(params)})"


def model_from_spec(spec, source='checkpoint'):
    """Build the model a checkpoint's 'model' entry describes and load its weights strictly."""
    model = make_model({'name': spec['name'], 'args': spec.get('args') or {}}, source)
    sd = strip_module_prefix(spec['sd'])
    missing, unexpected = model.state_dict().keys() - sd.keys(), sd.keys() - model.state_dict().keys()
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not fit model {spec['name']!r}: "
                              f"{len(missing)} missing (e.g. {sorted(missing)[:2]}), "
                              f"{len(unexpected)} unexpected (e.g. {sorted(unexpected)[:2]})")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        mismatch = next((l.strip() for l in str(e).splitlines() if 'size mismatch' in l), first_line(e))
        raise CheckpointError(f"{source}: weights do not fit model {spec['name']!r}: {mismatch}") from None
    return model


def read_init_weights(spec):
    """Config `init_weights: {path: CKPT, modules: [encoder, ...]}`: the weights of those
    submodules in that checkpoint's model, for a new run to start from (e.g. a trained encoder
    under another decoder). Read before the run folder is made."""
    if not (isinstance(spec, dict) and set(spec) == {'path', 'modules'} and isinstance(spec['path'], str)
            and isinstance(spec['modules'], list) and spec['modules']
            and all(isinstance(m, str) and m for m in spec['modules'])):
        raise CheckpointError(f"init_weights {spec!r}: expected {{path: CHECKPOINT, modules: [MODULE, ...]}}")
    sd = strip_module_prefix(load_checkpoint(spec['path'])['model']['sd'])
    prefixes = tuple(m + '.' for m in spec['modules'])
    picked = {k: v for k, v in sd.items() if k.startswith(prefixes)}
    empty = [m for m in spec['modules'] if not any(k.startswith(m + '.') for k in picked)]
    if empty:
        raise CheckpointError(f"init_weights: {spec['path']} has no module {empty[0]!r}")
    return picked


def apply_init_weights(model, weights, path):
    """Copy `weights` (from `read_init_weights`) into `model`; every name and shape must fit."""
    own = model.state_dict()
    for key, value in weights.items():
        if key not in own or own[key].shape != value.shape:
            what = 'not in the model' if key not in own else f'shape {tuple(value.shape)} vs {tuple(own[key].shape)}'
            raise CheckpointError(f"init_weights: {path}: {key} does not fit the model ({what})")
    model.load_state_dict(weights, strict=False)


OFFICIAL_DATA_NORM = (0.5, 0.5)  # what the official checkpoints were trained with; they do not record it


def load_model(path, device='cpu', ema=True, with_data_norm=False):
    """The model of the checkpoint at `path`, in eval mode, on `device` (with `ema`: the run's averaged
    weights, when it kept them); with `with_data_norm`, (model, (sub, div) it was trained with, or
    None for checkpoints that do not record it: the official ones, trained with OFFICIAL_DATA_NORM)."""
    ckpt = load_checkpoint(path)
    spec = ckpt['model']
    if ema and isinstance(ckpt.get('ema'), dict) and 'sd' in ckpt['ema']:
        spec = dict(spec, sd=ckpt['ema']['sd'])
    model = model_from_spec(spec, source=path).to(device).eval()
    if not isinstance(model, LocalImplicitSR):
        raise CheckpointError(f"{path}: holds model {spec['name']!r}, not an arbitrary-scale model "
                              f"(an encoder with a decoder such as liif)")
    if not with_data_norm:
        return model
    try:
        norm = DataNorm(ckpt['data_norm'], 'cpu').scalars() if ckpt.get('data_norm') else None
    except UserError as e:
        raise CheckpointError(f"{path}: its {message(e)}") from None
    return model, norm


def save_checkpoint(path, model_spec, model, optimizer_spec=None, optimizer=None, epoch=None, **extra):
    """Write a checkpoint in the official format atomically. `extra` entries are stored beside."""
    if hasattr(model, 'module'):  # (Distributed)DataParallel
        model = model.module
    ckpt = {'model': {'name': model_spec['name'], 'args': model_spec.get('args') or {}, 'sd': model.state_dict()}}
    if optimizer is not None:
        ckpt['optimizer'] = {'name': optimizer_spec['name'], 'args': optimizer_spec.get('args') or {},
                             'sd': optimizer.state_dict()}
    if epoch is not None:
        ckpt['epoch'] = epoch
    ckpt.update(extra)
    atomic_torch_save(ckpt, path)


def atomic_torch_save(obj, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f))
