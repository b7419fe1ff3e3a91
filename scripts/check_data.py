"""Check the downloaded data sets under load/ against what their publishers ship (README.md, Data).

    python scripts/check_data.py [--load-dir load] [--full] [SET ...]

For each published set (Set5, Set14, B100, Urban100, DIV2K train, DIV2K valid; or the SETs named,
e.g. Set5 "DIV2K valid"): found or not, the HR image count against the published one, and for
each LR_bicubic/X2, X3, X4 folder that every HR image has its LR file (<stem>x<s>.png) of size
floor(HR / s), no other files, and that its first file (every file with --full) is MATLAB's
bicubic of its HR image (what the archives ship and scripts/make_lr.py writes; other resizers
change the scores). A missing or incomplete LR folder comes with the make_lr.py command that
writes it.

Exit code 1 when a set that is there is broken (HR count, missing, extra or wrongly sized LR
files, an LR file that is not MATLAB bicubic, an unreadable image), when a named SET is not
there, or when no set is found at all; 0 otherwise. Sets that are not there are listed with
where they are published. Bad arguments: one line `check_data.py: error: ...`, exit code 2.
"""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root, so utils/ imports from anywhere

import numpy as np
from PIL import Image

from datasets.catalog import LR_SCALES, SETS
from utils.errors import UserError, exit_on_user_error, first_line
from utils.image import image_files
from utils.imresize import imresize, modcrop

PROG = 'check_data.py'
MATLAB_TOLERANCE = 1  # levels: the published Set5/Set14 LR files equal make_lr.py's exactly; PIL's bicubic is 5-10 off


def image_size(path):
    """(width, height) from the file's header, or None when it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any unreadable file is reported the same way
        return None


def rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert('RGB'))


def check_lr(folder, hr, scale, full=False):
    """(problems, whether LR files are missing) of one LR_bicubic/X<s> folder against the HR
    images {stem: (path, size)}."""
    lr = {os.path.basename(p): p for p in image_files(folder)}
    expected = {f'{stem}x{scale}.png': stem for stem in hr}
    problems = []
    missing, extra = sorted(set(expected) - set(lr)), sorted(set(lr) - set(expected))
    if missing:
        problems.append(f"{folder}: {len(missing)} of {len(expected)} LR images missing (e.g. {missing[0]})")
    if extra:  # test.py pairs LR and HR files by their sorted order
        problems.append(f"{folder}: {len(extra)} file(s) match no HR image (e.g. {extra[0]})")
    common = sorted(set(expected) & set(lr))
    for name in common:
        hr_path, (w, h) = hr[expected[name]]
        size = image_size(lr[name])
        if size is None:
            problems.append(f"{lr[name]}: cannot read this image")
        elif size != (w // scale, h // scale):
            problems.append(f"{lr[name]}: {size[0]}x{size[1]} px, expected {w // scale}x{h // scale} "
                            f"(HR {w}x{h} / {scale}, rounded down)")
    for name in (common if full else common[:1]) if not problems else ():  # MATLAB's bicubic: ~0.4 s a DIV2K image
        made = imresize(modcrop(rgb(hr[expected[name]][0]), scale), scale=1 / scale)
        diff = int(np.abs(made.astype(np.int16) - rgb(lr[name])).max())
        if diff > MATLAB_TOLERANCE:
            problems.append(f"{lr[name]}: differs from MATLAB bicubic of its HR image by up to {diff} levels "
                            f"(made with another resizer? make_lr.py --overwrite rewrites the folder)")
            break
    return problems, bool(missing)


def check_set(data, load_dir, full=False):
    """('ok' | 'not found' | 'broken', lines to print) for one published set."""
    hr_dir = os.path.join(load_dir, data.hr)
    if not os.path.isdir(hr_dir):
        return 'not found', [f"{hr_dir}; published: {data.source}"]
    hr, problems = {}, []
    for path in image_files(hr_dir):
        size = image_size(path)
        if size is None:
            problems.append(f"{path}: cannot read this image")
        else:
            hr[os.path.splitext(os.path.basename(path))[0]] = (path, size)
    if len(hr) + len(problems) != data.count:
        problems.append(f"{hr_dir}: {len(hr) + len(problems)} images, the published set has {data.count}")
    found = [f"HR {len(hr)}/{data.count}"]
    rebuild = []
    for scale in LR_SCALES if data.lr else ():
        folder = data.lr_folder(load_dir, scale)
        if not os.path.isdir(folder):
            problems.append(f"{folder} not found")
            rebuild.append(scale)
            continue
        lr_problems, incomplete = check_lr(folder, hr, scale, full)
        if incomplete:
            rebuild.append(scale)
        problems += lr_problems
        found.append(f"X{scale} {len(image_files(folder))}")
    checked = 'every LR file' if full else 'the first LR file of each scale'
    lines = [', '.join(found) + (f' ({checked} is MATLAB bicubic of its HR image)' if data.lr and not problems else '')]
    lines += problems
    if rebuild:  # make_lr.py keeps the files that are there and writes the others
        lines.append(f"make the missing LR files: python scripts/make_lr.py --hr {shlex.quote(hr_dir)} "
                     f"--out {shlex.quote(os.path.join(load_dir, data.lr))} --scales {' '.join(map(str, rebuild))}")
    return ('broken' if problems else 'ok'), lines


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    p.add_argument('--load-dir', default='load', help='the folder the configs call ./load (default: load)')
    p.add_argument('--full', action='store_true',
                   help='compare every LR file, not only the first of each folder, with MATLAB bicubic of its HR '
                        'image (a few minutes for DIV2K)')
    p.add_argument('sets', nargs='*', metavar='SET', help=f"check only these ({', '.join(d.name for d in SETS)})")
    args = p.parse_args(argv)
    exit_on_user_error(PROG, check, args)


def check(args):
    if not os.path.isdir(args.load_dir):
        raise UserError(f"--load-dir {args.load_dir}: no such folder")
    names = {d.name.lower(): d for d in SETS}
    unknown = [s for s in args.sets if s.lower() not in names]
    if unknown:
        raise UserError(f"unknown set {unknown[0]!r}; the published sets are {', '.join(d.name for d in SETS)}")
    chosen = [names[s.lower()] for s in args.sets] or list(SETS)
    status = {}
    for data in chosen:
        try:
            status[data.name], lines = check_set(data, args.load_dir, args.full)
        except OSError as e:  # an unreadable folder is one more broken set, not a traceback
            status[data.name], lines = 'broken', [first_line(e)]
        print(f"{data.name:<12} {status[data.name].upper() if status[data.name] == 'broken' else status[data.name]}: "
              f"{lines[0]}")
        for line in lines[1:]:
            print(f"{'':<14}{line}")
    counts = {s: sum(v == s for v in status.values()) for s in ('ok', 'broken', 'not found')}
    print(f"{counts['ok']} ok, {counts['broken']} broken, {counts['not found']} not found under {args.load_dir} "
          f"(README.md, Data, says where each set is published and how to lay it out)")
    if counts['broken'] or (args.sets and counts['not found']) or not (counts['ok'] or counts['broken']):
        sys.exit(1)


if __name__ == '__main__':
    main()
