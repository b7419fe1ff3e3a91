"""Make bicubic LR images from a folder of HR images, as the SR benchmarks' LR_bicubic folders.

    python scripts/make_lr.py --hr load/Set5/HR --out load/Set5/LR_bicubic --scales 2 3 4

writes <out>/X{s}/<stem>x{s}.png for every image in --hr (the official layout, e.g.
LR_bicubic/X4/babyx4.png, DIV2K's X4/0001x4.png; --no-suffix writes <stem>.png, the HR's name):
the HR image cropped from the top-left to a multiple of s, then MATLAB's bicubic
imresize(hr, 1/s) (utils/imresize.py, equal pixel for pixel to the published LR files), saved
as an 8-bit PNG. Grayscale stays grayscale; palette images become RGB and alpha is dropped.
Existing outputs are kept (and reported) unless --overwrite; each file is written atomically.
Bad input gives one line `make_lr.py: error: ...` and exit code 2.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root, so utils/ imports from anywhere

import numpy as np
from PIL import Image
from tqdm import tqdm

from utils.errors import UserError, first_line
from utils.files import atomic_write
from utils.image import image_files
from utils.imresize import imresize, modcrop

TO_MODE = {'L': 'L', '1': 'L', 'LA': 'L', 'RGB': 'RGB', 'RGBA': 'RGB', 'P': 'RGB', 'PA': 'RGB', 'CMYK': 'RGB', 'YCbCr': 'RGB'}


def read_hr(path):
    try:
        with Image.open(path) as im:
            if im.mode not in TO_MODE:
                raise UserError(f"{path}: unsupported image mode {im.mode} (8-bit grayscale or colour expected)")
            return np.asarray(im.convert(TO_MODE[im.mode]) if im.mode != TO_MODE[im.mode] else im)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path}: cannot read image ({first_line(e)})")


def parse_scale(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value.is_integer() or value <= 1:
        raise UserError(f"scale must be an integer greater than 1, got {text!r}")
    return int(value)


def main(argv=None):
    p = argparse.ArgumentParser(prog='make_lr.py', description=__doc__.split('\n')[0])
    p.add_argument('--hr', required=True, help='folder of HR images')
    p.add_argument('--out', required=True, help='LR root; gets X{s}/ subfolders')
    p.add_argument('--scales', nargs='+', default=['2', '3', '4'], help='integer scales > 1 (default: 2 3 4)')
    p.add_argument('--suffix', action=argparse.BooleanOptionalAction, default=True,
                   help='name outputs <stem>x{s}.png (default) or, with --no-suffix, <stem>.png')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    args = p.parse_args(argv)
    try:
        scales = [parse_scale(s) for s in args.scales]
        if not os.path.isdir(args.hr):
            raise UserError(f"HR folder not found: {args.hr}")
        names = [os.path.basename(path) for path in image_files(args.hr)]
        if not names:
            raise UserError(f"no image files in {args.hr}")
        stems = [os.path.splitext(n)[0] for n in names]
        dup = next((s for s in stems if stems.count(s) > 1), None)
        if dup is not None:
            raise UserError(f"two images named {dup} in {args.hr}")
        written = skipped = 0
        for name, stem in zip(tqdm(names, desc='make_lr', unit='img', disable=None), stems):
            src = os.path.join(args.hr, name)
            todo = []
            for s in scales:
                dst = os.path.join(args.out, f'X{s}', f'{stem}x{s}.png' if args.suffix else f'{stem}.png')
                if os.path.exists(dst) and not args.overwrite:
                    tqdm.write(f"skipped {dst} (exists; --overwrite replaces it)")
                    skipped += 1
                else:
                    todo.append((s, dst))
            if not todo:
                continue
            hr = read_hr(src)
            for s, dst in todo:
                hr_s = modcrop(hr, s)
                if hr_s.shape[0] == 0 or hr_s.shape[1] == 0:
                    raise UserError(f"{src}: {hr.shape[1]}x{hr.shape[0]} is smaller than scale {s}")
                lr = imresize(hr_s, scale=1 / s)
                try:
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    atomic_write(dst, lambda f: Image.fromarray(lr).save(f, format='PNG'))
                except Exception as e:
                    raise UserError(f"{dst}: cannot write ({first_line(e)})")
                written += 1
        print(f"wrote {written} file(s) to {args.out}" + (f", skipped {skipped} existing" if skipped else ''))
    except UserError as e:
        print(f"make_lr.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
