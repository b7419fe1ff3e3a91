"""Time of a whole test.py evaluation (default: Set14 x4) in float32 and bf16, and the PSNR
difference bf16 makes (target: within 0.01 dB).

    python benchmarks/bench_test_suite.py --model save/pretrained/edsr-baseline-liif.pth --load-dir load

Both precisions run in this one process, one after the other, each after a warm-up run of the
whole config, so the ratio is measured under the same conditions; `--compile` adds bf16 with the
decoder compiled (test.py --compile; its warm-up run includes compiling). Figures are
measurements: nothing passes or fails.
"""
import argparse
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

from models.checkpoint import load_model  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from utils.errors import exit_on_user_error  # noqa: E402
from test import CONFIG_DIR, run_config  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True, help='checkpoint (official format)')
    p.add_argument('--config', default=os.path.join(CONFIG_DIR, 'test-set14-4.yaml'),
                   help='the test config to time (default: Set14 x4, which needs load/benchmark/Set14)')
    p.add_argument('--load-dir', default='load', help="the folder the configs' ./load/ paths point at (default: load)")
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    p.add_argument('--compile', action='store_true', help='also bf16 with the compiled decoder')
    exit_on_user_error('bench_test_suite.py', bench, p.parse_args(argv))


def bench(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'
    print(f"{os.path.basename(args.config)} with {args.model} on {device.type} ({name}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = load_model(args.model, device)
    results = {}
    for precision in ('fp32', 'bf16', 'bf16 compiled') if args.compile else ('fp32', 'bf16'):
        if precision == 'bf16 compiled':
            model.compile_decoder()
        run_config(model, args.config, device, precision.split()[0], load_dir=args.load_dir)  # warm-up (first run pays set-up)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        rows, summary = run_config(model, args.config, device, precision.split()[0], load_dir=args.load_dir)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        results[precision] = (time.perf_counter() - start, summary, rows)
        print(f"{precision}: {results[precision][0]:.2f} s for {len(rows)} images, "
              f"PSNR {summary['psnr']:.4f} dB, SSIM {summary['ssim']:.4f}")
    (t32, s32, r32), (t16, s16, r16) = results['fp32'], results['bf16']
    worst = max(abs(a['psnr'] - b['psnr']) for a, b in zip(r32, r16))
    print(f"bf16 vs fp32: {t32 / t16:.2f}x faster; mean PSNR difference {s16['psnr'] - s32['psnr']:+.4f} dB "
          f"(target within 0.01), largest per-image difference {worst:.4f} dB")
    if args.compile:
        tc, sc, _ = results['bf16 compiled']
        print(f"bf16 compiled vs bf16: {t16 / tc:.2f}x faster ({t32 / tc:.2f}x float32); "
              f"PSNR difference {sc['psnr'] - s16['psnr']:+.4f} dB")


if __name__ == '__main__':
    main()
