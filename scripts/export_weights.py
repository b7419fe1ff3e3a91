"""Write the weights of a training checkpoint alone, in the official format, for shipping.

    python scripts/export_weights.py save/my-run/epoch-last.pth save/pretrained/my-model.pth [--half] [--no-ema]

The output holds {'model': {'name', 'args', 'sd'}} (and the run's `data_norm`, which demo.py and
test.py then use, when the checkpoint records it) only: no optimizer, scheduler or random
states (an EDSR-baseline-LIIF is 6.3 MB in float32). The EMA weights are taken when the run kept
them, as `demo.py` and `test.py` would use them; `--no-ema` takes the trained ones. `--half`
stores float16 (loading casts back to float32; check the PSNR it costs with test.py).
Contiguous tensors are written whatever layout training used (channels-last). An existing
output is never replaced unless --overwrite; the file is written atomically.
Bad input gives one line `export_weights.py: error: ...` and exit code 2.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root, so utils/ imports from anywhere

import torch

from models.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint, model_from_spec
from utils.errors import UserError


def export(src, dst, half=False, ema=True):
    """Write `src`'s model weights to `dst`; returns (bytes written, whether EMA weights were used)."""
    ckpt = load_checkpoint(src)
    spec = ckpt['model']
    use_ema = ema and isinstance(ckpt.get('ema'), dict) and 'sd' in ckpt['ema']
    sd = ckpt['ema']['sd'] if use_ema else spec['sd']
    model_from_spec(dict(spec, sd=sd), source=src)  # the weights must load into their model
    dtype = torch.float16 if half else None
    sd = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).contiguous().clone() for k, v in sd.items()}
    out = {'model': {'name': spec['name'], 'args': spec.get('args') or {}, 'sd': sd}}
    if ckpt.get('data_norm'):
        out['data_norm'] = ckpt['data_norm']
    atomic_torch_save(out, dst)
    return os.path.getsize(dst), use_ema


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint', help='a checkpoint written by train.py (or any official-format one)')
    p.add_argument('output', help='the weights file to write')
    p.add_argument('--half', action='store_true', help='store float16 weights')
    p.add_argument('--no-ema', action='store_true', help='the trained weights, not their EMA')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output')
    args = p.parse_args()
    try:
        if os.path.exists(args.output) and not args.overwrite:
            raise CheckpointError(f"{args.output} already exists (--overwrite replaces it; nothing was changed)")
        size, used_ema = export(args.checkpoint, args.output, half=args.half, ema=not args.no_ema)
    except (UserError, OSError) as e:
        print(f"export_weights.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"{args.output}: {size / 1e6:.2f} MB, {'EMA' if used_ema else 'trained'} weights"
          f"{' in float16' if args.half else ''}")


if __name__ == '__main__':
    main()
