import glob
import os

import pytest
import torch

import models
from shared import REPO
from utils.config import ConfigError, apply_override, get_key, load_config
from utils.coords import make_coord


def write(path, text):
    path.write_text(text)
    return str(path)


def test_base_inheritance_and_overrides(tmp_path):
    write(tmp_path / 'base.yaml', 'model:\n  name: liif\n  args: {local_ensemble: true, feat_unfold: true}\n'
                                  'epoch_max: 1000\nmulti_step_lr: {milestones: [200, 400], gamma: 0.5}\n')
    (tmp_path / 'sub').mkdir()
    write(tmp_path / 'sub' / 'child.yaml', '_base_: ../base.yaml\nmodel:\n  args: {local_ensemble: false}\nepoch_max: 10\n')
    cfg = load_config(tmp_path / 'sub' / 'child.yaml',
                      ['epoch_max=2', 'model.args.feat_unfold=false', 'multi_step_lr.milestones=[1, 2]',
                       '+model.args.cell_decode=true'])
    assert cfg == {'model': {'name': 'liif', 'args': {'local_ensemble': False, 'feat_unfold': False,
                                                      'cell_decode': True}},
                   'epoch_max': 2, 'multi_step_lr': {'milestones': [1, 2], 'gamma': 0.5}}


def test_several_bases_merge_in_order(tmp_path):
    write(tmp_path / 'a.yaml', 'x: 1\ny: {p: 1, q: 1}\n')
    write(tmp_path / 'b.yaml', 'y: {q: 2}\n')
    write(tmp_path / 'c.yaml', '_base_: [a.yaml, b.yaml]\nz: 3\n')
    assert load_config(tmp_path / 'c.yaml') == {'x': 1, 'y': {'p': 1, 'q': 2}, 'z': 3}


@pytest.mark.parametrize('text, overrides, message', [
    ('a: 1\n', ['b=2'], r"no key 'b'; existing keys there: a"),
    ('a: {b: 1}\n', ['a.c.d=2'], r"config key 'a.c' missing: a has b"),
    ('a: 1\n', ['a'], r"expected key=value"),
    ('a: 1\n', ['a=[1, 2'], r"not valid YAML"),
    ('a: [1, 2\n', [], r"invalid YAML at line 2"),
    ('- 1\n- 2\n', [], r"must be a mapping"),
    ('_base_: missing.yaml\n', [], r"missing.yaml: no such config file"),
    ('_base_: cfg.yaml\n', [], r"loops back"),
])
def test_config_errors_are_one_line_and_name_the_problem(tmp_path, text, overrides, message):
    path = write(tmp_path / 'cfg.yaml', text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path, overrides)
    assert '\n' not in str(err.value)


def test_missing_key_lists_what_exists():
    with pytest.raises(ConfigError, match=r"'train_dataset.batch_size' missing: train_dataset has dataset, wrapper"):
        get_key({'train_dataset': {'dataset': {}, 'wrapper': {}}}, 'train_dataset.batch_size')
    assert get_key({'a': {'b': 3}}, 'a.b') == 3


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    path = write(tmp_path / 'evil.yaml', 'a: !!python/object/apply:os.system ["echo pwned"]\n')
    with pytest.raises(ConfigError, match='invalid YAML'):
        load_config(path)


# parameter counts of the official models (LIIF's checkpoint, LMF.md, LTE.md, CIAOSR.md), MeanShift convs included
OFFICIAL_PARAMS = {'edsr-baseline-liif': 1_567_323, 'edsr-baseline-lmliif': 1_386_091, 'edsr-baseline-lte': 1_714_267,
                   'edsr-baseline-lmlte': 1_490_907, 'swinir-lte': 12_096_871, 'swinir-liif': 11_949_927,
                   'edsr-baseline-ciaosr': 2_649_054, 'edsr-baseline-lmciaosr': 1_955_438}
MODEL_CONFIGS = sorted(os.path.basename(p)[:-5] for p in glob.glob(f'{REPO}/configs/models/*.yaml'))


@pytest.mark.parametrize('name', [n if n.startswith('edsr-baseline') else pytest.param(n, marks=pytest.mark.slow)
                                  for n in MODEL_CONFIGS])
@torch.no_grad()
def test_model_configs_build_their_models(name):
    """Each file builds its encoder x decoder (named encoder-decoder), which decodes an image."""
    cfg = load_config(f'{REPO}/configs/models/{name}.yaml')
    model = models.make(cfg['model']).eval()
    encoder = cfg['model']['args'].get('encoder_spec') or cfg['model']['args']['encoder']
    assert name == f"{encoder['name']}-{cfg['model']['name']}"
    out = model(torch.rand(1, 3, 16, 16), make_coord((40, 40)).unsqueeze(0), torch.full((1, 1600, 2), 2 / 40))
    assert out.shape == (1, 1600, 3) and torch.isfinite(out).all()
    if name in OFFICIAL_PARAMS:
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize('path', sorted(glob.glob(f'{REPO}/configs/train-div2k/train_*.yaml')), ids=os.path.basename)
def test_training_configs_carry_their_model_block_unchanged(path):
    """A recipe and a model block merge key by key: the result must be the model file's block."""
    name = os.path.basename(path)[len('train_'):-len('.yaml')]
    assert load_config(path)['model'] == load_config(f'{REPO}/configs/models/{name}.yaml')['model']


def test_an_ablation_inherits_a_model_config(tmp_path):
    write(tmp_path / 'no-ensemble.yaml', f'_base_: {REPO}/configs/models/edsr-baseline-liif.yaml\n'
                                         'model: {args: {local_ensemble: false}}\n')
    cfg = load_config(tmp_path / 'no-ensemble.yaml', ['model.args.imnet_spec.args.hidden_list=[32]'])
    assert cfg['model']['args']['local_ensemble'] is False
    assert cfg['model']['args']['encoder_spec']['name'] == 'edsr-baseline'
    assert cfg['model']['args']['imnet_spec']['args'] == {'out_dim': 3, 'hidden_list': [32]}


def test_override_reads_exponent_numbers_without_a_dot():
    cfg = {'optimizer': {'args': {'lr': 1e-4}}}
    apply_override(cfg, 'optimizer.args.lr=2e-3')
    assert cfg['optimizer']['args']['lr'] == 0.002
    apply_override(cfg, 'optimizer.args.lr=abc')
    assert cfg['optimizer']['args']['lr'] == 'abc'
