"""train.py as users run it, on real images: most runs in this process (`main(argv)`), real
subprocesses where only a process shows it (torchrun, SIGKILL, the quickstart, torch.compile)."""
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from cli import load_script, run_main
from shared import REPO
from utils.dist import DistInfo
from utils.training import RunError, prepare_run_folder, resume_point

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


def error_line(result):
    """The one error line of a failed run (after any progress bars); a traceback fails the test."""
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


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


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


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


def test_checkpoint_holds_official_format_and_training_state(tmp_path):
    result = train(tmp_path, 'r', *small_run(epoch_max=2, extra=['--set', 'epoch_save=2']))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / 'r'
    assert {'epoch-last.pth', 'epoch-2.pth', 'config.yaml', 'log.txt', 'tensorboard'} <= set(os.listdir(folder))
    assert not [n for n in os.listdir(folder) if n.endswith('.tmp')]
    ckpt = load(folder / 'epoch-last.pth')
    assert set(ckpt['model']) == {'name', 'args', 'sd'} and ckpt['model']['name'] == 'liif'
    assert ckpt['optimizer']['name'] == 'adam' and ckpt['epoch'] == 2 and ckpt['iteration'] == 2
    assert ckpt['scheduler']['last_epoch'] == 2 and ckpt['config']['epoch_max'] == 2
    assert 'encoder.body.0.body.0.weight' in ckpt['model']['sd']
    log = (folder / 'log.txt').read_text()
    assert 'epoch 1/2' in log and 'epoch 2/2' in log and 'train loss' in log
    assert os.listdir(folder / 'tensorboard')


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


def test_init_weights_then_a_frozen_encoder_then_training_everything(tmp_path):
    """A run starting from another run's encoder (init_weights), frozen for its first epoch."""
    assert run_main(TRAIN_CLI, *train_cmd(tmp_path, 'source', *small_run(epoch_max=1))[2:]).returncode == 0
    source = load(tmp_path / 'source' / 'epoch-last.pth')['model']['sd']
    spec = f"{{path: {tmp_path / 'source' / 'epoch-last.pth'}, modules: [encoder]}}"
    result = run_main(TRAIN_CLI, *train_cmd(tmp_path, 'r', *small_run(epoch_max=2), '--set', f'+init_weights={spec}',
                                            '--set', '+freeze={encoder: 1}', '--set', 'epoch_save=1')[2:])
    assert result.returncode == 0, result.stderr
    first, last = load(tmp_path / 'r' / 'epoch-1.pth')['model']['sd'], load(tmp_path / 'r' / 'epoch-2.pth')['model']['sd']
    encoder = [k for k in source if k.startswith('encoder.')]
    assert encoder and all(torch.equal(first[k], source[k]) for k in encoder)  # copied, then not trained
    assert not torch.equal(first['imnet.layers.0.weight'], source['imnet.layers.0.weight'])  # the decoder was not copied
    trained = [k for k in encoder if not torch.equal(last[k], first[k])]
    assert 'encoder.head.0.weight' in trained and not any('mean' in k for k in trained)  # EDSR's mean shifts stay fixed
    log = (tmp_path / 'r' / 'log.txt').read_text()
    assert 'initialised encoder from' in log and 'encoder frozen until the end of epoch 1' in log
    assert 'epoch 2: encoder trained from now on' in log


def test_init_weights_that_do_not_fit_are_named(tmp_path, tiny_ckpt):
    spec = f"{{path: {tiny_ckpt}, modules: [encoder]}}"  # 8 features; the quickstart's encoder has 32
    result = run_main(TRAIN_CLI, *train_cmd(tmp_path, 'r', *small_run(epoch_max=1), '--set', f'+init_weights={spec}')[2:])
    line = error_line(result)
    assert f'init_weights: {tiny_ckpt}: encoder.head.0.weight does not fit the model (shape' in line
    assert not (tmp_path / 'r').exists()


def test_existing_run_folder_is_never_overwritten(tmp_path):
    folder = tmp_path / 'taken'
    folder.mkdir()
    (folder / 'notes.txt').write_text('keep me')
    result = run_main(TRAIN_CLI, *train_cmd(tmp_path, 'taken', *small_run())[2:])
    line = error_line(result)
    assert line.startswith('train.py: error:') and str(folder) in line and '--resume' in line
    assert os.listdir(folder) == ['notes.txt'] and (folder / 'notes.txt').read_text() == 'keep me'


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


def test_a_save_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / 'file').write_text('keep me')
    line = error_line(run_main(TRAIN_CLI, *train_cmd(tmp_path / 'file', 'r', *small_run())[2:]))
    assert f"{tmp_path / 'file' / 'r'}: cannot make the run folder (NotADirectoryError" in line
    assert (tmp_path / 'file').read_text() == 'keep me'


def test_run_folder_checks_before_anything_is_made(tmp_path):
    info = DistInfo(0, 1, torch.device('cpu'))
    note = prepare_run_folder(str(tmp_path / 'new'), True, info)  # --resume, never started: start it
    assert note == f'--resume: no run folder {tmp_path / "new"} yet: starting the run from the beginning'
    assert os.listdir(tmp_path / 'new') == []
    assert prepare_run_folder(str(tmp_path / 'new'), False, info) is None  # an empty folder is no run yet
    (tmp_path / 'new' / 'epoch-last.pth').write_bytes(b'')
    assert resume_point(str(tmp_path / 'new'), True) == str(tmp_path / 'new' / 'epoch-last.pth')
    assert prepare_run_folder(str(tmp_path / 'new'), True, info) is None
    with pytest.raises(RunError, match='already exists; --resume continues that run'):
        prepare_run_folder(str(tmp_path / 'new'), False, info)
    (tmp_path / 'file').write_text('x')
    with pytest.raises(RunError, match='exists and is not a folder'):
        prepare_run_folder(str(tmp_path / 'file'), True, info)


@pytest.mark.parametrize('norm, value', [('div=[0.0]', 'inf'), ('sub=[.nan]', 'nan')])
def test_non_finite_loss_stops_at_its_iteration(tmp_path, norm, value):
    # a zero divisor makes every target infinite, a NaN one every target NaN
    result = train(tmp_path, 'r', *small_run(samples=8, epoch_max=1), '--set', f'data_norm.gt.{norm}')
    line = error_line(result)
    assert line.startswith(f'train.py: error: loss is {value} at iteration 1 (epoch 1); training stopped, '
                           f'before any checkpoint was written'), line
    assert not (tmp_path / 'r' / 'epoch-last.pth').exists()


@pytest.mark.slow
def test_divergence_stops_the_run_and_keeps_the_last_finished_epoch(tmp_path):
    args = small_run(samples=8, epoch_max=1)  # one iteration an epoch
    assert train(tmp_path, 'r', *args).returncode == 0
    # an absurd learning rate: the step of epoch 2 makes the weights overflow, the loss of epoch 3 is not finite
    result = train(tmp_path, 'r', *args, '--set', 'epoch_max=4', '--set', 'optimizer.args.lr=1.e+30', '--resume')
    line = error_line(result)
    assert re.fullmatch(r'train\.py: error: loss is (nan|inf) at iteration 3 \(epoch 3\); training stopped\. '
                        r'\S+epoch-last\.pth from the last finished epoch is intact .*', line), line
    last = load(tmp_path / 'r' / 'epoch-last.pth')
    assert last['epoch'] == 2 and last['iteration'] == 2


def make_folder(path, sizes, corrupt=None):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path / f'{i:02d}.png')
    if corrupt:
        (path / corrupt).write_bytes(b'\x89PNG\r\n\x1a\n' + b'broken' * 10)
    return str(path)


@pytest.mark.parametrize('workers', [0, 1])
def test_corrupt_image_is_named(tmp_path, workers):
    folder = make_folder(tmp_path / 'imgs', [(130, 130)] * 3, corrupt='01b.png')
    args = small_run(workers=workers) + ['--set', f'train_dataset.dataset.args.root_path={folder}',
                                         '--set', 'train_dataset.dataset.args.cache=none']
    result = train(tmp_path, 'r', *args)
    line = error_line(result)
    assert line.startswith('train.py: error:') and '01b.png' in line, result.stderr[-2000:]


def test_image_smaller_than_the_crop_is_named_with_sizes(tmp_path):
    folder = make_folder(tmp_path / 'imgs', [(130, 130), (50, 70), (130, 130)])
    args = small_run() + ['--set', f'train_dataset.dataset.args.root_path={folder}',
                          '--set', '+train_dataset.wrapper.args.scale_min=4']
    result = train(tmp_path, 'r', *args)
    line = error_line(result)
    assert '01.png' in line and '50x70' in line and '96x96' in line


@pytest.mark.slow
def test_quickstart_learns_and_demo_uses_its_checkpoint(tmp_path):
    # the config as shipped, on the photos that ship with it (nothing from ../shared), shortened
    args = ['--set', 'epoch_max=3', '--set', 'train_dataset.dataset.args.repeat=15']
    result = run(train_cmd(tmp_path, 'qs', *args))
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / 'qs' / 'log.txt').read_text()
    losses = [float(x) for x in re.findall(r'train loss ([\d.]+)', log)]
    psnrs = [float(x) for x in re.findall(r'val psnr ([\d.]+)', log)]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], log
    assert psnrs[-1] > psnrs[0], log
    assert 'benchmark-4 psnr' in log and (tmp_path / 'qs' / 'epoch-best.pth').exists()
    assert log.count('(bicubic 27.3803, ') == 3  # beside each validation: torch's bicubic x4 of the held-out photo
    assert f"--model {tmp_path / 'qs' / 'epoch-last.pth'}" in log  # how to use the result

    out = tmp_path / 'sr.png'
    demo = run([sys.executable, 'demo.py', '--input', os.path.join(REPO, 'load', 'samples', 'coffee.png'),
                '--model', str(tmp_path / 'qs' / 'epoch-last.pth'), '--scale', '2', '--output', str(out)])
    assert demo.returncode == 0, demo.stderr
    with Image.open(out) as im:
        assert im.size == (400, 266)


def test_div2k_configs_keep_the_paper_recipe():
    from utils.config import load_config
    import models
    folder = os.path.join(REPO, 'configs', 'train-div2k')
    cfg = load_config(os.path.join(folder, 'train_edsr-baseline-liif.yaml'))
    train = cfg['train_dataset']
    assert train['dataset']['args'] == {'root_path': './load/div2k/DIV2K_train_HR', 'repeat': 20, 'cache': 'decoded'}
    assert train['wrapper'] == {'name': 'sr-implicit-downsampled',
                                'args': {'inp_size': 48, 'scale_max': 4, 'augment': True, 'sample_q': 2304}}
    assert train['batch_size'] == 16 and cfg['epoch_max'] == 1000
    assert cfg['optimizer'] == {'name': 'adam', 'args': {'lr': 1e-4}}
    assert cfg['multi_step_lr'] == {'milestones': [200, 400, 600, 800], 'gamma': 0.5}
    assert cfg['data_norm'] == {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}
    # validation and epoch-best on DIV2K valid (first 10 images, 160 crops each), never on a test set
    assert cfg['val_dataset']['dataset']['args'] == {'root_path': './load/div2k/DIV2K_valid_HR', 'first_k': 10,
                                                     'repeat': 160, 'cache': 'in_memory'}
    assert 'val_full' not in cfg
    expected = {'train_edsr-baseline-liif.yaml': ('liif', 'edsr-baseline', {}),
                'train_rdn-liif.yaml': ('liif', 'rdn', {}),
                'train_edsr-baseline-metasr.yaml': ('metasr', 'edsr-baseline', {}),
                'train_rdn-metasr.yaml': ('metasr', 'rdn', {}),
                'ablation/train_edsr-baseline-liif-c.yaml': ('liif', 'edsr-baseline', {'cell_decode': False}),
                'ablation/train_edsr-baseline-liif-u.yaml': ('liif', 'edsr-baseline', {'feat_unfold': False}),
                'ablation/train_edsr-baseline-liif-e.yaml': ('liif', 'edsr-baseline', {'local_ensemble': False})}
    for name, (model, encoder, flags) in expected.items():
        c = load_config(os.path.join(folder, name))
        assert c['model']['name'] == model and c['model']['args']['encoder_spec']['name'] == encoder, name
        built = models.make(c['model'])
        for flag, value in flags.items():
            assert getattr(built, flag) is value, (name, flag)
        assert c['train_dataset'] == train and c['epoch_max'] == 1000, name
    shallow = load_config(os.path.join(folder, 'ablation', 'train_edsr-baseline-liif-d.yaml'))
    assert shallow['model']['args']['imnet_spec']['args']['hidden_list'] == [256, 256]


@pytest.mark.slow
def test_div2k_config_trains_on_a_folder_of_images(tmp_path):
    images = os.path.join(REPO, 'load', 'quickstart', 'train')
    val = os.path.join(REPO, 'load', 'quickstart', 'val')
    cmd = [sys.executable, 'train.py', '--config', 'configs/train-div2k/train_edsr-baseline-liif.yaml',
           '--save-dir', str(tmp_path), '--name', 'r', '--device', 'cpu',
           '--set', f'train_dataset.dataset.args.root_path={images}', '--set', '+train_dataset.dataset.args.first_k=2',
           '--set', 'train_dataset.dataset.args.repeat=1', '--set', 'train_dataset.batch_size=2',
           '--set', 'train_dataset.dataset.args.cache=in_memory',  # 'decoded' would write beside the shipped data
           '--set', f'val_dataset.dataset.args.root_path={val}/HR', '--set', 'val_dataset.dataset.args.repeat=1',
           '--set', 'val_dataset.dataset.args.first_k=2', '--set', 'epoch_max=1', '--set', '+num_workers=0']
    result = run_main(TRAIN_CLI, *cmd[2:])
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / 'r' / 'log.txt').read_text()
    assert '1,567,323 parameters' in log and 'val psnr' in log and 'benchmark-4' not in log  # no test set
    assert (tmp_path / 'r' / 'epoch-best.pth').exists()


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


def test_unknown_speed_up_value_is_a_config_error(tmp_path):
    result = run_main(TRAIN_CLI, *train_cmd(tmp_path, 'bad', *small_run(epoch_max=1), '--set', '+compile=maybe')[2:])
    assert result.returncode == 2
    assert "compile 'maybe': expected true, false" in result.stderr
    assert not (tmp_path / 'bad').exists()  # checked before the run folder is made


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


def test_bad_time_limit_is_named():
    result = run_main(TRAIN_CLI, *train_cmd('unused', 'r', '--time-limit', '9 minutes')[2:])
    assert result.returncode == 2
    assert "--time-limit: '9 minutes': expected a positive number of seconds" in result.stderr


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


def quickstart_args(epoch_max=2, repeat=2, extra=()):
    """The shipped quickstart config on its shipped photos, a few iterations an epoch."""
    return [*STEPS, '--set', f'epoch_max={epoch_max}', '--set', f'train_dataset.dataset.args.repeat={repeat}',
            '--set', 'val_dataset.dataset.args.repeat=1', '--set', '+num_workers=0', *extra]


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


@pytest.mark.parametrize('change, message', [
    ('data_norm.inp.sub=[0.4,0.5,0.5]', 'whole-image evaluation needs the same sub and div'),
    ('train_dataset.batch_size=0', 'train_dataset.batch_size 0: expected a positive whole number'),
    ('val_dataset.batch_size=0', 'val_dataset.batch_size 0: expected a positive whole number'),
    ('+eval_bsize=-3', 'eval_bsize -3: expected a positive number of queries'),
    ('+eval_type=bicubic-4', "eval_type 'bicubic-4': expected benchmark-<scale> or div2k-<scale>"),
    ('train_dataset.wrapper.args.scale_max=-1', 'train_dataset.wrapper.args.scale_max -1: expected a number >= scale_min (2)'),
    ('val_dataset.wrapper.args.sample_q=0', 'val_dataset.wrapper.args.sample_q 0: expected a positive whole number'),
    ('optimizer.args.lr=fast', "optimizer.args.lr 'fast': expected a positive number"),
    ('+freeze={encoder: -1}', "freeze {'encoder': -1}: expected {MODULE: EPOCHS, ...}"),
    ('+freeze={decoder: 1}', "freeze: the model has no trained parameters under 'decoder'"),
    ('+init_weights={path: missing.pth}', "init_weights {'path': 'missing.pth'}: expected {path: CHECKPOINT, modules:"),
    ('+init_weights={path: missing.pth, modules: [encoder]}', 'missing.pth: no such checkpoint file'),
    ('+threads=0', 'threads 0: expected a positive whole number'),
    ('epoch_max=0', 'epoch_max 0: expected a positive whole number'),
    ('model.args.encoder_spec.args.n_feats=-3', "model 'liif' rejects its args (RuntimeError: "),
    ('model.args.encoder_spec.name=swinir',  # the EDSR's arguments left under another encoder
     "quickstart.yaml: model.args.encoder_spec.args.n_resblocks: 'swinir' takes no argument 'n_resblocks' (it takes "),
    ('+model.args.imnet_spec.args.depth=3', "model.args.imnet_spec.args.depth: 'mlp' takes no argument 'depth'"),
    ('model.args.imnet_spec=null', 'model: decodes 32 values a query, not the 3 of RGB'),
    ('train_dataset.dataset.args.root_path=./load/div2k/DIV2K_train_HR',
     'DIV2K_train_HR: no such image folder (DIV2K train is not shipped with the code: README.md, Data, names'),
])
def test_bad_config_values_fail_before_the_run_folder_is_made(tmp_path, change, message):
    result = run_main(TRAIN_CLI, *train_cmd(tmp_path, 'bad', *quickstart_args(epoch_max=1), '--set', change)[2:])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / 'bad').exists()


@pytest.mark.slow
def test_eval_type_scores_val_dataset_on_whole_images_and_epoch_best_is_the_best(tmp_path):
    """The official top-level eval_type / eval_bsize: validation on whole images of val_dataset
    (here the held-aside quickstart photo at x4, which val_full scores too, so both must agree),
    in query chunks of eval_bsize; epoch-best.pth holds the epoch of the best val_dataset PSNR."""
    val = os.path.join('load', 'quickstart', 'val')
    paired = ('{dataset: {name: paired-image-folders, args: {root_path_1: ' + os.path.join(val, 'LR_bicubic', 'X4')
              + ', root_path_2: ' + os.path.join(val, 'HR') + '}}, wrapper: {name: sr-implicit-paired}, batch_size: 1}')
    args = quickstart_args(epoch_max=4, repeat=1, extra=['--set', f'val_dataset={paired}', '--set', '+eval_type=benchmark-4',
                                                         '--set', '+eval_bsize=1000'])
    result = train(tmp_path, 'r', *args)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / 'r' / 'log.txt').read_text()
    bicubic = r' \(bicubic 27\.3803, [-+][\d.]+ dB\)'  # torch's bicubic x4 of the photo, computed once, for both
    pairs = re.findall(rf'val psnr ([\d.]+){bicubic}, benchmark-4 psnr ([\d.]+){bicubic}', log)
    assert len(pairs) == 4 and all(a == b for a, b in pairs), log
    pairs = [(float(a), float(b)) for a, b in pairs]
    psnrs = [a for a, _ in pairs]
    best = load(tmp_path / 'r' / 'epoch-best.pth')
    assert best['epoch'] == psnrs.index(max(psnrs)) + 1 and best['best'] == pytest.approx(max(psnrs), abs=1e-4)
    assert load(tmp_path / 'r' / 'epoch-last.pth')['best'] == best['best']


@pytest.mark.slow
def test_a_config_without_data_norm_uses_the_official_default_and_its_checkpoint_carries_it(tmp_path):
    """No data_norm: sub 0 / div 1, as the official train_liif.py and test.py; the checkpoint
    records it, so demo.py upscales with it (the official checkpoints, which record nothing,
    keep the official demo's 0.5 / 0.5)."""
    from models.checkpoint import load_model
    from models.upscale import upscale
    args = quickstart_args(epoch_max=1, repeat=1, extra=['--set', 'data_norm=null', '--set', 'val_full=null'])
    result = train(tmp_path, 'r', *args)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt_path = tmp_path / 'r' / 'epoch-last.pth'
    assert load(ckpt_path)['data_norm'] == {'inp': {'sub': [0.0], 'div': [1.0]}, 'gt': {'sub': [0.0], 'div': [1.0]}}
    model, norm = load_model(str(ckpt_path), with_data_norm=True)
    assert norm == (0.0, 1.0)
    exported = tmp_path / 'w.pth'
    assert run([sys.executable, 'scripts/export_weights.py', str(ckpt_path), str(exported)]).returncode == 0
    assert load_model(str(exported), with_data_norm=True)[1] == (0.0, 1.0)

    src = os.path.join(REPO, 'load', 'quickstart', 'val', 'LR_bicubic', 'X4', 'coffeex4.png')
    demo = run([sys.executable, 'demo.py', '--input', src, '--model', str(exported), '--scale', '2',
                '--output', str(tmp_path / 'sr.png')])
    assert demo.returncode == 0, demo.stderr[-2000:]
    with Image.open(src) as im:
        lr = torch.from_numpy(np.array(im.convert('RGB'))).permute(2, 0, 1).float() / 255
    got = np.asarray(Image.open(tmp_path / 'sr.png')).astype(int)

    def expected(data_norm):
        sr = upscale(model, lr, (200, 300), data_norm=data_norm)
        return (sr * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - expected((0.0, 1.0))).max() <= 1
    assert np.abs(got - expected((0.5, 0.5))).max() > 1  # the norm matters for this model


def test_data_norm_defaults_to_the_official_sub_0_div_1():
    from utils.data_norm import DataNorm
    norm = DataNorm(None, 'cpu')
    batch = {'inp': torch.rand(2, 3, 4, 4), 'gt': torch.rand(2, 5, 3)}
    inp, gt = norm.normalise(batch)
    assert torch.equal(inp, batch['inp']) and torch.equal(gt, batch['gt']) and norm.scalars() == (0.0, 1.0)
