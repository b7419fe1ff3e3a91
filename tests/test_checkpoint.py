import os

import pytest
import torch

import models
from models.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from shared import OFFICIAL_CKPT, need, tiny_liif_spec

SPEC = tiny_liif_spec()


def test_save_then_load_round_trip_in_the_official_format(tmp_path):
    model = models.make(SPEC)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    path = tmp_path / 'epoch-last.pth'
    save_checkpoint(path, SPEC, model, {'name': 'adam', 'args': {'lr': 1e-4}}, optimizer, epoch=3)
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {'model', 'optimizer', 'epoch'} and ckpt['epoch'] == 3
    assert ckpt['model']['name'] == 'liif' and ckpt['model']['args'] == SPEC['args']
    assert ckpt['optimizer']['name'] == 'adam'
    loaded = load_model(str(path))
    expected, got = model.state_dict(), loaded.state_dict()
    assert list(got) == list(expected) and len(expected) > 0
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    assert not loaded.training
    assert os.listdir(tmp_path) == ['epoch-last.pth']  # no temporary file left behind


def test_module_prefix_from_data_parallel_is_stripped(tmp_path):
    model = models.make(SPEC)
    sd = {'module.' + k: v for k, v in model.state_dict().items()}
    torch.save({'model': {'name': 'liif', 'args': SPEC['args'], 'sd': sd}}, tmp_path / 'ddp.pth')
    loaded = load_model(str(tmp_path / 'ddp.pth'))
    assert torch.equal(loaded.imnet.layers[0].weight, model.imnet.layers[0].weight)


def test_official_checkpoint_has_the_official_layout():
    ckpt = load_checkpoint(need(OFFICIAL_CKPT))
    assert ckpt['model']['name'] == 'liif' and 'optimizer' in ckpt and ckpt['epoch'] == 1000
    assert 'encoder.body.0.body.0.weight' in ckpt['model']['sd']


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def bad_checkpoints(tmp_path):
    good = models.make(SPEC)
    other = models.make({**SPEC, 'args': {**SPEC['args'], 'encoder_spec': {
        'name': 'edsr-baseline', 'args': {'no_upsampling': True, 'n_resblocks': 2, 'n_feats': 8}}}})
    wider = models.make({**SPEC, 'args': {**SPEC['args'], 'encoder_spec': {
        'name': 'edsr-baseline', 'args': {'no_upsampling': True, 'n_resblocks': 1, 'n_feats': 12}}}})
    torch.save({'model': {'name': 'no-such-model', 'args': {}, 'sd': {}}}, tmp_path / 'unknown.pth')
    torch.save({'model': {'name': 'liif', 'args': SPEC['args'], 'sd': other.state_dict()}}, tmp_path / 'deeper.pth')
    torch.save({'model': {'name': 'liif', 'args': SPEC['args'], 'sd': wider.state_dict()}}, tmp_path / 'wider.pth')
    torch.save({'weights': good.state_dict()}, tmp_path / 'not-a-model.pth')
    torch.save(good.state_dict(), tmp_path / 'bare-sd.pth')
    save_checkpoint(tmp_path / 'good.pth', SPEC, good)
    unknown_arg = {**SPEC['args'], 'encoder_spec': {'name': 'swinir', 'args': SPEC['args']['encoder_spec']['args']}}
    torch.save({'model': {'name': 'liif', 'args': unknown_arg, 'sd': {}}}, tmp_path / 'unknown-arg.pth')
    data = open(tmp_path / 'good.pth', 'rb').read()
    return {
        'missing': (str(tmp_path / 'nope.pth'), 'no such checkpoint file'),
        'text': (write(tmp_path / 'notes.pth', b'hello, not a checkpoint\n'), 'not a readable PyTorch checkpoint'),
        'truncated': (write(tmp_path / 'cut.pth', data[:len(data) // 2]), 'not a readable PyTorch checkpoint'),
        'unknown': (str(tmp_path / 'unknown.pth'), "unknown model 'no-such-model'"),
        'unknown-arg': (str(tmp_path / 'unknown-arg.pth'),
                        "model.args.encoder_spec.args.n_resblocks: 'swinir' takes no argument 'n_resblocks'"),
        'deeper': (str(tmp_path / 'deeper.pth'), 'weights do not fit model .liif.: 2 missing.*6 unexpected'),
        'wider': (str(tmp_path / 'wider.pth'), 'weights do not fit model .liif.: size mismatch'),
        'not-a-model': (str(tmp_path / 'not-a-model.pth'), 'not a model checkpoint'),
        'bare-sd': (str(tmp_path / 'bare-sd.pth'), 'not a model checkpoint'),
    }


def test_bad_checkpoints_give_one_line_errors_naming_the_file(tmp_path):
    for case, (path, message) in bad_checkpoints(tmp_path).items():
        with pytest.raises(CheckpointError, match=message) as err:
            load_model(path)
        text = str(err.value)
        assert text.startswith(path) and '\n' not in text, (case, text)


def test_pickled_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ('echo pwned',))
    torch.save({'model': Payload()}, tmp_path / 'evil.pth', _use_new_zipfile_serialization=True)
    with pytest.raises(CheckpointError, match='not a readable PyTorch checkpoint'):
        load_model(str(tmp_path / 'evil.pth'))
