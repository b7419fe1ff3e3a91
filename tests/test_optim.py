"""Learning-rate schedules: the cosine schedule's values and its config errors."""
import math

import pytest
import torch

from utils.config import ConfigError
from utils.optim import cosine_factor, make_scheduler


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
