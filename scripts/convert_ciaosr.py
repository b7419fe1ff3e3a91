"""Convert a checkpoint of the CiaoSR repository (caojiezhang/CiaoSR, mmediting: a restorer whose
`generator.` holds the network) with the EDSR encoder into this project's format, LMF's names:

    python scripts/convert_ciaosr.py ciaosr_edsr_div2k.pth save/pretrained/edsr-baseline-ciaosr.pth

The key map (the networks are the same function for the same weights; the CiaoSR repository
computes the non-local features on the whole map, LMF's port on 48 x 48 tiles beyond 2,304 LR
pixels, which this project follows):
    generator.<prefix>conv_first.*        -> encoder.head.0.*
    generator.<prefix>body.<i>.conv1.*    -> encoder.body.<i>.body.0.*
    generator.<prefix>body.<i>.conv2.*    -> encoder.body.<i>.body.2.*
    generator.<prefix>conv_after_body.*   -> encoder.body.<n_resblocks>.*
    generator.imnet_{q,k,v}.*, generator.cs_attn.*   unchanged
(<prefix> is `encoder.` where the network keeps its encoder under that name), plus EDSR's
MeanShift buffers, which LMF keeps and never applies. The spec (block count, widths, scales of
the cross-scale attention) is read off the weights. The CiaoSR repository normalises images by
subtracting the DIV2K mean colour (no division); the converted checkpoint records that as its
`data_norm`, which test.py and demo.py then apply.
Bad input gives one line `convert_ciaosr.py: error: ...` and exit code 2.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root, from anywhere

import torch

from models import make
from models.checkpoint import CheckpointError, model_from_spec, save_checkpoint
from utils.errors import UserError, exit_on_user_error

PROG = 'convert_ciaosr.py'
RGB_MEAN = [0.4488, 0.4371, 0.4040]  # the CiaoSR configs' img_norm mean (std 1)
ENCODER_KEYS = [(r'conv_first\.', 'head.0.'), (r'body\.(\d+)\.conv1\.', r'body.\1.body.0.'),
                (r'body\.(\d+)\.conv2\.', r'body.\1.body.2.')]


def mlp_spec(sd, name):
    """The `mlp` spec of LMF's names for the weights of `name` (its hidden widths)."""
    weights = [sd[k] for k in sorted((k for k in sd if re.fullmatch(rf'{name}\.layers\.\d+\.weight', k)),
                                     key=lambda k: int(k.split('.')[2]))]
    return {'name': 'mlp', 'args': {'hidden_list': [w.shape[0] for w in weights[:-1]]}}


def convert(sd):
    """(spec, state dict in LMF's names) from a CiaoSR-repository EDSR network's state dict."""
    sd = {k[len('generator.'):]: v for k, v in sd.items() if k.startswith('generator.')} or dict(sd)
    sd = {k[len('encoder.'):] if re.match(r'encoder\.(conv_first|body|conv_after_body)\.', k) else k: v
          for k, v in sd.items()}
    if 'conv_first.weight' not in sd:
        raise CheckpointError("not a CiaoSR EDSR network: no conv_first.weight (only the EDSR encoder's names are "
                              "mapped; RDN and SwinIR variants are not)")
    n_blocks = len({m.group(1) for k in sd if (m := re.match(r'body\.(\d+)\.conv1\.', k))})
    out = {}
    for key, value in sd.items():
        new = re.sub(r'^conv_after_body\.', f'encoder.body.{n_blocks}.', key)
        for pattern, replacement in ENCODER_KEYS:
            new = re.sub('^' + pattern, 'encoder.' + replacement, new)
        out[new] = value
    scales = [2] + [s for s in (3, 4) if f'cs_attn.downx{s}.weight' in out]
    spec = {'name': 'ciaosr', 'args': {
        'encoder': {'name': 'edsr-baseline', 'args': {'no_upsampling': True, 'n_resblocks': n_blocks,
                                                      'n_feats': out['encoder.head.0.weight'].shape[0]}},
        **{name: mlp_spec(out, name) for name in ('imnet_q', 'imnet_k', 'imnet_v')},
        'local_size': 2, 'feat_unfold': True, 'non_local_attn': 'cs_attn.down.weight' in out,
        'multi_scale': scales, 'softmax_scale': 1}}
    # EDSR's MeanShift convs, which the CiaoSR repository's EDSR has not: those of a new encoder
    shifts = {f'encoder.{k}': v for k, v in make(spec['args']['encoder']).state_dict().items()
              if k.startswith(('sub_mean.', 'add_mean.'))}
    return spec, {**shifts, **out}


def run(args):
    if os.path.exists(args.output) and not args.overwrite:
        raise UserError(f"{args.output} already exists (--overwrite replaces it; nothing was changed)")
    try:
        ckpt = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    except Exception as e:  # a missing, damaged or unsafe file
        raise UserError(f"{args.checkpoint}: not a readable checkpoint ({str(e).splitlines()[0]})") from None
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise UserError(f"{args.checkpoint}: expected a state dict (or {{'state_dict': ...}})")
    try:
        spec, weights = convert(sd)
    except CheckpointError as e:
        raise UserError(f"{args.checkpoint}: {e}") from None
    model = model_from_spec(dict(spec, sd=weights), args.checkpoint)
    norm = {'sub': RGB_MEAN, 'div': [1.0]}
    save_checkpoint(args.output, spec, model, data_norm={'inp': norm, 'gt': norm})
    print(f"wrote {args.output}: ciaosr, EDSR encoder of {spec['args']['encoder']['args']['n_resblocks']} blocks, "
          f"data_norm sub {RGB_MEAN} div 1")


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint', help="a CiaoSR-repository checkpoint (EDSR encoder)")
    p.add_argument('output', help='the checkpoint to write (this project\'s format, LMF\'s names)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output')
    exit_on_user_error(PROG, run, p.parse_args(argv))


if __name__ == '__main__':
    main()
