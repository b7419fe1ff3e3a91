"""Evaluate a checkpoint with the paper's protocol (README.md, Evaluation: test.py).
One test config (--config) ends with `result: <mean PSNR>`, as the official script; a suite (--suite)
runs every one whose data is under load/."""
import csv
import io
import json
import os

from datasets import catalog
from datasets.loading import make_sr_dataset
from models import cmsr, scale2mod
from models.checkpoint import load_model
from models.evaluate import evaluate, parse_eval_type
from utils.config import get_key, load_config
from utils.data_norm import DataNorm
from utils.device import resolve_device
from utils.errors import ArgumentParser, UserError, exit_on_user_error, number_arg
from utils.files import atomic_write
from utils.image import image_files
from utils.speedups import compile_decoder

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'test')

PROTOCOL = ("protocol (official LIIF): benchmark sets on Y (BT.601 luma), `scale` pixels shaved; DIV2K on RGB, "
            "scale + 6 shaved; x2-x4 from the data set's own LR files, other scales from HR cropped to a multiple "
            "and downsampled with PIL bicubic on uint8; SR clamped to [0, 1], not rounded; mean of per-image PSNR; "
            "SSIM on Y, 11x11 Gaussian window (sigma 1.5), same shave")

SUITES = {  # (set, scale): the config configs/test/test-<set in lower case>-<scale>.yaml
    'benchmark': [(name, s) for name in ('Set5', 'Set14', 'B100', 'Urban100') for s in (2, 3, 4, 6, 8)],
    'div2k': [('DIV2K', s) for s in (2, 3, 4, 6, 12, 18, 24, 30)],
}
SUITES['all'] = SUITES['benchmark'] + SUITES['div2k']


def relocate(cfg, load_dir):
    """Point the config's './load/...' data paths at `load_dir` instead."""
    args = get_key(cfg, 'test_dataset.dataset').get('args') or {}
    for key, value in args.items():
        if key.startswith('root_path') and isinstance(value, str):
            norm = os.path.normpath(value)
            if norm == 'load' or norm.startswith('load' + os.sep):
                args[key] = os.path.join(load_dir, os.path.relpath(norm, 'load'))
    return cfg


def data_problem(cfg, load_dir):
    """(folder, what is wrong) for the config's first data folder that is missing, or that holds a
    published set with another number of images than published (its score would not be that set's)."""
    args = cfg['test_dataset']['dataset'].get('args') or {}
    for path in (v for k, v in args.items() if k.startswith('root_path') and isinstance(v, str)):
        data = catalog.owner(path, load_dir)
        if not os.path.isdir(path):
            return path, 'not found'
        if data and len(image_files(path)) != data.count:
            return path, f"holds {len(image_files(path))} of {data.name}'s {data.count} images"
    return None


def check_data(path, load_dir):
    """The test config at `path` with its data under `load_dir`, refused when data_problem finds one."""
    cfg = relocate(load_config(path), load_dir)
    folder, what = data_problem(cfg, load_dir) or (None, None)
    if what == 'not found':
        where = catalog.not_shipped(folder, load_dir) or "a root_path of the config's test_dataset.dataset.args"
        raise UserError(f"{folder}: no such image folder ({where})")
    if what:
        raise UserError(f"{folder}: {what}, an incomplete copy ({catalog.WHERE})")
    return cfg


def run_config(model, path, device, precision='fp32', cell_clip=None, load_dir='load', save_dir=None, desc='test',
               data_norm=None):
    """Per-image rows and the means of one test config; `data_norm` (sub, div), the checkpoint's
    own when it records one, replaces the config's."""
    cfg = check_data(path, load_dir)
    dataset = make_sr_dataset(cfg, 'test_dataset', seed=0)
    eval_type = cfg.get('eval_type')
    parse_eval_type(eval_type)  # a bad eval_type fails before any work
    if data_norm is not None:
        cfg['data_norm'] = {part: {'sub': [data_norm[0]], 'div': [data_norm[1]]} for part in ('inp', 'gt')}
    norm = DataNorm(cfg.get('data_norm'), device)
    if model.cmsr:
        model.cmsr.take_stats()  # count this config's images only
    rows = evaluate(model, dataset, eval_type, norm, device, precision, cell_clip=cell_clip,
                    save_dir=save_dir, desc=desc)
    summary = {k: sum(r[k] for r in rows) / len(rows) for k in ('psnr', 'ssim')}
    if model.cmsr:  # --cmsr: the fraction of output pixels rendered (None: CMSR not used, x4 and below)
        summary['cmsr_rendered'] = model.cmsr.rendered_fraction()
    return rows, summary


def cmsr_note(summary):
    if 'cmsr_rendered' not in summary:
        return ''
    if summary['cmsr_rendered'] is None:
        return ", CMSR not used (x4 and below)"
    return f", CMSR rendered {summary['cmsr_rendered']:.1%} of the pixels"


def plan_suite(suite, load_dir):
    """[(set, scale, config)] of the suite whose data is there, and [(set, scale, why not)] for the rest."""
    todo, skipped = [], []
    for name, scale in SUITES[suite]:
        path = os.path.join(CONFIG_DIR, f'test-{name.lower()}-{scale}.yaml')
        folder, what = data_problem(relocate(load_config(path), load_dir), load_dir) or (None, None)
        if what:
            skipped.append((name, scale, f"{outermost_missing(folder, load_dir)} not found" if what == 'not found'
                            else f"{folder} {what}"))
        else:
            todo.append((name, scale, path))
    if not todo:
        sets, partial = ', '.join(dict.fromkeys(name for name, *_ in skipped)), [w for *_, w in skipped if 'holds' in w]
        raise UserError(f"suite {suite}: no complete data under {load_dir} for {sets} ({''.join(partial[:1])}"
                        f"{'; ' if partial else ''}they are not shipped with the code: {catalog.WHERE})")
    return todo, skipped


def run_suite(model, todo, device, precision='fp32', cell_clip=None, load_dir='load', save_dir=None, data_norm=None):
    """(results, per-image rows) of the planned (set, scale, config)s."""
    results, per_image = [], []
    for name, scale, path in todo:
        out = os.path.join(save_dir, name, f'x{scale}') if save_dir else None
        rows, summary = run_config(model, path, device, precision, cell_clip, load_dir, out, desc=f'{name} x{scale}',
                                   data_norm=data_norm)
        results.append({'dataset': name, 'scale': scale, **summary, 'images': len(rows)})
        per_image += [{'dataset': name, 'scale': scale, **row} for row in rows]
        print(f"{name} x{scale}: PSNR {summary['psnr']:.4f} dB, SSIM {summary['ssim']:.4f} ({len(rows)} images)"
              + cmsr_note(summary))
    return results, per_image


def outermost_missing(path, load_dir):
    """load/benchmark/B100 rather than load/benchmark/B100/HR when the whole set is missing."""
    top = os.path.normpath(load_dir)
    while os.path.dirname(path) not in ('', top) and not os.path.isdir(os.path.dirname(path)):
        path = os.path.dirname(path)
    return path


def skipped_lines(skipped):
    """One line a set: its skipped scales and why (the folders missing or incomplete)."""
    by_set = {}
    for name, scale, why in skipped:
        scales, reasons = by_set.setdefault(name, ([], []))
        scales.append(f"x{scale:g}")
        if why not in reasons:
            reasons.append(why)
    return [f"  {name:<9} {' '.join(scales)}: {', '.join(reasons)}" for name, (scales, reasons) in by_set.items()]


def table(results, metric, digits, title=None):
    """Rows: data sets; columns: scales."""
    scales = sorted({r['scale'] for r in results})
    value = {(r['dataset'], r['scale']): r[metric] for r in results}
    lines = [f"{title or metric.upper():<10}" + ''.join(f"{'x' + format(s, 'g'):>10}" for s in scales)]
    for name in dict.fromkeys(r['dataset'] for r in results):
        cells = [value.get((name, s)) for s in scales]
        lines.append(f"{name:<10}" + ''.join(f"{'-' if v is None else format(v, f'.{digits}f'):>10}" for v in cells))
    return '\n'.join(lines)


def to_csv(rows, fields):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_report(folder, args, results, per_image, skipped):
    """Write results.csv, results.json and per_image.csv; returns the text to print."""
    os.makedirs(folder, exist_ok=True)
    files = {
        'results.csv': to_csv(results, ['dataset', 'scale', 'psnr', 'ssim', 'images']
                              + (['cmsr_rendered'] if args.cmsr else [])),
        'per_image.csv': to_csv(per_image, ['dataset', 'scale', 'image', 'psnr', 'ssim']),
        'results.json': json.dumps({'model': args.model, 'precision': args.precision, 'cell_clip': args.cell_clip,
                                    'cmsr': args.cmsr, 'protocol': PROTOCOL, 'results': results,
                                    'skipped': [f"{name} x{scale:g} ({why})" for name, scale, why in skipped]},
                                   indent=1),
    }
    for name, text in files.items():
        atomic_write(os.path.join(folder, name), lambda f, text=text: f.write(text.encode()))
    lines = ['', table(results, 'psnr', 4), '', table(results, 'ssim', 4), '']
    if args.cmsr:
        lines += [table(results, 'cmsr_rendered', 3, title='CMSR'), '(fraction of the pixels CMSR rendered)', '']
    if skipped:
        lines += [f"skipped, no data ({catalog.WHERE}):"] + skipped_lines(skipped) + ['']
    lines.append(f"written: {', '.join(os.path.join(folder, n) for n in files)}")
    return '\n'.join(lines)


def parse_args(argv=None):
    p = ArgumentParser(prog='test.py', description=__doc__.split('\n')[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument('--config', help='a test config, e.g. configs/test/test-set14-2.yaml')
    what.add_argument('--suite', choices=sorted(SUITES), help='every set and scale of the paper found under load/')
    p.add_argument('--model', required=True, help='checkpoint (official format)')
    p.add_argument('--load-dir', default='load', help="the folder the configs' ./load/ paths point at (default: load)")
    p.add_argument('--report', help='suite: folder for results.csv, results.json, per_image.csv '
                                    '(default: save/test/<checkpoint name>)')
    p.add_argument('--save-dir', help='write the SR images here (<set>/x<scale>/<image>.png)')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'],
                   help='auto (default): cuda when available, else cpu')
    p.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'fp16'],
                   help='fp32 (default, no autocast), or torch.autocast with bf16 / fp16 (fp16 is for GPUs)')
    p.add_argument('--cell-clip', type=number_arg(1), nargs='?', const=4.0, default=None, metavar='S',
                   help='beyond scale S (default 4, the training maximum) give the decoder the cell of '
                        'scale S, as LTE/LMF do; off unless given')
    p.add_argument('--no-ema', action='store_true', help="use the trained weights even when the checkpoint has an EMA")
    p.add_argument('--cmsr', nargs='?', const=scale2mod.BESIDE, metavar='TABLE',
                   help="LM-LIIF, LM-LTE: render beyond x4 with CMSR and this Scale2Mod table (YAML, "
                        "scripts/calibrate_cmsr.py; without TABLE the one beside the checkpoint, NAME-cmsr.yaml); "
                        "LMF evaluates it with --cell-clip")
    p.add_argument('--compile', action='store_true',
                   help='decode through torch.compile (the same results, faster once compiled, see '
                        'benchmarks/RESULTS.md; the first images wait while it compiles)')
    return p.parse_args(argv)


def run(args):
    if args.config:
        check_data(args.config, args.load_dir)  # before the model loads
    else:
        todo, skipped = plan_suite(args.suite, args.load_dir)
    device = resolve_device(args.device)
    model, data_norm = load_model(args.model, device, ema=not args.no_ema, with_data_norm=True)
    if args.cmsr:
        args.cmsr = cmsr.attach(model, args.cmsr, args.model)
    compile_note = compile_decoder(model, device) if args.compile else None
    options = dict(device=device, precision=args.precision, cell_clip=args.cell_clip, load_dir=args.load_dir,
                   data_norm=data_norm)
    print(PROTOCOL)
    print(f"model {args.model} on {device.type}, {args.precision}"
          + (f", cell clip at x{args.cell_clip:g} (cell of scale {args.cell_clip:g} beyond it)" if args.cell_clip else '')
          + (', compiled decoder' if args.compile and not compile_note else '')
          + (f", CMSR with {args.cmsr}" if args.cmsr else '')
          + (f", data_norm of the checkpoint (sub {data_norm[0]}, div {data_norm[1]})" if data_norm else ''))
    if compile_note:
        print(compile_note)
    if args.config:
        rows, summary = run_config(model, args.config, save_dir=args.save_dir, **options)
        print(f"{len(rows)} images, PSNR {summary['psnr']:.4f} dB, SSIM {summary['ssim']:.4f}" + cmsr_note(summary))
        print(f"result: {summary['psnr']:.4f}")
        return
    report = args.report or os.path.join('save', 'test', os.path.splitext(os.path.basename(args.model))[0])
    results, per_image = run_suite(model, todo, save_dir=args.save_dir, **options)
    print(write_report(report, args, results, per_image, skipped))


def main(argv=None):
    exit_on_user_error('test.py', run, parse_args(argv))


if __name__ == '__main__':
    main()
