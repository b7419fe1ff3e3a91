"""Benchmark of the LIIF decoder: plain vs fast form, float32 vs bf16, and the peak memory of
whole-image upscaling.

    python benchmarks/bench_decoder.py              # full run on the CPU (several minutes on 2 cores)
    python benchmarks/bench_decoder.py --quick      # smoke check with tiny sizes (seconds)
    python benchmarks/bench_decoder.py --device cuda --div2k --compile   # the GPU target's case

Part 1 (speed) decodes an x4 image (default 128x128 -> 512x512, 262,144 queries) in chunks of
`--chunk` queries, with the same chunks for both forms. Each run is timed whole (gen_feat + every
query chunk); the encoder alone is timed separately, and decoder = whole - encoder (for the fast
form this includes the LR-resolution first-layer map that gen_feat builds). Figures are medians
over `--repeats` runs after one warm-up run. `--compile` adds the fast form with its query
function compiled (`compile_decoder`, as test.py and demo.py --compile) in bf16, timed after two
warm-up runs.

Part 2 (memory) runs `models.upscale.upscale` once per input size, each in a fresh subprocess:
peak RSS (on a GPU: peak allocated GPU memory) during the run minus the level after imports, model
load, input creation and a tiny (8x8) warm-up upscale, so that one-time lazy initialisation is not
counted as working memory. The output tensor is part of that increase, so its size is subtracted
to give the working memory.

Figures are measurements, not tests: nothing here passes or fails.
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from common import DEFAULT_WEIGHTS, MiB, fmt_s, get_model, print_device, sync  # also puts the repo on sys.path
from models.upscale import default_chunk, upscale  # noqa: E402
from utils.coords import make_coord  # noqa: E402
from utils.device import autocast  # noqa: E402


# --- part 1: speed --------------------------------------------------------------------------

def decode_once(model, inp, coord, cell, chunk):
    """One whole decode; returns (prediction (B, Q, 3) float32, seconds)."""
    sync(inp.device)
    t0 = time.perf_counter()
    model.gen_feat(inp)
    preds = torch.cat([model.query_rgb(coord[:, i:i + chunk], cell[:, i:i + chunk])
                       for i in range(0, coord.shape[1], chunk)], dim=1).float()
    sync(inp.device)
    return preds, time.perf_counter() - t0


def time_encoder(model, inp):
    sync(inp.device)
    t0 = time.perf_counter()
    model.encoder(inp)
    sync(inp.device)
    return time.perf_counter() - t0


def time_case(model, inp, coord, cell, chunk, form, precision, repeats, compiled=False):
    model.decoder = form
    if compiled:
        model.compile_decoder()  # as test.py and demo.py --compile
    with torch.no_grad(), autocast(inp.device, precision):
        for _ in range(2 if compiled else 1):  # warm-up (compiling: full chunks, then the last one)
            pred, _ = decode_once(model, inp, coord, cell, chunk)
        whole = [decode_once(model, inp, coord, cell, chunk)[1] for _ in range(repeats)]
        enc = statistics.median(time_encoder(model, inp) for _ in range(repeats))
    model.decoder, model.compiled_query = 'fast', None
    whole = statistics.median(whole)
    return {'pred': pred, 'encoder': enc, 'decoder': whole - enc, 'whole': whole}


def bench_speed(model, lr, scale, chunk, repeats, compiled):
    device = next(model.parameters()).device
    h, w = lr
    H, W = h * scale, w * scale
    Q = H * W
    print(f'\n== 1. speed: x{scale} decode of a {h}x{w} input -> {H}x{W} output '
          f'({Q:,} queries, chunks of {chunk:,}, median of {repeats} after 1 warm-up) ==')
    torch.manual_seed(0)
    inp = ((torch.rand(1, 3, h, w) - 0.5) / 0.5).to(device)
    coord = make_coord((H, W), device=device).unsqueeze(0)
    cell = torch.tensor([2 / H, 2 / W], device=device).expand_as(coord)

    cases = [('plain', 'fp32'), ('fast', 'fp32'), ('plain', 'bf16'), ('fast', 'bf16')]
    res = {}
    print(f'{"form":13} {"precision":9} {"encoder":>11} {"decoder":>11} {"whole":>11} {"decoder/query":>14}')
    for form, prec in cases + ([('fast+compile', 'bf16')] if compiled else []):
        r = time_case(model, inp, coord, cell, chunk, form.split('+')[0], prec, repeats, compiled='+' in form)
        res[form, prec] = r
        print(f'{form:13} {prec:9} {fmt_s(r["encoder"]):>11} {fmt_s(r["decoder"]):>11} {fmt_s(r["whole"]):>11} '
              f'{r["decoder"] / Q * 1e6:10.3f} us')

    ref = res['plain', 'fp32']['pred']
    diff_fp32 = (res['fast', 'fp32']['pred'] - ref).abs().max().item()
    diff_bf16 = (res['fast', 'bf16']['pred'] - ref).abs().max().item()
    print(f'\nmax |fast - plain|, fp32          : {diff_fp32:.3g}   (design: <= 1e-5)')
    print(f'max |fast bf16 - plain fp32|      : {diff_bf16:.3g}   (bf16 rounding; for information)')

    def speedup(a, b, part):
        return res[b][part] / res[a][part]

    print(f'\n{"speed-up (higher = faster)":34} {"decoder only":>13} {"whole decode":>13}   target')
    rows = [('fast fp32  vs plain fp32', ('fast', 'fp32'), ('plain', 'fp32'), '>= 4x (fast fp32 >= 4x plain)'),
            ('fast bf16  vs plain fp32', ('fast', 'bf16'), ('plain', 'fp32'), '> fast fp32 vs plain fp32'),
            ('fast bf16  vs fast fp32', ('fast', 'bf16'), ('fast', 'fp32'), '> 1x (bf16 faster still)'),
            ('plain bf16 vs plain fp32', ('plain', 'bf16'), ('plain', 'fp32'), '(for information)')]
    if compiled:
        rows.append(('fast bf16 compiled vs eager', ('fast+compile', 'bf16'), ('fast', 'bf16'), '(for information)'))
    for name, a, b, target in rows:
        print(f'{name:34} {speedup(a, b, "decoder"):12.2f}x {speedup(a, b, "whole"):12.2f}x   {target}')
    print('whole decode = gen_feat + all query chunks; decoder only = whole - encoder (EDSR, same for both\n'
          'forms), so the fast form\'s LR first-layer map counts as decoder time.')


# --- part 2: memory -------------------------------------------------------------------------

def read_status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss():
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if impossible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def memory_case(args):
    """Runs in a fresh subprocess: one upscale, prints one JSON line."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, _ = get_model(args.weights, args.model_config)
    model.to(device)
    torch.manual_seed(0)
    size = args.memory_case
    inp = torch.rand(3, size, size, device=device)
    with autocast(device, args.memory_precision):  # one-time lazy initialisation (kernels, thread
        upscale(model, torch.rand(3, 8, 8, device=device), (8 * args.scale, 8 * args.scale))  # pool) is not working memory
    if device.type == 'cuda':
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline, method = torch.cuda.memory_allocated(device), 'torch.cuda.max_memory_allocated'
    elif reset_peak_rss():  # the model load's transient peak must not hide the run's peak
        baseline, method = read_status_kib('VmRSS') * 1024, 'peak reset via /proc/self/clear_refs'
    else:
        baseline, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'ru_maxrss before/after'
    kwargs = {'tile': args.tile} if args.memory_chunk is None else {'tile': args.tile, 'chunk': args.memory_chunk}
    t0 = time.perf_counter()
    with autocast(device, args.memory_precision):
        out = upscale(model, inp, (size * args.scale, size * args.scale), **kwargs)
    sync(device)
    wall = time.perf_counter() - t0
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({'input': size, 'output': list(out.shape[-2:]), 'wall_s': wall,
                      'peak_increase': peak - baseline, 'output_bytes': out.numel() * out.element_size(),
                      'baseline': baseline, 'method': method}))


def bench_memory(args, sizes):
    chunk = args.memory_chunk or default_chunk(args.device, get_model(args.weights, args.model_config)[0])
    print(f'\n== 2. memory: x{args.scale} upscale() of n x n inputs, tile {args.tile}, chunk {chunk:,}, '
          f'{args.memory_precision}, decoder "fast"; one fresh subprocess per size, one run each ==')
    print(f'{"input":>11} {"output":>11} {"tiles":>5} {"peak RSS +":>11} {"output":>10} '
          f'{"working mem":>12} {"wall":>10}')
    method = None
    for size in sizes:
        cmd = [sys.executable, os.path.abspath(__file__), '--memory-case', str(size),
               '--threads', str(args.threads), '--device', args.device, '--tile', str(args.tile),
               '--scale', str(args.scale),
               '--memory-precision', args.memory_precision, '--weights', args.weights or '',
               '--model-config', args.model_config or '']
        if args.memory_chunk is not None:
            cmd += ['--memory-chunk', str(args.memory_chunk)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f'{size:>5}x{size:<5} failed (exit {proc.returncode}):\n{proc.stderr.strip()}')
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        method = r['method']
        H, W = r['output']
        n_tiles = math.ceil(size / args.tile) ** 2
        print(f'{size:>5}x{size:<5} {H:>5}x{W:<5} {n_tiles:>5} {r["peak_increase"] / MiB:7.1f} MiB '
              f'{r["output_bytes"] / MiB:6.1f} MiB {(r["peak_increase"] - r["output_bytes"]) / MiB:8.1f} MiB '
              f'{fmt_s(r["wall_s"]):>10}')
    if method:
        print(f'peak RSS + = peak RSS during upscale() minus RSS after imports, model load, input creation and '
              f'an 8x8 warm-up upscale ({method});\nworking mem = peak RSS + minus the float32 output tensor. '
              f'Tiling engages when the input is larger than the tile ({args.tile}); from there on the '
              f'working memory\nshould stay flat as the input grows. Wall time is a single cold run.')


# --- command line ---------------------------------------------------------------------------

def parse_hw(text):
    """'N' -> (N, N); 'HxW' -> (H, W)."""
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def parse_sizes(text):
    return [int(s) for s in text.split(',') if s.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true',
                   help='tiny sizes for a smoke check (32x32 speed input; 32,64 memory inputs, tile 32)')
    p.add_argument('--threads', type=int, default=torch.get_num_threads(),
                   help='torch intra-op threads (default: %(default)s)')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--chunk', type=int, default=None,
                   help="queries per decoder call in the speed part, both forms (default: upscale()'s default "
                        "for the device, 2048 on a CPU; the official test script uses 30000)")
    p.add_argument('--compile', action='store_true', help='add the fast form with torch.compile (bf16)')
    p.add_argument('--repeats', type=int, default=None, help='timed runs per case (default: 3, quick: 2)')
    p.add_argument('--lr-size', type=parse_hw, default=None,
                   help='speed part LR size, N or HxW (default: 128, quick: 32; --div2k: 339x510)')
    p.add_argument('--div2k', action='store_true',
                   help='speed part on a DIV2K-size image: 339x510 LR -> 1356x2040 at x4 (minutes on a CPU)')
    p.add_argument('--scale', type=int, default=4, help='upscaling factor (default: %(default)s)')
    p.add_argument('--tile', type=int, default=None, help='upscale() LR tile side (default: 256, as upscale(); quick: 32)')
    p.add_argument('--memory-sizes', type=parse_sizes, default=None,
                   help='comma-separated input sides for the memory part (default: 128,256,512,1024; quick: 32,64)')
    p.add_argument('--memory-precision', choices=['bf16', 'fp32'], default='bf16',
                   help='precision of the memory part (default: %(default)s)')
    p.add_argument('--memory-chunk', type=int, default=None,
                   help="queries per decoder call in the memory part (default: upscale()'s default)")
    p.add_argument('--skip-memory', action='store_true', help='skip the memory part')
    p.add_argument('--skip-speed', action='store_true', help='skip the speed part')
    p.add_argument('--weights', default=DEFAULT_WEIGHTS,
                   help='LIIF checkpoint; random weights of the same architecture if the file is absent '
                        '(default: %(default)s)')
    p.add_argument('--model-config', default=None, metavar='YAML',
                   help='another model (a configs/models/ file, random weights) instead of EDSR-baseline-LIIF, '
                        'e.g. configs/models/swinir-liif.yaml for a window encoder\'s memory')
    p.add_argument('--memory-case', type=int, default=None, help=argparse.SUPPRESS)  # internal
    args = p.parse_args()

    if args.tile is None:
        args.tile = 32 if args.quick else 256
    if args.memory_case is not None:
        memory_case(args)
        return

    repeats = args.repeats or (2 if args.quick else 3)
    lr = args.lr_size or ((339, 510) if args.div2k else (32, 32) if args.quick else (128, 128))
    sizes = args.memory_sizes or ([32, 64] if args.quick else [128, 256, 512, 1024])
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print_device(torch.get_num_threads(), device)
    model, source = get_model(args.weights, args.model_config)
    model.to(device)
    print(f'model  : {type(model).__name__} over {type(model.encoder).__name__}, '
          f'{sum(p.numel() for p in model.parameters()):,} parameters, {source}')
    if args.quick:
        print('mode   : --quick (tiny sizes: a smoke check, not representative figures)')

    if not args.skip_speed:
        bench_speed(model, lr, args.scale, args.chunk or default_chunk(device, model), repeats, args.compile)
    if not args.skip_memory:
        bench_memory(args, sizes)


if __name__ == '__main__':
    main()
