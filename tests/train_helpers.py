"""train.py runs for the tests: the quickstart config shrunk to a few iterations on the photos
that ship with it, run in this process (`main(argv)`) or as a real subprocess."""
import os
import subprocess
import sys

import torch

from cli import load_script, run_main
from shared import REPO

QUICKSTART = os.path.join(REPO, 'configs', 'quickstart.yaml')
TRAIN_CLI = load_script('train')


# what these tests were written for, whatever the quickstart ships: lr 5e-4 halved after epochs 12
# and 16, 24x24 LR patches with 576 queries (cheaper steps)
STEPS = ['--set', 'cosine_lr=null', '--set', '+multi_step_lr={milestones: [12, 16], gamma: 0.5}',
         '--set', 'optimizer.args.lr=5.e-4', '--set', 'train_dataset.wrapper.args.inp_size=24',
         '--set', 'train_dataset.wrapper.args.sample_q=576']


def small_run(samples=8, epoch_max=2, workers=0, extra=()):
    """--set overrides shrinking the quickstart config, on the photos that ship with it, to
    `samples` training crops an epoch (a multiple of 4: the first 4 photos, repeated) in batches of 8."""
    assert samples % 4 == 0
    return [*STEPS, '--set', '+train_dataset.dataset.args.first_k=4',
            '--set', f'train_dataset.dataset.args.repeat={samples // 4}',
            '--set', 'val_dataset.dataset.args.repeat=1',
            '--set', f'epoch_max={epoch_max}', '--set', f'+num_workers={workers}',
            '--set', 'val_full=null', '--set', 'epoch_val=null', *extra]


def train_cmd(save_dir, name, *args):
    return [sys.executable, 'train.py', '--config', QUICKSTART, '--save-dir', str(save_dir), '--name', name,
            '--device', 'cpu', *args]


def run(cmd, **kwargs):
    """A real subprocess: for what only a process shows (torchrun, SIGKILL, the quickstart as users run it)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def train(save_dir, name, *args):
    """train.py in this process (main(argv)): a run without a Python and torch start-up."""
    return run_main(TRAIN_CLI, *train_cmd(save_dir, name, *args)[2:])


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def quickstart_args(epoch_max=2, repeat=2, extra=()):
    """The shipped quickstart config on its shipped photos, a few iterations an epoch."""
    return [*STEPS, '--set', f'epoch_max={epoch_max}', '--set', f'train_dataset.dataset.args.repeat={repeat}',
            '--set', 'val_dataset.dataset.args.repeat=1', '--set', '+num_workers=0', *extra]
