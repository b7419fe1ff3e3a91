"""Make the Scale2Mod table that CMSR (controllable multi-scale rendering) reads, from a trained
latent-modulated checkpoint (LM-LIIF, LM-LTE, LM-CiaoSR) and a folder of HR images, with the
official LMF calibration (init_cmsr; the algorithm is in models/cmsr_calibration.py):

    python scripts/calibrate_cmsr.py --model save/_train_edsr-baseline-lmliif/epoch-last.pth \\
        --hr load/div2k/DIV2K_train_HR --out save/cmsr/edsr-b_lm-liif_mse2e-5.yaml

Each HR image is cut to a multiple of the scale at its top left and downsampled by PIL bicubic
at every target scale (--scales, default the official x2 x3 x4 x6 x12 x18), as the official
calibration data set does; no ground truth is used: the model's own render at the target scale
is the reference. Writes one YAML file {target scale: {decode scale: threshold}} (the official
format; test.py and demo.py read it with --cmsr), and prints a diagnostic of CMSR's premise: per
image, the Spearman correlation over its LR pixels of the modulation strength with the local
detail (3x3 standard deviation of the grey level) and with the strength a flat patch of the
same grey gets; and the share of the output pixels each level of the table takes on these
images. On a CPU an image takes seconds per scale; --first-k calibrates on the first N images.
Bad input gives one line `calibrate_cmsr.py: error: ...` and exit code 2.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root, from anywhere

import torch
import torch.nn.functional as F
from tqdm import tqdm

import datasets
from models import scale2mod
from models.checkpoint import OFFICIAL_DATA_NORM, load_model
from models.cmsr import decode_levels, level_mask
from models.cmsr_calibration import calibrate_image
from utils.data_norm import normalise
from utils.device import resolve_device
from utils.errors import UserError, exit_on_user_error, first_line

PROG = 'calibrate_cmsr.py'
OFFICIAL_SCALES = ['2', '3', '4', '6', '12', '18']  # configs/cmsr/init-div2k-x*.yaml


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help='a trained LM-LIIF, LM-LTE or LM-CiaoSR checkpoint')
    p.add_argument('--hr', required=True, help='folder of HR images (officially DIV2K_train_HR)')
    p.add_argument('--out', required=True, help='the YAML table to write')
    p.add_argument('--scales', nargs='+', default=OFFICIAL_SCALES, metavar='S',
                   help=f"target scales, each > 1 (default: {' '.join(OFFICIAL_SCALES)})")
    p.add_argument('--mse-threshold', type=float, default=2e-5,
                   help='the largest MSE (normalised space) a pixel bin may get from a lower decode scale '
                        '(default: %(default)g, the official tables\')')
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


def ranks(x):
    """Ranks 0..n-1 of a 1-D tensor (ties broken by position)."""
    out = torch.empty_like(x, dtype=torch.float64)
    out[x.argsort()] = torch.arange(len(x), dtype=torch.float64, device=x.device)
    return out


def spearman(a, b):
    """Spearman's rank correlation of two equally long 1-D tensors."""
    ra, rb = ranks(a.flatten()), ranks(b.flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def local_std(grey):
    """The standard deviation of each pixel's 3x3 neighbourhood of a (h, w) image (edges replicated)."""
    patches = F.unfold(F.pad(grey[None, None], (1, 1, 1, 1), mode='replicate'), 3)
    return patches.std(1, unbiased=False).view(grey.shape)


@torch.no_grad()
def flat_strengths(model, cell, norm, levels=33, size=8):
    """The strength the model gives flat grey patches of `levels` grey values 0..1 (normalised
    by norm = (sub, div)), at a patch's centre pixel, with the hypernet cell `cell` (2,): (levels,)."""
    grey = torch.linspace(0, 1, levels, device=cell.device)
    model.gen_feat(normalise(grey.view(-1, 1, 1, 1).expand(levels, 3, size, size), norm))
    return model.shift_strength(cell.view(1, 1, 2).expand(levels, 1, 2))[:, 0, size // 2, size // 2]


def premise(model, lr, strength, cell, norm):
    """Spearman correlations, over an image's LR pixels, of the modulation strength (h, w) with
    the LR's local 3x3 standard deviation (of the grey level, mean RGB in [0, 1]) and with the
    strength a flat patch of the same grey gets: (with detail, with grey)."""
    grey = lr.mean(0)
    flat = flat_strengths(model, cell, norm)
    pos = grey.flatten() * (len(flat) - 1)  # linear interpolation between the grey levels
    low = pos.floor().long().clamp(max=len(flat) - 2)
    same_grey = torch.lerp(flat[low], flat[low + 1], (pos - low).to(flat.dtype))
    return spearman(strength, local_std(grey)), spearman(strength, same_grey)


def level_shares(s2m, scale, strength):
    """The share of the output pixels each level of the table for `scale` takes for an image
    whose LR pixels have these strengths (h, w): {decode scale: share} (every pixel of an LR
    pixel goes to the same level, so LR pixels count alike)."""
    levels, thresholds = decode_levels(s2m, scale)
    return {d: float(level_mask(strength, thresholds, i, len(levels)).float().mean()) for i, d in enumerate(levels)}


def diagnostic(model, norm, seen, s2m, names):
    """The premise per image and scale, and the levels' shares of the output pixels."""
    lines = ['premise: Spearman correlation of the modulation strength, over each image\'s LR pixels, '
             'with the local detail (3x3 std of the grey level) / with a flat patch of the same grey']
    per_image = {name: [] for name in names}
    for scale, records in seen.items():
        for name, (lr, record) in zip(names, records):
            per_image[name].append((scale, *premise(model, lr, record['strength'].float(), record['cell'], norm)))
    for name, rows in per_image.items():
        lines.append(f"  {name}: " + '  '.join(f"x{s:g} {d:+.2f} / {g:+.2f}" for s, d, g in rows))
    for i, scale in enumerate(seen):
        detail = [rows[i][1] for rows in per_image.values()]
        grey = [rows[i][2] for rows in per_image.values()]
        lines.append(f"  x{scale:g} median: detail {statistics.median(detail):+.2f}, grey {statistics.median(grey):+.2f}")
    lines.append('levels: share of the output pixels each decode scale of the table renders, on these images')
    for scale, records in seen.items():
        shares, pixels = {}, 0
        for _, record in records:
            n = record['strength'].numel()
            for d, share in level_shares(s2m, scale, record['strength']).items():
                shares[d] = shares.get(d, 0) + share * n
            pixels += n
        lines.append(f"  x{scale:g}: " + ', '.join(f"x{d:g} {v / pixels:.1%}" for d, v in shares.items()))
    return lines


def calibrate(args):
    scales = check_args(args)
    device = resolve_device(args.device)
    model, data_norm = load_model(args.model, device, with_data_norm=True)
    if not model.supports_cmsr:
        raise UserError(f"--model {args.model}: holds a {type(model).__name__} model, not a latent-modulated one "
                        f"(CMSR calibration needs an lmliif, lmlte or lmciaosr checkpoint)")
    norm = data_norm or OFFICIAL_DATA_NORM
    folder = datasets.make({'name': 'image-folder', 'args': {'root_path': args.hr, 'first_k': args.first_k}})
    s2m, seen = {}, {}
    bar = tqdm(total=len(folder) * len(scales), desc='calibrating', unit='img', disable=None)
    for scale in scales:
        table = s2m[scale] = scale2mod.initial(scale)
        images = datasets.make({'name': 'sr-implicit-downsampled', 'args': {'scale_min': scale}},
                               args={'dataset': folder})
        seen[scale] = []
        for i in range(len(images)):
            lr, _ = images.pair(i)
            record = calibrate_image(model, normalise(lr, norm).unsqueeze(0).to(device), scale, args.mse_threshold,
                                     table, chunk=args.chunk)
            seen[scale].append((lr.to(device), record))
            bar.update()
        bar.write(f"x{scale:g}: " + ', '.join(f"{d:g}: {t:.2f}" for d, t in sorted(table.items())))
    bar.close()
    print('\n'.join(diagnostic(model, norm, seen, s2m, [folder.name(i) for i in range(len(folder))])))
    header = (f"Scale2Mod tables for CMSR (models/cmsr.py), made by scripts/calibrate_cmsr.py\n"
              f"model: {args.model}\nimages: {len(folder)} from {args.hr}\nmse_threshold: {args.mse_threshold:g}")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        scale2mod.save(args.out, s2m, header)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot write ({first_line(e)})") from None
    print(f"wrote {args.out} (target scales {', '.join(f'x{s:g}' for s in scales)}, {len(folder)} images)")


def main(argv=None):
    with torch.no_grad():
        exit_on_user_error(PROG, calibrate, parse_args(argv))


if __name__ == '__main__':
    main()
