"""test.py's work: run test configs (configs/test/*.yaml) and the paper's tables, write reports."""
import csv
import io
import json
import os

from .config import get_key, load_config
from .data_norm import DataNorm
from .evaluate import evaluate, parse_eval_type
from .files import atomic_write
from .training import make_sr_dataset

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs', 'test')

PROTOCOL = ("protocol (official LIIF): benchmark sets on Y (BT.601 luma), `scale` pixels shaved; DIV2K on RGB, "
            "scale + 6 shaved; x2-x4 from the data set's own LR files, other scales from HR cropped to a multiple "
            "and downsampled with PIL bicubic on uint8; SR clamped to [0, 1], not rounded; mean of per-image PSNR; "
            "SSIM on Y, 11x11 Gaussian window (sigma 1.5), same shave")

BENCHMARK_SETS = [('Set5', 'set5'), ('Set14', 'set14'), ('B100', 'b100'), ('Urban100', 'urban100')]
SUITES = {
    'benchmark': [(name, key, s) for name, key in BENCHMARK_SETS for s in (2, 3, 4, 6, 8)],
    'div2k': [('DIV2K', 'div2k', s) for s in (2, 3, 4, 6, 12, 18, 24, 30)],
}
SUITES['all'] = SUITES['benchmark'] + SUITES['div2k']


class TestError(Exception):
    """A test run that cannot go on; the message is one line."""


def relocate(cfg, load_dir):
    """Point the config's './load/...' data paths at `load_dir` instead."""
    args = get_key(cfg, 'test_dataset.dataset').get('args') or {}
    for key, value in args.items():
        if key.startswith('root_path') and isinstance(value, str):
            norm = os.path.normpath(value)
            if norm == 'load' or norm.startswith('load' + os.sep):
                args[key] = os.path.join(load_dir, os.path.relpath(norm, 'load'))
    return cfg


def data_paths(cfg):
    args = cfg['test_dataset']['dataset'].get('args') or {}
    return [v for k, v in args.items() if k.startswith('root_path')]


def run_config(model, path, device, precision='fp32', cell_clip=None, load_dir='load', save_dir=None, desc='test'):
    """Per-image rows and the means of one test config."""
    cfg = relocate(load_config(path), load_dir)
    dataset = make_sr_dataset(cfg, 'test_dataset', seed=0)
    eval_type = cfg.get('eval_type')
    parse_eval_type(eval_type)  # a bad eval_type fails before any work
    norm = DataNorm(cfg.get('data_norm'), device)
    rows = evaluate(model, dataset, eval_type, norm, device, precision, cell_clip=cell_clip,
                    save_dir=save_dir, desc=desc)
    return rows, {k: sum(r[k] for r in rows) / len(rows) for k in ('psnr', 'ssim')}


def run_suite(model, suite, device, precision='fp32', cell_clip=None, load_dir='load', save_dir=None):
    """Every (set, scale) of the suite whose data exists: (results, per-image rows, skipped)."""
    results, per_image, skipped = [], [], []
    for name, key, scale in SUITES[suite]:
        path = os.path.join(CONFIG_DIR, f'test-{key}-{scale}.yaml')
        missing = [p for p in data_paths(relocate(load_config(path), load_dir)) if not os.path.isdir(p)]
        if missing:
            skipped.append(f"{name} x{scale} ({missing[0]} not found)")
            continue
        out = os.path.join(save_dir, name, f'x{scale}') if save_dir else None
        rows, summary = run_config(model, path, device, precision, cell_clip, load_dir, out, desc=f'{name} x{scale}')
        results.append({'dataset': name, 'scale': scale, **summary, 'images': len(rows)})
        per_image += [{'dataset': name, 'scale': scale, **row} for row in rows]
        print(f"{name} x{scale}: PSNR {summary['psnr']:.4f} dB, SSIM {summary['ssim']:.4f} ({len(rows)} images)")
    if not results:
        raise TestError(f"suite {suite}: no data found under {load_dir} (skipped: {'; '.join(skipped)})")
    return results, per_image, skipped


def table(results, metric, digits):
    """Rows: data sets; columns: scales."""
    sets = list(dict.fromkeys(r['dataset'] for r in results))
    scales = sorted({r['scale'] for r in results})
    value = {(r['dataset'], r['scale']): r[metric] for r in results}
    lines = [f"{metric.upper():<10}" + ''.join(f"{'x' + format(s, 'g'):>10}" for s in scales)]
    for name in sets:
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
        'results.csv': to_csv(results, ['dataset', 'scale', 'psnr', 'ssim', 'images']),
        'per_image.csv': to_csv(per_image, ['dataset', 'scale', 'image', 'psnr', 'ssim']),
        'results.json': json.dumps({'model': args.model, 'precision': args.precision, 'cell_clip': args.cell_clip,
                                    'protocol': PROTOCOL, 'results': results, 'skipped': skipped}, indent=1),
    }
    for name, text in files.items():
        atomic_write(os.path.join(folder, name), lambda f, text=text: f.write(text.encode()))
    lines = ['', table(results, 'psnr', 4), '', table(results, 'ssim', 4), '']
    if skipped:
        lines.append(f"skipped ({len(skipped)}, no data): " + '; '.join(skipped))
    lines.append(f"written: {', '.join(os.path.join(folder, n) for n in files)}")
    return '\n'.join(lines)
