"""One LIIF training step (forward, L1 loss, backward, Adam), plain vs fast decoder, float32 vs bf16,
optionally with the speed-ups (channels-last, torch.compile, CUDA graphs) and fed by the real
input pipeline.

    python benchmarks/bench_train_step.py                  # EDSR-baseline-LIIF, batch 16, 48x48, 2304 queries
    python benchmarks/bench_train_step.py --device cuda --channels-last --compile --cuda-graphs \\
        --data load/div2k/DIV2K_train_HR --workers 8

The first four cases use a synthetic batch (random LR patches, query coordinates and targets at
random scales in [1, 4]): a step's cost does not depend on the pixel values. With a speed-up flag,
the fast decoder runs again with those speed-ups (train.py's config switches of the same names).
With --data, the best of those cases runs fed by the training input pipeline as train.py builds
it on that device (workers serving crops; on a GPU, HR crops with `finish_batch` on the GPU), and
its time per step includes waiting for data. All cases run in this one process so the ratios are
measured under the same conditions. Figures only: nothing passes or fails.
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader

from common import SPEC, fmt_s, median_time, paper_training_set, print_device, sync  # also puts the repo on sys.path
import models  # noqa: E402
from datasets.device_synthesis import to_device  # noqa: E402
from utils.data_norm import DataNorm  # noqa: E402
from utils.speedups import SpeedUps  # noqa: E402
from utils.training import train_step  # noqa: E402

WARMUP_COMPILED = 5  # compiling, then recording CUDA graphs, takes the first few calls


def synthetic_batch(batch, inp_size, sample_q, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = 1 + 3 * torch.rand(batch, 1, 1, generator=g)
    return {'inp': torch.rand(batch, 3, inp_size, inp_size, generator=g).to(device),
            'coord': (torch.rand(batch, sample_q, 2, generator=g) * 2 - 1).to(device),
            'cell': (2 / (inp_size * scale)).expand(batch, sample_q, 2).contiguous().to(device),
            'gt': torch.rand(batch, sample_q, 3, generator=g).to(device)}


def make_trainer(form, device, speed):
    """step(batch, precision) of a fresh EDSR-baseline-LIIF with Adam: train.py's training step."""
    torch.manual_seed(0)
    core = speed.prepare(models.make(SPEC).to(device).train())
    core.decoder = form
    model = speed.wrap(core)
    optimizer = torch.optim.Adam(core.parameters(), lr=1e-4)
    norm = DataNorm({'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}, device)
    return lambda batch, precision: train_step(model, optimizer, batch, norm, precision, speed)


def pipeline_time(step, precision, args, device):
    """Seconds per step over --steps steps fed by the real input pipeline (after warm-up steps)."""
    dataset = paper_training_set(args.data, args.inp_size, args.sample_q)
    dataset.hr_only = device.type == 'cuda'  # train.py's lr_on_device default
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=args.workers,
                        pin_memory=device.type == 'cuda', persistent_workers=args.workers > 0)
    batches = iter(loader)

    def fed_step():
        step(to_device(next(batches), device, dataset.inp_size if dataset.hr_only else None), precision)

    for _ in range(WARMUP_COMPILED):
        fed_step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        fed_step()
    sync(device)
    return (time.perf_counter() - t0) / args.steps, len(dataset.dataset.files)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--inp-size', type=int, default=48)
    p.add_argument('--sample-q', type=int, default=2304)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--channels-last', action='store_true', help='add cases with channels-last convolutions')
    p.add_argument('--compile', action='store_true', help='add cases with torch.compile')
    p.add_argument('--cuda-graphs', action='store_true', help='add cases with CUDA graphs (implies --compile)')
    p.add_argument('--data', help='a folder of training images: add a case fed by the real input pipeline')
    p.add_argument('--workers', type=int, default=8, help='DataLoader workers for --data (default: %(default)s)')
    p.add_argument('--steps', type=int, default=200, help='timed steps for --data (default: %(default)s)')
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print_device(torch.get_num_threads(), device)
    print(f'step   : EDSR-baseline-LIIF, batch {args.batch}, {args.inp_size}x{args.inp_size} LR, '
          f'{args.sample_q} queries per patch, Adam; median of {args.repeats} steps after warm-up')
    batch = synthetic_batch(args.batch, args.inp_size, args.sample_q, device)
    eager = SpeedUps()
    speed = SpeedUps.from_config({'channels_last': args.channels_last, 'compile': args.compile,
                                  'cuda_graphs': args.cuda_graphs}, device)
    for note in speed.notes:
        print(f'note   : {note}')
    extra = speed.describe() != 'none'
    cases = [(form, precision, eager) for form in ('plain', 'fast') for precision in ('fp32', 'bf16')]
    if extra:
        cases += [('fast', precision, speed) for precision in ('fp32', 'bf16')]
    times = {}
    for form, precision, s in cases:
        step = make_trainer(form, device, s)
        times[form, precision, s.describe()] = t = median_time(
            lambda: step(batch, precision), args.repeats, device, warmup=WARMUP_COMPILED if s.compile else 1)
        print(f'{form:>5} {precision} {"(speed-ups: " + s.describe() + ")" if s is speed else "":40}: '
              f'{fmt_s(t)} per step')
    base = times['plain', 'fp32', 'none']
    fast32, fast16 = times['fast', 'fp32', 'none'], times['fast', 'bf16', 'none']
    print(f"fast fp32 vs plain fp32: {base / fast32:.2f}x (CPU target >= 3x)")
    print(f"fast bf16 vs plain fp32: {base / fast16:.2f}x")
    print(f"fast bf16 vs fast fp32 : {fast32 / fast16:.2f}x")
    print(f"plain bf16 vs plain fp32: {base / times['plain', 'bf16', 'none']:.2f}x")
    if extra:
        for precision, ref in (('fp32', fast32), ('bf16', fast16)):
            print(f"fast {precision} with {speed.describe()} vs without: {ref / times['fast', precision, speed.describe()]:.2f}x")
    if args.data:
        precision = 'bf16'
        fed, n_images = pipeline_time(make_trainer('fast', device, speed), precision, args, device)
        synthetic = times['fast', precision, speed.describe()]
        print(f'fed by the input pipeline ({n_images} images from {args.data}, {args.workers} workers, '
              f'{"LR made on the GPU" if device.type == "cuda" else "LR made in the workers"}): fast {precision}, '
              f'speed-ups {speed.describe()}: {fmt_s(fed)} per step over {args.steps} steps '
              f'({fed / synthetic:.2f}x the synthetic-batch step; GPU target <= 2.5 ms)')


if __name__ == '__main__':
    main()
