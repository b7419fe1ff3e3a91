"""Evaluate a checkpoint with the paper's protocol.

    python test.py --config configs/test/test-set5-4.yaml --model CKPT      # one set, one scale
    python test.py --model CKPT --suite benchmark|div2k|all                 # the paper's tables

One config ends with the line `result: <mean PSNR>` (as the official script does); the suite
prints a table (rows: data sets, columns: scales), writes it as CSV and JSON with a per-image
CSV, and lists what it skipped because the data is not under load/.
"""
import argparse
import os
import sys

from utils.checkpoint import CheckpointError, load_model
from utils.config import ConfigError
from utils.device import DeviceError, resolve_device
from utils.errors import message
from utils.image import ImageError
from utils.speedups import compile_decoder
from utils.suite import PROTOCOL, SUITES, TestError, run_config, run_suite, write_report

import datasets


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument('--config', help='a test config, e.g. configs/test/test-set14-2.yaml')
    what.add_argument('--suite', choices=sorted(SUITES), help='every set and scale of the paper found under load/')
    p.add_argument('--model', required=True, help='checkpoint (official format)')
    p.add_argument('--load-dir', default='load', help="the folder the configs' ./load/ paths point at (default: load)")
    p.add_argument('--report', help='suite: folder for results.csv, results.json, per_image.csv '
                                    '(default: save/test/<checkpoint name>)')
    p.add_argument('--save-dir', help='write the SR images here (<set>/x<scale>/<image>.png)')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    p.add_argument('--cell-clip', type=float, nargs='?', const=4.0, default=None, metavar='S',
                   help='beyond scale S (default 4, the training maximum) give the decoder the cell of '
                        'scale S, as LTE/LMF do; off unless given')
    p.add_argument('--no-ema', action='store_true', help="use the trained weights even when the checkpoint has an EMA")
    p.add_argument('--compile', action='store_true',
                   help='decode through torch.compile (about 1.3x faster on a CPU in bf16; the first images '
                        'wait while it compiles)')
    return p.parse_args()


def main(args):
    device = resolve_device(args.device)
    model = load_model(args.model, device, ema=not args.no_ema)
    compile_note = compile_decoder(model, device) if args.compile else None
    options = dict(device=device, precision=args.precision, cell_clip=args.cell_clip, load_dir=args.load_dir)
    print(PROTOCOL)
    print(f"model {args.model} on {device.type}, {args.precision}"
          + (f", cell clip at x{args.cell_clip:g} (cell of scale {args.cell_clip:g} beyond it)" if args.cell_clip else '')
          + (', compiled decoder' if args.compile and not compile_note else ''))
    if compile_note:
        print(compile_note)
    if args.config:
        rows, summary = run_config(model, args.config, save_dir=args.save_dir, **options)
        print(f"{len(rows)} images, PSNR {summary['psnr']:.4f} dB, SSIM {summary['ssim']:.4f}")
        print(f"result: {summary['psnr']:.4f}")
        return
    report = args.report or os.path.join('save', 'test', os.path.splitext(os.path.basename(args.model))[0])
    results, per_image, skipped = run_suite(model, args.suite, save_dir=args.save_dir, **options)
    print(write_report(report, args, results, per_image, skipped))


if __name__ == '__main__':
    args = parse_args()
    try:
        main(args)
    except (ConfigError, datasets.DataError, CheckpointError, DeviceError, ImageError, TestError) as e:
        print(f"test.py: error: {message(e)}", file=sys.stderr)
        sys.exit(2)
