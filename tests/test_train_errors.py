"""train.py's errors: one line naming what is wrong, before the run folder is made where it can be
(run folders, config values, init_weights, speed-ups, --time-limit), and a non-finite loss, a
corrupt or too small image met while training."""
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from cli import run_main
from train_helpers import TRAIN_CLI, load, quickstart_args, small_run, train, train_cmd
from utils.dist import DistInfo
from utils.training import RunError, prepare_run_folder, resume_point


def error_line(result):
    """The one error line of a failed run (after any progress bars); a traceback fails the test."""
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


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


def test_unknown_speed_up_value_is_a_config_error(tmp_path):
    result = run_main(TRAIN_CLI, *train_cmd(tmp_path, 'bad', *small_run(epoch_max=1), '--set', '+compile=maybe')[2:])
    assert result.returncode == 2
    assert "compile 'maybe': expected true, false" in result.stderr
    assert not (tmp_path / 'bad').exists()  # checked before the run folder is made


def test_bad_time_limit_is_named():
    result = run_main(TRAIN_CLI, *train_cmd('unused', 'r', '--time-limit', '9 minutes')[2:])
    assert result.returncode == 2
    assert "--time-limit: '9 minutes': expected a positive number of seconds" in result.stderr


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
