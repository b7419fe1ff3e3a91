"""Samples per second of the training input pipeline, by DataLoader worker count.

    python benchmarks/bench_loader.py --root load/div2k/DIV2K_train_HR
    python benchmarks/bench_loader.py --root load/train/BSD200 --workers 0 1 2

Two paths, with the paper's wrapper (48x48 LR, scale U(1, 4), augmentation, 2304 queries):
- cpu: the workers make everything (PIL bicubic LR, flips, sampled pixels);
- hr-only: the workers serve uint8 HR crops and random draws, `finish_batch` makes LR, flips and
  samples on --device (train.py's `lr_on_device`, the default on GPUs); its time is included.
Images are decoded into memory first (cache: in_memory), as for training. Target on a GPU
machine: 8,000 samples/s (a batch of 16 every 2 ms). Figures only: nothing passes or fails.
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader

from common import paper_training_set, print_device, sync  # also puts the repo on sys.path
from datasets.device_synthesis import to_device  # noqa: E402


def rate(dataset, workers, batch, batches, device, hr_only):
    dataset.hr_only = hr_only
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0, pin_memory=device.type == 'cuda')
    it = iter(loader)
    next(it)  # workers started and warm
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        n += to_device(next(it), device, dataset.inp_size if hr_only else None)['inp'].shape[0]
    sync(device)
    return n / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default='load/train/BSD200', help='a folder of training images (default: %(default)s)')
    p.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--batches', type=int, default=50, help='timed batches per case')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    args = p.parse_args()
    device = torch.device(args.device)
    print_device(torch.get_num_threads(), device)
    wrapper = paper_training_set(args.root)
    print(f'data   : {len(wrapper.dataset.files)} images from {args.root}, batch {args.batch}, {args.batches} batches per case')
    for workers in args.workers:
        cpu = rate(wrapper, workers, args.batch, args.batches, device, hr_only=False)
        hr = rate(wrapper, workers, args.batch, args.batches, device, hr_only=True)
        print(f'{workers} workers: cpu path {cpu:8.0f} samples/s, hr-only + finish_batch on {device.type} '
              f'{hr:8.0f} samples/s ({hr / cpu:.2f}x)')


if __name__ == '__main__':
    main()
