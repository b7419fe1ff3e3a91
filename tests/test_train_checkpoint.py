"""What a train.py run saves and starts from: the checkpoint's official format and training state,
init_weights and freeze, epoch-best by the val_dataset PSNR (eval_type), and the data_norm a
checkpoint carries (the official sub 0 / div 1 when the config has none)."""
import os
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cli import run_main
from shared import REPO
from train_helpers import TRAIN_CLI, load, quickstart_args, run, small_run, train, train_cmd


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
