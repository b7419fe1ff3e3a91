"""train.py stopped and resumed: SIGKILL mid-epoch, --time-limit, --stop-after, a finished run or
one without a checkpoint yet; a resumed run trains as one that never stopped, takes a changed
schedule and refuses what cannot change."""
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading

import pytest
import torch

from cli import run_main
from shared import REPO
from train_helpers import TRAIN_CLI, load, quickstart_args, run, small_run, train, train_cmd


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def kill_when(cmd, progress_pattern):
    """Run `cmd` and SIGKILL it as soon as its progress output matches `progress_pattern`."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    progress = []
    pattern = re.compile(progress_pattern)
    killed = threading.Event()

    def watch():
        buf = b''
        while not killed.is_set():
            chunk = proc.stderr.read1(4096)
            if not chunk:
                return
            buf = buf[-4096:] + chunk
            progress.append(chunk)
            if pattern.search(buf.decode(errors='replace')):
                proc.send_signal(signal.SIGKILL)
                killed.set()
    watcher = threading.Thread(target=watch)
    watcher.start()
    proc.wait(timeout=300)
    watcher.join()
    assert killed.is_set() and proc.returncode == -signal.SIGKILL, b''.join(progress)[-2000:]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
    args = small_run(samples=160, epoch_max=3,
                     extra=['--set', '+ema={decay: 0.9}', '--set', '+deterministic=true', '--set', 'epoch_val=1',
                            '--set', '+grad_clip=0.5'])
    whole = run(train_cmd(tmp_path, 'whole', *args))
    assert whole.returncode == 0, whole.stderr

    # the interrupted run uses a data-loading worker process: samples do not depend on that.
    # Killed first before its first checkpoint: --resume starts it again from the beginning
    cmd = train_cmd(tmp_path, 'killed', *args, '--set', 'num_workers=1')
    kill_when(cmd, r'epoch 1/3:.*\| *([3-9]|1[0-5])/20')
    assert not (tmp_path / 'killed' / 'epoch-last.pth').exists() and (tmp_path / 'killed' / 'log.txt').exists()
    kill_when(cmd + ['--resume'], r'epoch 2/3:.*\| *([3-9]|1[0-5])/20')
    assert load(tmp_path / 'killed' / 'epoch-last.pth')['epoch'] == 1  # killed inside epoch 2

    resumed = run(cmd + ['--resume'])
    assert resumed.returncode == 0, resumed.stderr
    log = (tmp_path / 'killed' / 'log.txt').read_text()
    assert 'no checkpoint in' in log and 'starting the run from the beginning' in log and 'resumed from' in log
    a, b = load(tmp_path / 'whole' / 'epoch-last.pth'), load(tmp_path / 'killed' / 'epoch-last.pth')
    assert a['epoch'] == b['epoch'] == 3 and a['iteration'] == b['iteration'] == 60
    for part in ('model', 'ema'):
        for key, value in a[part]['sd'].items():
            assert torch.equal(b[part]['sd'][key], value), (part, key)
    state_a, state_b = a['optimizer']['sd']['state'], b['optimizer']['sd']['state']
    assert state_a.keys() == state_b.keys()
    for index, moments in state_a.items():
        for key, value in moments.items():
            assert torch.equal(state_b[index][key], value), (index, key)
    assert a['best'] == b['best']


def test_a_finished_run_says_how_to_use_it_and_resuming_it_says_there_is_nothing_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)  # not installed: log.txt only, with a note
    assert train(tmp_path, 'r', *small_run(epoch_max=1)).returncode == 0
    last = tmp_path / 'r' / 'epoch-last.pth'
    before, log = digest(last), (tmp_path / 'r' / 'log.txt').read_text()
    assert 'tensorboard is not installed' in log and not (tmp_path / 'r' / 'tensorboard').exists()
    assert f"done: {tmp_path / 'r'}. Its model: {last}" in log
    assert f"python demo.py --input load/samples/coffee.png --scale 4 --model {last}" in log
    result = train(tmp_path, 'r', *small_run(epoch_max=1), '--resume')
    assert result.returncode == 0, result.stderr
    assert f"nothing to train: {tmp_path / 'r'} has done all 1 epochs" in result.stdout and digest(last) == before


def test_resume_without_a_checkpoint_yet_starts_the_run_from_the_beginning(tmp_path):
    """What a run killed before its first checkpoint leaves (its config and log): --resume
    starts it again, saying so in one line, instead of a dead end."""
    folder = tmp_path / 'killed'
    folder.mkdir()
    (folder / 'config.yaml').write_text('epoch_max: 1\n')
    (folder / 'log.txt').write_text('model liif: 1 parameters\n')
    result = run_main(TRAIN_CLI, *train_cmd(tmp_path, 'killed', *small_run(epoch_max=1), '--resume')[2:])
    assert result.returncode == 0, result.stderr[-2000:]
    log = (folder / 'log.txt').read_text()
    assert log.count(f'--resume: no checkpoint in {folder} yet (the run stopped before its first one): '
                     f'starting the run from the beginning') == 1 and 'resumed from' not in log, log
    ckpt = load(folder / 'epoch-last.pth')
    assert ckpt['epoch'] == 1 and ckpt['iteration'] == 1 and ckpt['config']['epoch_max'] == 1


@pytest.mark.slow
def test_time_limit_stops_at_an_epoch_end_and_resume_finishes(tmp_path):
    args = small_run(samples=8, epoch_max=3)
    first = train(tmp_path, 'r', *args, '--time-limit', '0.001s')  # any epoch outlasts it
    assert first.returncode == 0, first.stderr[-2000:]
    log = (tmp_path / 'r' / 'log.txt').read_text()
    assert 'time limit: stopped after epoch 1/3' in log and 'done:' not in log
    assert load(tmp_path / 'r' / 'epoch-last.pth')['epoch'] == 1
    rest = train(tmp_path, 'r', *args, '--resume', '--time-limit', '1h')  # a limit that holds the rest
    assert rest.returncode == 0, rest.stderr[-2000:]
    assert load(tmp_path / 'r' / 'epoch-last.pth')['epoch'] == 3
    assert 'done:' in (tmp_path / 'r' / 'log.txt').read_text()


@pytest.mark.slow
def test_stop_after_warm_up_then_resume_with_a_longer_schedule_equals_one_run(tmp_path):
    """What scripts/gpu_train_natural.sh relies on: the cosine warm-up does not depend on
    epoch_max, so a run stopped after the warm-up and resumed with the final epoch_max trains the
    same weights as one run with that epoch_max, and its config.yaml records that epoch_max."""
    args = small_run(samples=16, extra=['--set', 'multi_step_lr=null', '--set', '+cosine_lr={warmup_epochs: 1}',
                                                 '--set', '+deterministic=true'])
    whole = train(tmp_path, 'whole', *args, '--set', 'epoch_max=3')
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = train(tmp_path, 'split', *args, '--set', 'epoch_max=50', '--stop-after', '1')
    assert first.returncode == 0, first.stderr[-2000:]
    assert 'stopped after epoch 1/50 (--stop-after)' in (tmp_path / 'split' / 'log.txt').read_text()
    assert load(tmp_path / 'split' / 'epoch-last.pth')['epoch'] == 1
    rest = train(tmp_path, 'split', *args, '--set', 'epoch_max=3', '--resume')
    assert rest.returncode == 0, rest.stderr[-2000:]

    a, b = load(tmp_path / 'whole' / 'epoch-last.pth'), load(tmp_path / 'split' / 'epoch-last.pth')
    assert a['iteration'] == b['iteration'] == 6 and a['scheduler']['last_epoch'] == 6
    assert a['model']['sd'].keys() == b['model']['sd'].keys() and len(a['model']['sd']) > 0
    for key, value in a['model']['sd'].items():
        assert torch.equal(b['model']['sd'][key], value), key
    lrs = [float(x) for x in re.findall(r'lr ([\d.e-]+)', (tmp_path / 'whole' / 'log.txt').read_text())]
    assert lrs == pytest.approx([5e-4 * f for f in (0.5, 1.0, 0.5)])  # warm-up over 2 iterations, cosine over 4
    assert 'epoch_max: 3' in (tmp_path / 'split' / 'config.yaml').read_text()


@pytest.mark.slow
def test_resume_applies_a_changed_schedule_and_records_it(tmp_path):
    args = quickstart_args(epoch_max=3, extra=['--set', 'val_full=null', '--set', 'epoch_val=null'])
    first = train(tmp_path, 'r', *args, '--stop-after', '1')
    assert first.returncode == 0, first.stderr[-2000:]
    # the config's milestones were [12, 16]; now the lr halves after epoch 1 and the base lr is 2e-4
    changed = ['--set', 'multi_step_lr.milestones=[1]', '--set', 'optimizer.args.lr=2.e-4']
    rest = train(tmp_path, 'r', *args, *changed, '--resume')
    assert rest.returncode == 0, rest.stderr[-2000:]
    log = (tmp_path / 'r' / 'log.txt').read_text()
    assert re.findall(r'epoch (\d)/3, lr ([\d.e-]+)', log) == [('1', '5.000e-04'), ('2', '1.000e-04'), ('3', '1.000e-04')]
    assert 'config changed on resume: multi_step_lr.milestones: [12, 16] -> [1]' in log
    assert 'config changed on resume: optimizer.args.lr: 0.0005 -> 0.0002' in log
    saved = load(tmp_path / 'r' / 'epoch-last.pth')
    assert saved['config']['multi_step_lr']['milestones'] == [1]
    assert 'milestones:\n  - 1\n' in (tmp_path / 'r' / 'config.yaml').read_text()


@pytest.mark.slow
@pytest.mark.parametrize('change, key', [
    ('model.args.imnet_spec.args.hidden_list=[32]', 'model.args.imnet_spec.args.hidden_list'),
    ('train_dataset.batch_size=4', 'train_dataset.batch_size'),
    ('data_norm.inp.sub=[0.4]', 'data_norm.inp.sub'),
])
def test_resume_refuses_what_cannot_change_and_changes_nothing(tmp_path, change, key):
    args = quickstart_args(epoch_max=2, extra=['--set', 'val_full=null', '--set', 'epoch_val=null'])
    first = train(tmp_path, 'r', *args, '--stop-after', '1')
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p.name: digest(p) for p in (tmp_path / 'r').iterdir() if p.is_file()}
    refused = train(tmp_path, 'r', *args, '--set', change, '--resume')
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train.py: error: --resume: ' + key), refused.stderr
    assert 'cannot change within a run' in lines[0]
    assert {p.name: digest(p) for p in (tmp_path / 'r').iterdir() if p.is_file()} == before
