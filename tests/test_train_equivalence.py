"""train.py's other ways to the same weights: two DDP processes against one with the same global
batch, LR made on the device against the CPU path, channels-last plus torch.compile against eager."""
import sys

import pytest
import torch

from train_helpers import load, run, small_run, train, train_cmd


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    # global batch 8: 2 iterations an epoch; the encoder frozen in epoch 1 (DDP is rebuilt for epoch 2)
    args = small_run(samples=16, epoch_max=2, extra=['--set', '+freeze={encoder: 1}'])
    single = run(train_cmd(tmp_path, 'single', *args))
    assert single.returncode == 0, single.stderr
    ddp = run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
               *train_cmd(tmp_path, 'ddp', *args)[1:]])
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert '2 process(es)' in (tmp_path / 'ddp' / 'log.txt').read_text()
    a, b = load(tmp_path / 'single' / 'epoch-last.pth'), load(tmp_path / 'ddp' / 'epoch-last.pth')
    assert a['iteration'] == b['iteration'] == 4
    for key, value in a['model']['sd'].items():
        torch.testing.assert_close(b['model']['sd'][key], value, rtol=0, atol=1e-5)
    # both processes saved their random state (each trained on its own share)
    assert len(b['rng']) == 2 and len(a['rng']) == 1


@pytest.mark.slow
def test_lr_on_device_trains_exactly_as_the_cpu_path(tmp_path):
    args = small_run(samples=16, epoch_max=1, extra=['--set', '+deterministic=true'])
    for name, choice in (('cpu', 'false'), ('device', 'true')):
        result = train(tmp_path, name, *args, '--set', f'+lr_on_device={choice}')
        assert result.returncode == 0, result.stderr[-2000:]
    assert 'LR made on the device' in (tmp_path / 'device' / 'log.txt').read_text()
    a, b = load(tmp_path / 'cpu' / 'epoch-last.pth'), load(tmp_path / 'device' / 'epoch-last.pth')
    for key, value in a['model']['sd'].items():
        assert torch.equal(b['model']['sd'][key], value), key


@pytest.mark.slow
def test_channels_last_and_compile_train_like_the_eager_run(tmp_path):
    # SGD, not Adam: Adam normalises each weight's step, so a weight whose gradient is ~0 moves by
    # up to lr either way on a rounding difference (7e-4 seen here); SGD keeps differences at rounding
    args = small_run(samples=16, epoch_max=2, extra=['--set', '+deterministic=true',
                                                     '--set', 'optimizer={name: sgd, args: {lr: 0.01}}'])
    eager = run(train_cmd(tmp_path, 'eager', *args))
    assert eager.returncode == 0, eager.stderr[-2000:]
    fast = run(train_cmd(tmp_path, 'fast', *args, '--set', '+channels_last=true', '--set', '+compile=true',
                         '--set', '+cuda_graphs=true'))
    assert fast.returncode == 0, fast.stderr[-2000:]
    log = (tmp_path / 'fast' / 'log.txt').read_text()
    assert 'speed-ups: channels_last, compile' in log
    assert 'cuda_graphs: off (needs a CUDA device, training on cpu)' in log
    a, b = load(tmp_path / 'eager' / 'epoch-last.pth'), load(tmp_path / 'fast' / 'epoch-last.pth')
    assert a['model']['sd'].keys() == b['model']['sd'].keys()  # the plain module is saved, not the compiled one
    for key, value in a['model']['sd'].items():
        torch.testing.assert_close(b['model']['sd'][key], value, rtol=0, atol=1e-5)
