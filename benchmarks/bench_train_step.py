"""One LIIF training step (forward, L1 loss, backward, Adam), plain vs fast decoder, float32 vs bf16.

    python benchmarks/bench_train_step.py                  # EDSR-baseline-LIIF, batch 16, 48x48, 2304 queries
    python benchmarks/bench_train_step.py --device cuda

The batch is synthetic (random LR patches, query coordinates and targets at random scales in
[1, 4]): a step's cost does not depend on the pixel values. All cases run in this one process
so the ratios are measured under the same conditions. Figures only: nothing passes or fails.
"""
import argparse

import torch
import torch.nn.functional as F

from common import SPEC, fmt_s, median_time, print_device  # also puts the repo on sys.path
import models  # noqa: E402
from utils.device import autocast  # noqa: E402


def synthetic_batch(batch, inp_size, sample_q, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = 1 + 3 * torch.rand(batch, 1, 1, generator=g)
    return {'inp': torch.rand(batch, 3, inp_size, inp_size, generator=g).to(device),
            'coord': (torch.rand(batch, sample_q, 2, generator=g) * 2 - 1).to(device),
            'cell': (2 / (inp_size * scale)).expand(batch, sample_q, 2).contiguous().to(device),
            'gt': torch.rand(batch, sample_q, 3, generator=g).to(device)}


def make_step(model, optimizer, batch, device, precision):
    def step():
        with autocast(device, precision):
            pred = model((batch['inp'] - 0.5) / 0.5, batch['coord'], batch['cell'])
        loss = F.l1_loss(pred.float(), (batch['gt'] - 0.5) / 0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--inp-size', type=int, default=48)
    p.add_argument('--sample-q', type=int, default=2304)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--threads', type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print_device(torch.get_num_threads(), device)
    print(f'step   : EDSR-baseline-LIIF, batch {args.batch}, {args.inp_size}x{args.inp_size} LR, '
          f'{args.sample_q} queries per patch, Adam; median of {args.repeats} steps after a warm-up step')
    batch = synthetic_batch(args.batch, args.inp_size, args.sample_q, device)
    times = {}
    for form in ('plain', 'fast'):
        for precision in ('fp32', 'bf16'):
            torch.manual_seed(0)
            model = models.make(SPEC).to(device).train()
            model.decoder = form
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
            times[form, precision] = median_time(make_step(model, optimizer, batch, device, precision),
                                                 args.repeats, device)
            print(f'{form:>5} {precision}: {fmt_s(times[form, precision])} per step')
    base = times['plain', 'fp32']
    print(f"fast fp32 vs plain fp32: {base / times['fast', 'fp32']:.2f}x (CPU target >= 3x)")
    print(f"fast bf16 vs plain fp32: {base / times['fast', 'bf16']:.2f}x")
    print(f"fast bf16 vs fast fp32 : {times['fast', 'fp32'] / times['fast', 'bf16']:.2f}x")
    print(f"plain bf16 vs plain fp32: {base / times['plain', 'bf16']:.2f}x")


if __name__ == '__main__':
    main()
