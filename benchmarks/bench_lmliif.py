"""Benchmark of LM-LIIF (with and without CMSR) against LIIF: whole images through upscale().

    python benchmarks/bench_lmliif.py             # x4 and x8 of a 180x320 input (a few minutes on 2 cores)
    python benchmarks/bench_lmliif.py --quick     # smoke check with a 45x80 input (seconds)

Each case upscales the same random 180x320 image (LMF's efficiency figure uses 320x180) with
`models.upscale.upscale` as test.py and demo.py do (tile 256, the default chunk for the model),
in float32 and in bf16 autocast, all in one process so that the ratios compare like with like:
- LIIF: EDSR-baseline-LIIF (`--weights`, else random weights; timing does not depend on them);
- LM-LIIF: EDSR-baseline-LM-LIIF, the official model block, random weights (seed 0);
- LM-LIIF + CMSR: the same model with a synthetic Scale2Mod table built as the official dump's
  (thresholds at the quartiles of this input's modulation strengths, levels 1, 2, 4, 6): with
  random weights a calibrated table would send every pixel to one level. CMSR applies beyond x4
  only (more than 16 queries per LR pixel), and decodes the image whole, not in tiles.
Times are medians of --repeats runs (LIIF: --liif-repeats) after a warm-up on a small image.
Multiply-adds per output pixel count the convolutions and matrix products of the form that runs
(the fast decoders; encoder once per LR pixel, without the tiles' overlap); for CMSR, the
per-query part times the fraction of output pixels it rendered.
Then one LM-LIIF x8 float32 run is timed part by part (encoder, hypernetwork tables, queries).
Figures are measurements, not tests: nothing here passes or fails.
"""
import argparse
import copy
import os
import statistics
import time

import torch
import torch.nn as nn

from common import DEFAULT_WEIGHTS, REPO, fmt_s, get_model, print_device  # also puts the repo on sys.path
import models  # noqa: E402
from models import cmsr  # noqa: E402
from models.upscale import upscale  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.device import autocast  # noqa: E402

LMLIIF_SPEC = load_config(os.path.join(REPO, 'configs', 'models', 'edsr-baseline-lmliif.yaml'))['model']
TARGET_S, TARGET_RATIO = 2.75, 10  # the issue's target: LM-LIIF x8 float32, and its speed-up over LIIF
CPU = torch.device('cpu')


# --- multiply-adds ----------------------------------------------------------------------------

def encoder_macs_per_pixel(encoder):
    """Multiply-adds of the encoder's convolutions per input pixel (counted on a 16x16 input)."""
    total = 0

    def count(module, inp, out):
        nonlocal total
        total += out.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
    hooks = [m.register_forward_hook(count) for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        encoder(torch.zeros(1, 3, 16, 16))
    for h in hooks:
        h.remove()
    return total / 256


def decoder_macs(model):
    """(per LR pixel, per query) multiply-adds of the fast decoder of a LIIF or an LM-LIIF."""
    members = 4 if model.local_ensemble else 1
    if hasattr(model, 'hypernet'):  # LM-LIIF: hypernet + tabulated latent term; per member the 16-wide MLP
        linears = [m for m in model.hypernet.layers if isinstance(m, nn.Linear)]
        hd, depth = model.imnet.hidden_dim, model.imnet.hidden_depth
        per_lr = sum(l.in_features * l.out_features for l in linears) - 2 * linears[0].out_features  # cell term apart
        per_lr += model.latent_dim * hd + (depth - 1) * hd  # W_0 z, biases folded into the shifts
        per_query = members * (4 * hd + (depth - 1) * hd * hd + hd * model.imnet.layers[-1].out_features)
        return per_lr, per_query
    linears = [m for m in model.imnet.layers if isinstance(m, nn.Linear)]
    feat = model.encoder.out_dim * (9 if model.feat_unfold else 1)
    per_lr = feat * linears[0].out_features  # the first layer's feature part, once per LR pixel
    per_query = members * ((linears[0].in_features - feat) * linears[0].out_features
                           + sum(l.in_features * l.out_features for l in linears[1:]))
    return per_lr, per_query


def macs_per_output_pixel(model, scale, rendered=1.0):
    per_lr, per_query = decoder_macs(model)
    return (encoder_macs_per_pixel(model.encoder) + per_lr) / scale ** 2 + per_query * rendered


# --- cases ------------------------------------------------------------------------------------

def synthetic_table(model, inp, scale):
    """Thresholds at the quartiles of this input's strengths (as the official dump's synthetic
    table): levels 1, 2, 4, 6 each get about a quarter of the LR pixels."""
    h, w = inp.shape[-2:]
    with torch.no_grad():
        model.gen_feat(((inp - 0.5) / 0.5).unsqueeze(0))
        strength = model.shift_strength(torch.tensor([[[2 / (h * scale), 2 / (w * scale)]]])).flatten()
    q = [round(v, 4) for v in strength.quantile(torch.tensor([0.25, 0.5, 0.75])).tolist()]
    return {6: {1: q[0], 2: q[1], 4: q[2], 6: 1}, 12: {1: q[0], 2: q[1], 4: q[2], 6: 1, 12: 1}}


def timed(model, inp, size, precision, repeats):
    """(median seconds, output) of upscale() in `precision`."""
    times = []
    for _ in range(repeats):
        with torch.no_grad(), autocast(CPU, precision):
            t0 = time.perf_counter()
            out = upscale(model, inp, size)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def breakdown(model, inp, size):
    """Seconds spent in the encoder, in the rest of gen_feat and the hypernetwork tables, and in
    the queries, in one float32 upscale()."""
    spent = {'encoder': 0.0, 'gen_feat': 0.0, 'tables': 0.0, 'queries': 0.0}
    originals = {}

    def wrap(obj, name, key):
        fn = getattr(obj, name)
        originals[(obj, name)] = fn

        def timed_call(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[key] += time.perf_counter() - t0
            return out
        setattr(obj, name, timed_call)
    wrap(model.encoder, 'forward', 'encoder')
    wrap(model, 'gen_feat', 'gen_feat')
    wrap(model, 'update_cache', 'tables')
    wrap(model, 'query_grid', 'queries')
    t0 = time.perf_counter()
    with torch.no_grad():
        upscale(model, inp, size)
    whole = time.perf_counter() - t0
    for (obj, name) in originals:
        delattr(obj, name)  # the instance attribute goes; the class's method is back
    queries = spent['queries'] - spent['tables']  # the first query of a tile builds its table
    return {'whole': whole, 'encoder': spent['encoder'], 'hypernet conv (gen_feat)': spent['gen_feat'] - spent['encoder'],
            'hypernet MLP + tables': spent['tables'], 'queries': queries,
            'other (assembly, clamping)': whole - spent['gen_feat'] - spent['queries']}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='a 45x80 input, one run each (a smoke check)')
    p.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default: %(default)s)')
    p.add_argument('--repeats', type=int, default=3, help='timed runs of each LM-LIIF case (default: %(default)s)')
    p.add_argument('--liif-repeats', type=int, default=1, help='timed runs of each LIIF case (default: %(default)s)')
    p.add_argument('--scales', type=int, nargs='+', default=[4, 8], help='(default: 4 8)')
    p.add_argument('--weights', default=DEFAULT_WEIGHTS,
                   help='LIIF checkpoint; random weights of the same architecture if absent (default: %(default)s)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print_device(torch.get_num_threads())
    h, w = (45, 80) if args.quick else (180, 320)
    repeats, liif_repeats = (1, 1) if args.quick else (args.repeats, args.liif_repeats)
    inp = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))

    liif, source = get_model(args.weights)
    torch.manual_seed(0)
    lmliif = models.make(LMLIIF_SPEC).eval()
    lm_cmsr = copy.deepcopy(lmliif)
    cmsr.enable(lm_cmsr, synthetic_table(lmliif, inp, max(args.scales)), 'synthetic quartile table')
    cases = [('LIIF', liif, liif_repeats), ('LM-LIIF', lmliif, repeats), ('LM-LIIF + CMSR', lm_cmsr, repeats)]
    print(f'models : LIIF (EDSR-baseline, MLP 256x4, {source}); LM-LIIF (EDSR-baseline, official block, '
          f'random weights); CMSR table {lm_cmsr.cmsr_spec["s2m_tables"]}')
    print(f'input  : {h}x{w}, upscale() with tile 256 and each model\'s default chunk; median of {repeats} runs '
          f'(LIIF: {liif_repeats}) after a warm-up')
    for _, model, _ in cases:  # warm-up: threads, allocator, and each model's code paths
        for precision in ('fp32', 'bf16'):
            with torch.no_grad(), autocast(CPU, precision):
                upscale(model, inp[:, :16, :16], (16 * max(args.scales), 16 * max(args.scales)))
    cmsr.take_stats(lm_cmsr)

    results = {}
    print(f'\n{"model":16} {"scale":>5} {"precision":9} {"time":>11} {"vs LIIF":>8} {"MACs/output px":>15}  notes')
    for scale in args.scales:
        size = (h * scale, w * scale)
        for precision in ('fp32', 'bf16'):
            for name, model, n in cases:
                seconds, out = timed(model, inp, size, precision, n)
                note, rendered = '', 1.0
                stats = cmsr.take_stats(model)
                if stats is not None:
                    if stats['queries']:
                        rendered = stats['rendered'] / stats['queries']
                        levels = ', '.join(f'{d:g}' for d in model.cmsr_log['levels'])
                        full = results[('LM-LIIF', scale, precision)][1]
                        note = (f'CMSR rendered {rendered:.1%} of the pixels (levels {levels}); '
                                f'max |CMSR - full| {(out - full).abs().max():.3f}')
                    else:
                        note = 'CMSR not used at x4 and below'
                results[(name, scale, precision)] = (seconds, out)
                ratio = results[('LIIF', scale, precision)][0] / seconds
                print(f'{name:16} {"x" + str(scale):>5} {precision:9} {fmt_s(seconds):>11} {ratio:7.1f}x '
                      f'{macs_per_output_pixel(model, scale, rendered):15,.0f}  {note}', flush=True)

    if 8 in args.scales:
        lm8 = results[('LM-LIIF', 8, 'fp32')][0]
        liif8 = results[('LIIF', 8, 'fp32')][0]
        met = lm8 < TARGET_S and liif8 / lm8 >= TARGET_RATIO
        print(f'\ntarget: LM-LIIF x8 float32 under {TARGET_S} s and >= {TARGET_RATIO}x LIIF: {lm8:.2f} s, '
              f'{liif8 / lm8:.1f}x LIIF ({liif8:.2f} s): '
              + ('(--quick: the target is for the 180x320 input)' if args.quick else 'met' if met else 'NOT met'))
        parts = breakdown(lmliif, inp, (h * 8, w * 8))
        print('LM-LIIF x8 float32, one run by part: ' + ', '.join(f'{k} {v:.2f} s' for k, v in parts.items()))


if __name__ == '__main__':
    main()
