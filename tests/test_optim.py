"""Optimizers from the config (their argument checks) and learning-rate schedules: the cosine
schedule's values and its config errors."""
import math

import pytest
import torch

from utils.config import ConfigError
from utils.optim import check_optimizer, cosine_factor, make_optimizer, make_scheduler


def test_cosine_factor_warms_up_linearly_then_falls_to_zero():
    assert [cosine_factor(i, 4, 12) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine_factor(4, 4, 12) == 1.0
    assert cosine_factor(8, 4, 12) == pytest.approx(0.5)
    assert cosine_factor(10, 4, 12) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    assert cosine_factor(12, 4, 12) == pytest.approx(0.0)
    assert cosine_factor(0, 0, 10) == 1.0  # no warm-up


def test_cosine_scheduler_steps_every_iteration():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    scheduler, per_iteration = make_scheduler(optimizer, {'epoch_max': 3, 'cosine_lr': {'warmup_epochs': 1}}, 4)
    assert per_iteration
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lrs[4:] == pytest.approx([1e-3 * cosine_factor(i, 4, 12) for i in range(4, 12)])
    assert lrs[-1] < 0.04 * 1e-3


def test_multi_step_is_stepped_per_epoch_and_none_is_constant():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler, per_iteration = make_scheduler(optimizer, {'multi_step_lr': {'milestones': [2], 'gamma': 0.5}}, 4)
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR) and not per_iteration
    assert make_scheduler(optimizer, {'epoch_max': 3}, 4) == (None, False)


@pytest.mark.parametrize('cfg, message', [
    ({'epoch_max': 3, 'multi_step_lr': {'milestones': [1]}, 'cosine_lr': {}}, 'multi_step_lr and cosine_lr are both set'),
    ({'epoch_max': 3, 'cosine_lr': {'warmup_epochs': 3}}, 'cosine_lr'),
    ({'epoch_max': 3, 'cosine_lr': {'warmup_epochs': -1}}, 'cosine_lr'),
    ({'epoch_max': 3, 'cosine_lr': {'warmup': 1}}, "cosine_lr {'warmup': 1}"),
    ({'epoch_max': 3, 'cosine_lr': 5}, 'cosine_lr 5'),
    ({'cosine_lr': {'warmup_epochs': 1}}, "'epoch_max' missing"),
])
def test_bad_schedules_are_config_errors(cfg, message):
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(ConfigError, match=message.replace('{', r'\{').replace('[', r'\[')):
        make_scheduler(optimizer, cfg, 4)


def test_ema_follows_its_formula_and_copies_buffers():
    from utils.ema import EMA
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(model, 0.9)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.add_(1.0)
        ema.update(model)
        for name, p in model.named_parameters():
            expected[name] = 0.9 * expected[name] + 0.1 * p
    got = ema.model.state_dict()
    for name, _ in model.named_parameters():
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
        assert not torch.allclose(got[name], dict(model.named_parameters())[name])  # an average, not a copy
    assert torch.equal(got['1.running_mean'], model[1].running_mean)  # buffers are copied
    with pytest.raises(ConfigError, match='ema.decay'):
        EMA(model, 1.0)


@pytest.mark.parametrize('spec, message', [
    ({'name': 'adam', 'args': {'lr': 'fast'}}, "optimizer.args.lr 'fast': expected a positive number"),
    ({'name': 'adam', 'args': {'lr': '1e-4'}},
     "optimizer.args.lr '1e-4': expected a positive number (YAML reads 1e-4 as text: write it with a dot"),
    ({'name': 'adam', 'args': {'lr': 0}}, 'optimizer.args.lr 0: expected a positive number'),
    ({'name': 'adam', 'args': {'lr': 1e-4, 'betas': [0.9]}},
     'optimizer.args.betas [0.9]: expected two numbers in [0, 1)'),
    ({'name': 'adamw', 'args': {'lr': 1e-4, 'weight_decay': -0.1}}, 'optimizer.args.weight_decay -0.1: expected a number >= 0'),
    ({'name': 'adam', 'args': {'lr': 1e-4, 'momentum': 0.9}}, 'optimizer.args.momentum: not an argument of adam (its arguments: lr,'),
    ({'name': 'sgd', 'args': {'lr': 1e-2, 'nesterov': 'yes'}}, "optimizer.args.nesterov 'yes': expected true or false"),
    ({'name': 'sgd', 'args': {'lr': 1e-2, 'nesterov': True}}, 'optimizer.args {'),  # torch: nesterov needs momentum
    ({'name': 'adam', 'args': [1e-4]}, 'optimizer.args [0.0001]: expected a mapping'),
    ({'name': 'lamb', 'args': {'lr': 1e-4}}, "optimizer.name 'lamb' is not one of adam, adamw, sgd"),
    ('adam', "optimizer 'adam': expected {name: adam | adamw | sgd, args: {lr: ...}}"),
])
def test_bad_optimizer_config_is_one_line_naming_the_key(spec, message):
    with pytest.raises(ConfigError) as e:
        check_optimizer(spec)
    assert str(e.value).startswith(message) and '\n' not in str(e.value), str(e.value)


def test_good_optimizer_configs_pass_and_build():
    param = torch.nn.Parameter(torch.zeros(1))
    for spec in ({'name': 'adam', 'args': {'lr': 5.e-4}}, {'name': 'adam'},
                 {'name': 'adamw', 'args': {'lr': 1e-4, 'betas': [0.9, 0.99], 'weight_decay': 0.01, 'amsgrad': True}},
                 {'name': 'sgd', 'args': {'lr': 1e-2, 'momentum': 0.9, 'nesterov': True}}):
        check_optimizer(spec)
        assert make_optimizer([param], spec).param_groups[0]['lr'] == (spec.get('args') or {}).get('lr', 1e-3)
