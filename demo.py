"""Upscale an image, or a folder of images, to any scale or size with a LIIF checkpoint (by default
the shipped save/pretrained/edsr-baseline-liif.pth); README.md, demo.py, shows the options."""
import argparse
import math
import os
import sys
import time

import torch
from tqdm import tqdm

from models import cmsr, scale2mod
from models.upscale import upscale, upscale_image
from models.checkpoint import OFFICIAL_DATA_NORM, load_model
from utils.errors import ArgumentParser, UserError, exit_on_user_error, first_line, number_arg
from utils.device import autocast, resolve_device
from utils.image import OUTPUT_FORMATS, image_files, read_image, writable_kind, write_image
from utils.speedups import compile_decoder

PROG = 'demo.py'
DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'save', 'pretrained', 'edsr-baseline-liif.pth')
MAX_SIDE = 32768            # output pixels per side
MAX_PIXELS = 1 << 28        # output pixels in all (268 Mpx, about 3 GiB as float32 RGB)
PROGRESS_PIXELS = 100_000   # a progress bar for outputs larger than this (seconds of work on a CPU)
DEFAULT_OUTPUT_DIR = os.path.join('save', 'demo')  # git-ignored, and never beside the inputs

EPILOG = f"""\
output files:
  The extension picks the format: .png, .tif/.tiff, .webp (lossless), .jpg/.jpeg (quality 95),
  .bmp. Grayscale stays grayscale, alpha is upscaled separately (a format without alpha is
  refused for it), 16 bits stay 16 in .png (other formats get 8, with a warning). A folder's
  images FILE.ext go to the --output folder as FILE.png. Without --output: {DEFAULT_OUTPUT_DIR}/,
  named after the input, the size and a --model other than the default (photo.jpg --scale 4:
  {DEFAULT_OUTPUT_DIR}/photo_x4.png), with -1, -2, ... rather than replacing an earlier result.

output size:
  round(h * sy) x round(w * sx) (halves round up) for --scale, exactly H x W for --resolution
  (a warning says so when that changes the aspect ratio); at most {MAX_SIDE} px per side and
  {MAX_PIXELS} px ({MAX_PIXELS / 1e6:.0f} Mpx) in all.
"""


def warn(message):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def parse_scale(text):
    """'2.5' -> (2.5, 2.5); '2,3.5' -> (2.0, 3.5) as (height, width) factors."""
    parts = text.split(',')
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r}: expected S or SY,SX (e.g. 4 or 2,3.5)")
    values = [number_arg(0, strict=True)(p.strip()) for p in parts]
    return (values[0], values[-1])


def parse_resolution(text):
    """'1080,1920' -> (1080, 1920) as (height, width)."""
    values = [int(p) if p.strip().isdigit() else 0 for p in text.split(',')]
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected H,W in pixels, each at least 1 (e.g. 1080,1920)")
    return tuple(values)


def build_parser():
    p = ArgumentParser(prog=PROG, description="Upscale images to any scale or size with a LIIF model.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--input', required=True, metavar='PATH', help="an image file, or a folder of images")
    p.add_argument('--output', metavar='PATH', help="output file (a folder when --input is a folder); see below")
    p.add_argument('--model', default=DEFAULT_MODEL, metavar='CKPT',
                   help="checkpoint file ({'model': {'name', 'args', 'sd'}}; default: the shipped "
                        "save/pretrained/edsr-baseline-liif.pth, see its README.md)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument('--scale', type=parse_scale, metavar='S|SY,SX',
                      help="upscaling factor: S (e.g. 2.5) or per axis SY,SX (height, width; e.g. 2,3.5)")
    size.add_argument('--resolution', type=parse_resolution, metavar='H,W', help="output size H,W in pixels (e.g. 1080,1920)")
    p.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                   help="auto (default): cuda when available, else cpu")
    p.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32',
                   help="fp32 (default, no autocast), or torch.autocast with bf16 / fp16 (fp16 is for GPUs: slow on CPU)")
    p.add_argument('--compile', action='store_true',
                   help="decode through torch.compile: pays off on many or large images (compiling takes a while)")
    p.add_argument('--cmsr', nargs='?', const=scale2mod.BESIDE, metavar='TABLE',
                   help="LM-LIIF, LM-LTE: beyond x4, render with CMSR (fewer pixels rendered, the rest interpolated) "
                        "and this Scale2Mod table (YAML, from scripts/calibrate_cmsr.py; without TABLE the one beside "
                        "the checkpoint, NAME-cmsr.yaml); the image is then decoded whole, not in tiles")
    p.add_argument('--tile', type=number_arg(1, kind=int), default=256, metavar='N',
                   help="side of the LR tiles the model runs on (default 256); smaller uses less memory")
    return p


def output_size(in_size, scale, resolution, path):
    """(H, W) for an input of in_size = (h, w), checked against the limits."""
    (h, w), (sy, sx) = in_size, scale or (0, 0)
    H, W = resolution or (math.floor(h * sy + 0.5), math.floor(w * sx + 0.5))
    what = f"--resolution {size_tag(scale, resolution)}" if resolution else f"--scale {size_tag(scale, None)[1:]}"
    if H < 1 or W < 1:
        raise UserError(f"{what}: output for {path} ({in_size[1]}x{in_size[0]} px) would be {W}x{H} px (empty)")
    if max(H, W) > MAX_SIDE or H * W > MAX_PIXELS:
        raise UserError(f"{what}: output for {path} would be {W}x{H} px (width x height), over the limit of {MAX_SIDE} px "
                        f"per side and {MAX_PIXELS} px ({MAX_PIXELS / 1e6:.0f} Mpx) in all")
    return H, W


def size_tag(scale, resolution):
    """'x4', 'x2,3.5' or '1080,1920': the size asked for, as given on the command line."""
    if resolution is not None:
        return f"{resolution[0]},{resolution[1]}"
    sy, sx = scale
    return f"x{sy:g}" + (f",{sx:g}" if sx != sy else '')


def model_tag(model):
    """'' for the default model, else '_' + the checkpoint's name (with its run folder's for train.py's epoch-*.pth)."""
    if os.path.abspath(model) == DEFAULT_MODEL:
        return ''
    stem = os.path.splitext(os.path.basename(model))[0]
    run = os.path.basename(os.path.dirname(os.path.abspath(model))).lstrip('_')  # save/_quickstart: quickstart
    return f"_{run}-{stem}" if stem.startswith('epoch-') else f"_{stem}"


def default_output(inp, tag):
    """save/demo/<input>_<tag>[.png], with -1, -2, ... when an earlier result has that name."""
    name = os.path.basename(os.path.normpath(os.path.abspath(inp)))  # a folder given as '.' or 'photos/'
    stem, ext = (name, '') if os.path.isdir(inp) else (os.path.splitext(name)[0], '.png')
    path = os.path.join(DEFAULT_OUTPUT_DIR, f'{stem}_{tag}')
    n = next(n for n in range(1 << 20) if not os.path.exists(f"{path}{f'-{n}' if n else ''}{ext}"))
    return f"{path}{f'-{n}' if n else ''}{ext}"


def plan_jobs(inp, out, tag):
    """[(input file, output file)] for --input / --output; `tag` names default outputs."""
    if not os.path.exists(inp):
        raise UserError(f"--input {inp}: no such file or folder")
    out = out or default_output(inp, tag)
    if os.path.isdir(inp):
        if os.path.isdir(out) and os.path.samefile(out, inp):
            raise UserError(f"--output {out}: is the input folder, so a later run would read the outputs as inputs "
                            f"(give another folder; without --output: {default_output(inp, tag)})")
        if os.path.exists(out) and not os.path.isdir(out):
            raise UserError(f"--output {out}: is a file, but --input {inp} is a folder (give a folder)")
        if not os.path.exists(out) and os.path.splitext(out)[1].lower() in OUTPUT_FORMATS:
            raise UserError(f"--output {out}: names a file, but --input {inp} is a folder (give a folder)")
        files = image_files(inp)
        if not files:
            raise UserError(f"--input {inp}: no image files in this folder")
        jobs = [(f, os.path.join(out, os.path.splitext(os.path.basename(f))[0] + '.png')) for f in files]
        seen = {}
        for f, o in jobs:
            if o in seen:
                raise UserError(f"--input {inp}: {os.path.basename(seen[o])} and {os.path.basename(f)} "
                                f"would both be written to {o}")
            seen[o] = f
    else:
        if os.path.isdir(out):
            out = os.path.join(out, os.path.splitext(os.path.basename(inp))[0] + '.png')
        jobs = [(inp, out)]
    inputs = {os.path.realpath(f) for f, _ in jobs}
    for f, o in jobs:
        if os.path.realpath(o) in inputs:
            raise UserError(f"--output {o}: would overwrite an input image")
    return jobs


def aspect_note(plans, resolution):
    """One line when --resolution stretches the inputs (allowed, but the user should notice)."""
    if resolution is None:
        return None
    H, W = resolution
    # kept: one side equals the other scaled by the input's aspect ratio, up to rounding
    stretched = [(src, h, w) for src, (h, w) in plans if abs(W - w * H / h) > 1 and abs(H - h * W / w) > 1]
    if not stretched:
        return None
    src, h, w = stretched[0]
    which = f"{src} ({w}x{h} px" if len(plans) == 1 else \
        f"{len(stretched)} of the {len(plans)} images, e.g. {src} ({w}x{h} px"
    return (f"--resolution {H},{W} changes the aspect ratio of {which} to {W}x{H}: x{W / w:.3g} wide, "
            f"x{H / h:.3g} high); --scale keeps it")


def check_folder(dst):
    """Fail before any work when `dst` cannot be written: its nearest existing folder must be a writable one."""
    folder = os.path.dirname(os.path.abspath(dst))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
        raise UserError(f"--output {dst}: cannot be written ({folder} is not a writable folder)")


def check_model(model, path, device):
    """Fail early, with one line, for a checkpoint whose model cannot upscale."""
    try:
        upscale(model, torch.zeros(3, 4, 4, device=device), (6, 6))
    except Exception as e:  # noqa: BLE001 - any failure here means the model does not fit the demo
        raise UserError(f"--model {path}: its {type(model).__name__} cannot upscale an RGB image ({first_line(e)})") \
            from None


def run(args):
    jobs = plan_jobs(args.input, args.output, size_tag(args.scale, args.resolution) + model_tag(args.model))

    # cheap checks of every input before any heavy work: readable, size within limits, and an
    # output format that can hold it
    plans, sizes = [], []
    for src, dst in jobs:
        img = read_image(src)
        size = output_size(img.size, args.scale, args.resolution, src)
        kind, note = writable_kind(dst, img.kind)
        check_folder(dst)
        if note:
            warn(note)
        plans.append((src, dst, size, kind, img if len(jobs) == 1 else None))
        sizes.append((src, img.size))
        del img
    if note := aspect_note(sizes, args.resolution):
        warn(note)
    device = resolve_device(args.device)
    precision = autocast(device, args.precision)
    print(f"{PROG}: loading {args.model} on {device.type}", flush=True)
    model, data_norm = load_model(args.model, device=device, with_data_norm=True)
    data_norm = data_norm or OFFICIAL_DATA_NORM  # the official demo's normalisation
    check_model(model, args.model, device)
    if args.cmsr:
        args.cmsr = cmsr.attach(model, args.cmsr, args.model)
    if args.compile and (note := compile_decoder(model, device)):
        warn(note)

    for src, dst, size, kind, img in tqdm(plans, desc='images', unit='img', disable=len(plans) == 1, file=sys.stderr):
        start = time.time()
        img = img if img is not None else read_image(src)
        with torch.no_grad(), precision:
            alpha = img.alpha.to(device) if img.alpha is not None else None
            try:
                pixels, alpha = upscale_image(model, img.pixels.to(device), alpha, size, tile=args.tile,
                                              data_norm=data_norm, progress=size[0] * size[1] > PROGRESS_PIXELS)
            except torch.OutOfMemoryError:
                raise UserError(f"out of memory on {device}: try a smaller --tile or a smaller output") from None
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        alpha = alpha.cpu() if alpha is not None else None
        write_image(dst, pixels.cpu(), alpha, bits=kind.bits, icc_profile=kind.icc_profile)
        fraction = model.cmsr.rendered_fraction() if model.cmsr else None
        rendered = f", CMSR rendered {fraction:.1%} of the pixels" if fraction is not None else ''
        tqdm.write(f"{PROG}: wrote {dst} ({size[1]}x{size[0]} px, {kind.describe()}) "
                   f"in {time.time() - start:.1f} s{rendered}", file=sys.stdout)


def main(argv=None):
    try:
        exit_on_user_error(PROG, run, build_parser().parse_args(argv))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == '__main__':
    main()
