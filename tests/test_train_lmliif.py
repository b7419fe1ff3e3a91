"""train.py trains an LM-LIIF (a tiny one, on the photos that ship in load/quickstart/train): the
loss falls, and the checkpoint loads with load_model and upscales an image."""
import os
import re
import subprocess
import sys

import pytest
import torch
import yaml

from models.checkpoint import load_model
from models.lmliif import LMLIIF
from models.upscale import upscale
from shared import REPO

TINY_MODEL = {'name': 'lmliif', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True, 'n_resblocks': 2, 'n_feats': 16}},
    'imnet_spec': {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': 16, 'hidden_depth': 3,
                                             'mod_scale': True, 'mod_shift': True}},
    'hypernet_spec': {'name': 'mlp', 'args': {'out_dim': 1, 'hidden_list': [64]}},
    'local_ensemble': True, 'feat_unfold': True, 'cell_decode': True, 'mod_input': True}}


@pytest.mark.slow
def test_train_py_trains_a_tiny_lmliif(tmp_path):
    overrides = {'model': TINY_MODEL, '+train_dataset.dataset.args.first_k': 4,
                 'train_dataset.dataset.args.repeat': 8, 'epoch_max': 3, 'optimizer.args.lr': 2e-3,
                 'val_dataset.dataset.args.repeat': 1, 'val_full': None, 'epoch_val': None, '+num_workers': 0}
    sets = [a for k, v in overrides.items()
            for a in ('--set', f"{k}={yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()}")]
    proc = subprocess.run([sys.executable, 'train.py', '--config', 'configs/quickstart.yaml', '--save-dir', str(tmp_path),
                           '--name', 'lm', '--device', 'cpu', *sets], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / 'lm' / 'log.txt').read_text()
    losses = [float(x) for x in re.findall(r'train loss ([\d.]+)', log)]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], log
    model = load_model(str(tmp_path / 'lm' / 'epoch-last.pth'))
    assert isinstance(model, LMLIIF) and model.imnet.hidden_depth == 3
    out = upscale(model, torch.rand(3, 10, 14), (35, 49))
    assert out.shape == (3, 35, 49) and out.std() > 0.01
