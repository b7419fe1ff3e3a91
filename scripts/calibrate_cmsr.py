"""Make the Scale2Mod table that CMSR (LM-LIIF's controllable multi-scale rendering) reads, from a
trained LM-LIIF checkpoint and a folder of HR images (the official init_cmsr; the algorithm is in
models/cmsr.py):

    python scripts/calibrate_cmsr.py --model save/_train_edsr-baseline-lmliif/epoch-last.pth \\
        --hr load/div2k/DIV2K_train_HR --out save/cmsr/edsr-b_lm-liif_mse2e-5.yaml

Each HR image is downsampled by PIL bicubic at every target scale (--scales, default the official
x2 x3 x4 x6 x12 x18) as test.py does for scales beyond x4; no ground truth is used: the model's own
render at the target scale is the reference. Writes one YAML file {target scale: {decode scale:
threshold}} (the official format; test.py and demo.py read it with --cmsr). On a CPU a DIV2K
image takes seconds per scale; --first-k calibrates on the first N images only.
Bad input gives one line `calibrate_cmsr.py: error: ...` and exit code 2.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root, from anywhere

import torch
from tqdm import tqdm

import datasets
from models import cmsr
from models.checkpoint import OFFICIAL_DATA_NORM, load_model
from utils.device import resolve_device
from utils.errors import UserError, exit_on_user_error, first_line

PROG = 'calibrate_cmsr.py'
OFFICIAL_SCALES = ['2', '3', '4', '6', '12', '18']  # configs/cmsr/init-div2k-x*.yaml


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help='a trained LM-LIIF checkpoint')
    p.add_argument('--hr', required=True, help='folder of HR images (officially DIV2K_train_HR)')
    p.add_argument('--out', required=True, help='the YAML table to write')
    p.add_argument('--scales', nargs='+', default=OFFICIAL_SCALES, metavar='S',
                   help=f"target scales, each > 1 (default: {' '.join(OFFICIAL_SCALES)})")
    p.add_argument('--mse-threshold', type=float, default=2e-5,
                   help='the largest MSE (normalised space) a pixel bin may get from a lower decode scale '
                        '(default: %(default)g, the shipped table\'s)')
    p.add_argument('--first-k', type=int, metavar='N', help='use only the first N images (sorted by name)')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--chunk', type=int, default=32768, help='queries per decoder call (default: %(default)s)')
    return p.parse_args(argv)


def check_args(args):
    try:
        scales = [float(s) for s in args.scales]
    except ValueError:
        scales = []
    if not scales or min(scales) <= 1:
        raise UserError(f"--scales {' '.join(args.scales)}: expected numbers greater than 1")
    if not args.mse_threshold > 0:
        raise UserError(f"--mse-threshold {args.mse_threshold:g}: expected a positive number")
    if args.first_k is not None and args.first_k < 1 or args.chunk < 1:
        raise UserError("--first-k and --chunk must be positive")
    if not os.path.isdir(args.hr):
        raise UserError(f"--hr {args.hr}: no such folder")
    if os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: is a folder (give the YAML file to write)")
    return [int(s) if s.is_integer() else s for s in scales]


def calibrate(args):
    scales = check_args(args)
    device = resolve_device(args.device)
    model, data_norm = load_model(args.model, device, with_data_norm=True)
    if not model.supports_cmsr:
        raise UserError(f"--model {args.model}: holds a {type(model).__name__} model, not LM-LIIF or LM-LTE "
                        f"(CMSR calibration needs an lmliif or lmlte checkpoint)")
    sub, div = data_norm or OFFICIAL_DATA_NORM
    folder = datasets.make({'name': 'image-folder', 'args': {'root_path': args.hr, 'first_k': args.first_k}})
    tables = {}
    bar = tqdm(total=len(folder) * len(scales), desc='calibrating', unit='img', disable=None)
    for scale in scales:
        table = tables[scale] = cmsr.start_table(scale)
        images = datasets.make({'name': 'sr-implicit-downsampled', 'args': {'scale_min': scale}},
                               args={'dataset': folder})
        for i in range(len(images)):
            lr, _ = images.pair(i)
            cmsr.calibrate_image(model, ((lr - sub) / div).unsqueeze(0).to(device), scale, args.mse_threshold,
                                 table, chunk=args.chunk)
            bar.update()
        bar.write(f"x{scale:g}: " + ', '.join(f"{d:g}: {t:.2f}" for d, t in sorted(table.items())))
    bar.close()
    header = (f"Scale2Mod tables for CMSR (models/cmsr.py), made by scripts/calibrate_cmsr.py\n"
              f"model: {args.model}\nimages: {len(folder)} from {args.hr}\nmse_threshold: {args.mse_threshold:g}")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        cmsr.save_table(args.out, tables, header)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot write ({first_line(e)})") from None
    print(f"wrote {args.out} (target scales {', '.join(f'x{s:g}' for s in scales)}, {len(folder)} images)")


def main(argv=None):
    with torch.no_grad():
        exit_on_user_error(PROG, calibrate, parse_args(argv))


if __name__ == '__main__':
    main()
