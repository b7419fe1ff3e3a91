"""Every decoder family over the EDSR-baseline encoder, whole images through upscale(): LIIF, MetaSR,
LTE, CiaoSR, LM-LIIF, LM-LTE and LM-CiaoSR (the latent-modulated ones with and without CMSR), at
x4 and x8 of a 180x320 input.

    python benchmarks/bench_families.py              # 180x320, x4 and x8, float32 and bf16 (long on a CPU)
    python benchmarks/bench_families.py --quick      # 45x80, float32, one run each (a smoke check)
    python benchmarks/bench_families.py --families liif lmliif --weights liif=save/pretrained/edsr-baseline-liif.pth \\
        --weights lmliif=save/pretrained/edsr-baseline-lmliif.pth --cmsr lmliif=save/pretrained/edsr-baseline-lmliif-cmsr.yaml
    python benchmarks/bench_families.py --families ciaosr lmciaosr --size 45 80 --scales 8 --precisions fp32 --official

Each case upscales the same image, random unless --image gives a photo (cut to --size at its
centre: CMSR's savings depend on the content; LMF's efficiency figure uses 320x180), with
`models.upscale.upscale` as test.py and demo.py do (tile 256, the model's default chunk), in
float32 and bf16 autocast, all in one process so that the ratios compare like with like. Models
are the official blocks of configs/models/edsr-baseline-<family>.yaml, with random weights
(seed 0; timing does not depend on them) unless --weights gives a checkpoint. A `+ CMSR` case
runs each latent-modulated model with the Scale2Mod table of --cmsr, or else a synthetic one
(thresholds at the quartiles of this input's modulation strengths, levels 1, 2, 4, 6: with
random weights a calibrated table sends every pixel to one level); CMSR applies beyond x4 only.
`--official` adds, for CiaoSR and LM-CiaoSR, the official code's flow as a stand-in for it (the
official code is not on these machines): the plain form (the official equations, grid_sample
and per-neighbour MLP calls) through the official forward over the whole output grid, in chunks
of 30000 queries for CiaoSR (its test bsize) and LMF's default 1280x720 for LM-CiaoSR.
Decoder multiply-adds per output pixel are counted by torch's FlopCounterMode on the form that
runs (everything but the encoder, per output pixel, on a 45x80 input). Times are medians of
--repeats runs after a warm-up. Figures are measurements, not tests: nothing passes or fails.
"""
import argparse
import copy
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import REPO, fmt_s, print_device  # also puts the repo on sys.path
import models  # noqa: E402
from models import cmsr, scale2mod  # noqa: E402
from models.checkpoint import load_model  # noqa: E402
from models.upscale import upscale  # noqa: E402
from utils.coords import make_coord  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.device import autocast  # noqa: E402
from utils.image import ImageError, read_image  # noqa: E402

FAMILIES = ['liif', 'metasr', 'lte', 'ciaosr', 'lmliif', 'lmlte', 'lmciaosr']
NAMES = {'liif': 'LIIF', 'metasr': 'MetaSR', 'lte': 'LTE', 'ciaosr': 'CiaoSR', 'lmliif': 'LM-LIIF', 'lmlte': 'LM-LTE',
         'lmciaosr': 'LM-CiaoSR'}
OFFICIAL_BSIZE = {'ciaosr': 30000, 'lmciaosr': 1280 * 720}  # the official test bsize, LMF's default
CPU = torch.device('cpu')


def family_model(family, weights):
    if family in weights:
        return load_model(weights[family]), weights[family]
    torch.manual_seed(0)
    spec = load_config(os.path.join(REPO, 'configs', 'models', f'edsr-baseline-{family}.yaml'))['model']
    return models.make(spec).eval(), 'random weights'


def synthetic_table(model, inp, scale):
    """Thresholds at the quartiles of this input's strengths (as the official dumps' synthetic
    tables): levels 1, 2, 4, 6 each get about a quarter of the LR pixels."""
    h, w = inp.shape[-2:]
    with torch.no_grad():
        model.gen_feat(((inp - 0.5) / 0.5).unsqueeze(0))
        strength = model.shift_strength(torch.tensor([[[2 / (h * scale), 2 / (w * scale)]]])).flatten()
    q = [round(v, 4) for v in strength.quantile(torch.tensor([0.25, 0.5, 0.75])).tolist()]
    return {6: {1: q[0], 2: q[1], 4: q[2], 6: 1}, 12: {1: q[0], 2: q[1], 4: q[2], 6: 1, 12: 1}}


def decoder_macs(model, inp, scale):
    """Multiply-adds per output pixel of everything but the encoder, in one upscale()."""
    def total(fn):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            fn()
        return counter.get_total_flops() / 2
    size = (inp.shape[-2] * scale, inp.shape[-1] * scale)
    whole = total(lambda: run(model, inp, size))
    encoder = total(lambda: model.encoder(((inp - 0.5) / 0.5).unsqueeze(0)))
    return (whole - encoder) / (size[0] * size[1])


class OfficialFlow:
    """The official code's flow, as a stand-in for it: the plain form through the official forward
    over the whole output grid in chunks of `bsize` (normalised (x - 0.5) / 0.5, as officially)."""

    def __init__(self, model, bsize):
        self.model, self.bsize = copy.deepcopy(model), bsize
        self.model.decoder = 'plain'
        self.cmsr, self.encoder, self.parameters = None, self.model.encoder, self.model.parameters

    def __call__(self, inp, size):
        coord = make_coord(size).unsqueeze(0)
        cell = torch.tensor([2 / size[0], 2 / size[1]]).expand_as(coord)
        pred = self.model(((inp - 0.5) / 0.5).unsqueeze(0), coord, cell, bsize=self.bsize)
        return (pred[0] * 0.5 + 0.5).clamp(0, 1).t().reshape(3, *size)


def run(model, inp, size):
    return model(inp, size) if isinstance(model, OfficialFlow) else upscale(model, inp, size)


def timed(model, inp, size, precision, repeats):
    """(median seconds, output) of upscale() (or the official flow) in `precision`."""
    times = []
    for _ in range(repeats):
        with torch.no_grad(), autocast(CPU, precision):
            t0 = time.perf_counter()
            out = run(model, inp, size)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def pairs(items, what):
    """['family=path', ...] -> {family: path}."""
    out = {}
    for item in items:
        family, sep, path = item.partition('=')
        if not sep or family not in FAMILIES or not os.path.isfile(path):
            raise SystemExit(f"bench_families.py: error: --{what} {item!r}: expected FAMILY=FILE with FAMILY one of "
                             f"{', '.join(FAMILIES)} and an existing file")
        out[family] = path
    return out


def photo(path, h, w):
    """The (3, h, w) centre of the RGB image at `path`."""
    try:
        pixels = read_image(path).pixels
    except ImageError as e:
        raise SystemExit(f"bench_families.py: error: --image {e}") from None
    if pixels.shape[0] != 3 or pixels.shape[1] < h or pixels.shape[2] < w:
        raise SystemExit(f"bench_families.py: error: --image {path}: expected an RGB image of at least {h}x{w}, "
                         f"got {pixels.shape[0]} channel(s), {pixels.shape[1]}x{pixels.shape[2]}")
    top, left = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
    return pixels[:, top:top + h, left:left + w].contiguous()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='a 45x80 input, float32, one run each (a smoke check)')
    p.add_argument('--families', nargs='+', default=FAMILIES, choices=FAMILIES, help='(default: all)')
    p.add_argument('--scales', type=int, nargs='+', default=[4, 8], help='(default: 4 8)')
    p.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'), help='input size (default: 180 320; --quick: 45 80)')
    p.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    p.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default: %(default)s)')
    p.add_argument('--repeats', type=int, default=3, help='timed runs of each case (default: %(default)s)')
    p.add_argument('--weights', action='append', default=[], metavar='FAMILY=CKPT', help='a checkpoint for a family')
    p.add_argument('--cmsr', action='append', default=[], metavar='FAMILY=TABLE',
                   help='a Scale2Mod table for a latent-modulated family (default: a synthetic one)')
    p.add_argument('--image', help='a photo (RGB, at least --size) to upscale instead of the random image')
    p.add_argument('--official', action='store_true',
                   help='add the official flow (a stand-in for the official code) of CiaoSR and LM-CiaoSR')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print_device(torch.get_num_threads())
    h, w = args.size or ((45, 80) if args.quick else (180, 320))
    repeats = 1 if args.quick else args.repeats
    precisions = ['fp32'] if args.quick else args.precisions
    weights, tables = pairs(args.weights, 'weights'), pairs(args.cmsr, 'cmsr')
    inp = photo(args.image, h, w) if args.image else torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    small = inp[:, :45, :80]

    cases = []  # (name, model, note)
    for family in args.families:
        model, source = family_model(family, weights)
        if args.official and family in OFFICIAL_BSIZE:
            cases.append((f'{NAMES[family]} (off.)', OfficialFlow(model, OFFICIAL_BSIZE[family]),
                          f'the official flow, plain form, bsize {OFFICIAL_BSIZE[family]}'))
        cases.append((NAMES[family], model, source))
        if model.supports_cmsr and not args.official:
            with_cmsr = copy.deepcopy(model)
            table = scale2mod.load(tables[family]) if family in tables else synthetic_table(model, inp, max(args.scales))
            with_cmsr.cmsr = cmsr.CMSR(table, 'bench')
            cases.append((NAMES[family] + ' + CMSR', with_cmsr, tables.get(family, f'synthetic table {table}')))
    picture = f'from the centre of {args.image}' if args.image else 'random'
    print(f'input  : {h}x{w} {picture}, upscale() with tile 256 and each model\'s default chunk; '
          f'median of {repeats} runs after a warm-up')
    for name, model, source in cases:
        print(f'model  : {name}: {sum(p.numel() for p in model.parameters()):,} parameters, {source}')
        for precision in precisions:  # warm-up: threads, allocator, and each model's code paths
            with torch.no_grad(), autocast(CPU, precision):
                run(model, small[:, :16, :16], (16 * max(args.scales), 16 * max(args.scales)))

    results = {}
    baseline = cases[0][0]
    print(f'\n{"model":16} {"scale":>5} {"precision":9} {"time":>11} {"vs " + baseline:>10} '
          f'{"decoder MACs/px":>16}  notes')
    for scale in args.scales:
        macs = {}
        for name, model, _ in cases:
            if model.cmsr:
                model.cmsr.take_stats()
            macs[name] = decoder_macs(model, small, scale)
        for precision in precisions:
            for name, model, _ in cases:
                if model.cmsr:
                    model.cmsr.take_stats()
                seconds, out = timed(model, inp, (h * scale, w * scale), precision, repeats)
                note = ''
                if model.cmsr:
                    stats = model.cmsr.take_stats()
                    full = results.get((name[:-len(' + CMSR')], scale, precision), (None, None))[1]
                    note = (f'CMSR rendered {stats["rendered"] / stats["queries"]:.1%} of the pixels'
                            + (f', max |CMSR - full| {(out - full).abs().max():.3f}' if full is not None else '')
                            if stats['queries'] else 'CMSR not used at x4 and below')
                results[(name, scale, precision)] = (seconds, out)
                ratio = results[(baseline, scale, precision)][0] / seconds
                print(f'{name:16} {"x" + str(scale):>5} {precision:9} {fmt_s(seconds):>11} {ratio:9.1f}x '
                      f'{macs[name]:16,.0f}  {note}', flush=True)
    # the issues' targets, x8 float32, each for its input size
    for a, b, target, size in [('LTE', 'LM-LTE', 10, (180, 320)), ('LIIF', 'LM-LIIF + CMSR', 20, (180, 320)),
                               ('CiaoSR (off.)', 'LM-CiaoSR', 57, (45, 80)), ('CiaoSR (off.)', 'CiaoSR', 2, (45, 80)),
                               ('LM-CiaoSR (off.)', 'LM-CiaoSR', 1.7, (45, 80))]:
        key_a, key_b = (a, 8, 'fp32'), (b, 8, 'fp32')
        if key_a in results and key_b in results:
            ratio = results[key_a][0] / results[key_b][0]
            print(f'{b} x8 float32 against {a}: {ratio:.1f}x (target >= {target}x'
                  + (f', for a {size[0]}x{size[1]} input)' if size != (h, w) else ')'))

if __name__ == '__main__':
    main()
