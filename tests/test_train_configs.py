"""The shipped training configs: the quickstart learns and demo.py uses its checkpoint; the DIV2K
configs keep the paper's recipe and train on a folder of images."""
import os
import re
import sys

import pytest
from PIL import Image

from cli import run_main
from shared import REPO
from train_helpers import TRAIN_CLI, run, train_cmd


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
