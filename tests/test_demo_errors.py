"""demo.py's user errors (bad images, sizes, devices, outputs and checkpoints): one line, a non-zero
exit, and no output written or replaced."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import models
from cli import run_main
from demo_helpers import DEMO_CLI, assert_clean_failure, demo, disc, rgb_gradient
from models.checkpoint import save_checkpoint
from shared import tiny_liif_spec as tiny_spec


def run_failing(out, needles, *args, existing=True):
    """Run demo.py (in-process) expecting a user error, with `out` holding an older output
    (existing) or absent; check the failure is clean and nothing in out's folder changed."""
    before = b'existing output' if existing else None
    if existing:
        out.write_bytes(before)
    listing = sorted(os.listdir(out.parent))
    proc = run_main(DEMO_CLI, *args, '--output', out)
    assert_clean_failure(proc, out, needles, before)
    assert sorted(os.listdir(out.parent)) == listing


@pytest.fixture
def bad_inputs(tmp_path):
    d = tmp_path / 'inputs'
    d.mkdir()
    (d / 'text.png').write_text('hello, I am not a PNG\n')
    Image.fromarray(rgb_gradient(64, 64)).save(d / 'full.png')
    data = (d / 'full.png').read_bytes()
    (d / 'truncated.png').write_bytes(data[:len(data) * 2 // 3])
    os.unlink(d / 'full.png')
    return d


@pytest.mark.parametrize('existing', [False, True])
@pytest.mark.parametrize('name, needles', [
    ('missing.png', ['missing.png', 'no such file']),
    ('text.png', ['text.png', 'not an image']),
    ('truncated.png', ['truncated.png', 'truncated']),
])
def test_bad_input_file(tmp_path, tiny_ckpt, bad_inputs, name, needles, existing):
    run_failing(tmp_path / 'out.png', needles, '--input', bad_inputs / name, '--model', tiny_ckpt, '--scale', 2,
                existing=existing)


def test_an_output_under_a_file_is_refused_before_any_work(tmp_path, tiny_ckpt, small_rgb):
    (tmp_path / 'afile').write_text('keep me')
    proc = run_main(DEMO_CLI, '--input', small_rgb, '--model', tiny_ckpt, '--scale', 2, '--output', tmp_path / 'afile' / 'x.png')
    assert proc.returncode == 2 and proc.stdout == '', proc.stderr  # refused before the model loads
    assert proc.stderr == f"demo.py: error: --output {tmp_path / 'afile' / 'x.png'}: cannot be written ({tmp_path / 'afile'} " \
                          f"is not a writable folder)\n"
    assert os.listdir(tmp_path) == ['afile'] and (tmp_path / 'afile').read_text() == 'keep me'


def test_folder_input_with_a_file_name_as_output(tmp_path, tiny_ckpt, small_rgb):
    run_failing(tmp_path / 'out.png', ['out.png', 'folder'], '--input', small_rgb.parent, '--model', tiny_ckpt,
                '--scale', 2, existing=False)


def test_a_bad_file_in_a_folder_stops_before_any_output(tmp_path, tiny_ckpt, bad_inputs):
    os.unlink(bad_inputs / 'text.png')
    Image.fromarray(rgb_gradient(8, 8)).save(bad_inputs / 'a_good.png')  # sorted before the bad one
    out = tmp_path / 'out_folder' / 'x.png'
    proc = demo('--input', bad_inputs, '--output', out.parent, '--model', tiny_ckpt, '--scale', 2, ok=False)
    assert proc.returncode != 0 and 'truncated.png' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(out.parent)


@pytest.mark.parametrize('args, needles', [
    (['--scale', '0'], ['--scale', "'0'"]),
    (['--scale', '-2'], ['--scale', "'-2'"]),
    (['--scale', 'nan'], ['--scale', "'nan'"]),
    (['--scale', 'inf'], ['--scale', "'inf'"]),
    (['--scale', '1e6'], ['--scale', '32768', '24000000x20000000']),
    (['--scale', '2,x'], ['--scale', "'x'"]),
    (['--scale', '2,3,4'], ['--scale', '2,3,4']),
    (['--resolution', '100'], ['--resolution', "'100'"]),
    (['--resolution', '0,10'], ['--resolution', "'0,10'"]),
    (['--resolution', '40000,10'], ['--resolution', '32768']),
    (['--scale', '2', '--resolution', '40,48'], ['--scale', '--resolution', 'not allowed']),
    ([], ['--scale', '--resolution', 'required']),
    (['--scale', '2', '--tile', '0'], ['--tile', "'0'"]),
])
@pytest.mark.parametrize('existing', [False, True])
def test_bad_size_arguments(tmp_path, tiny_ckpt, small_rgb, args, needles, existing):
    run_failing(tmp_path / 'out.png', needles, '--input', small_rgb, '--model', tiny_ckpt, *args, existing=existing)


def test_cuda_without_cuda(tmp_path, tiny_ckpt, small_rgb):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    run_failing(tmp_path / 'out.png', ['--device cuda', 'CUDA'],
                '--input', small_rgb, '--model', tiny_ckpt, '--scale', 2, '--device', 'cuda')


def test_alpha_into_a_format_without_alpha_is_refused(tmp_path, tiny_ckpt):
    src = tmp_path / 'rgba.png'
    Image.fromarray(np.dstack([rgb_gradient(6, 6), disc(6, 6)])).save(src)
    run_failing(tmp_path / 'out.jpg', ['out.jpg', 'alpha'], '--input', src, '--model', tiny_ckpt, '--scale', 2,
                existing=False)


def test_cmsr_with_a_model_without_one_says_so(tmp_path, tiny_ckpt, small_rgb):
    run_failing(tmp_path / 'out.png', [f'--cmsr: {tiny_ckpt} holds a LIIF model, which has no CMSR'],
                '--input', small_rgb, '--model', tiny_ckpt, '--scale', 8, '--cmsr')


def write_bad_checkpoint(path, kind):
    if kind == 'unknown-name':
        torch.save({'model': {'name': 'no-such-model', 'args': {}, 'sd': {}}}, path)
    elif kind == 'other-size':  # a LIIF spec with 8 features, weights of one with 16
        sd = models.make(tiny_spec(n_feats=16)).state_dict()
        torch.save({'model': {'name': 'liif', 'args': tiny_spec(8)['args'], 'sd': sd}}, path)
    elif kind == 'encoder-only':  # a valid checkpoint of a plain EDSR, which has no decoder
        spec = {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8, 'no_upsampling': True}}
        save_checkpoint(str(path), spec, models.make(spec))
    elif kind == 'text':
        path.write_text('not a checkpoint\n')
    elif kind == 'image':
        Image.fromarray(rgb_gradient(8, 8)).save(path, format='PNG')
    elif kind == 'corrupt':
        save_checkpoint(str(path), tiny_spec(), models.make(tiny_spec()))
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize('kind, needles', [
    ('missing', ['ckpt.pth', 'no such checkpoint']),
    ('unknown-name', ['ckpt.pth', 'no-such-model']),
    ('other-size', ['ckpt.pth', 'do not fit', 'liif']),
    ('encoder-only', ['ckpt.pth', 'not an arbitrary-scale model']),
    ('text', ['ckpt.pth', 'not a readable PyTorch checkpoint']),
    ('image', ['ckpt.pth', 'not a readable PyTorch checkpoint']),
    ('corrupt', ['ckpt.pth', 'checkpoint']),
])
def test_bad_checkpoint(tmp_path, small_rgb, kind, needles):
    ckpt = tmp_path / 'ckpt.pth'
    write_bad_checkpoint(ckpt, kind)
    run_failing(tmp_path / 'out.png', needles, '--input', small_rgb, '--model', ckpt, '--scale', 2)
