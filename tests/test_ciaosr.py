"""CiaoSR, LM-CiaoSR (models/ciaosr.py, lmciaosr.py, cross_scale.py) and the RCAN encoder
(models/rcan.py) against dumps of the official LMF code (shared/reference/{ciaosr,lmciaosr,rcan}:
seeded, smaller models; inputs and the outputs of every official path: the forward, chunked,
odd-sized, 48x100 (non-local tiles) and 40x64 (no tiles: zero non-local features) inputs, x6/x8
grids, LM-CiaoSR's training and calibration paths and CMSR), and the CiaoSR repository's key
names through scripts/convert_ciaosr.py."""
import os
import re

import pytest
import torch

import models
from models.cmsr_calibration import calibrating
from models import scale2mod
from models.checkpoint import load_model, save_checkpoint
from models.upscale import upscale
from utils.coords import make_coord
from cli import load_script, run_main
from reference import Dump, max_diff, official_model
from shared import DATA, need
from tiny_lmliif import write_images
from tiny_models import spec, tiny

TOL = 1e-5
FAMILIES = ['ciaosr', 'lmciaosr']
CASES = ['', 'x6_', 'odd_', 'crop_', 'thin_']  # inputs and queries of <case>out_full.pt
# the official-size models: (state-dict tensors, values)
OFFICIAL_SIZE = {'ciaosr': (114, 2_649_055), 'lmciaosr': (118, 1_955_439), 'rcan': (1628, 15_295_224)}

pytestmark = pytest.mark.usefixtures('one_thread')  # small tensors: a second thread only adds contention


@pytest.mark.parametrize('name', FAMILIES + ['rcan'])
def test_state_dict_loads_strictly_with_official_names_and_sizes(name):
    ref = Dump(name)
    sd = ref('sd.pt')
    model = models.make(ref.spec())
    assert list(model.state_dict()) == list(sd)
    model.load_state_dict(sd, strict=True)
    official = models.make(ref.json('info.json')['official_spec']).state_dict()
    assert (len(official), sum(v.numel() for v in official.values())) == OFFICIAL_SIZE[name]


@pytest.mark.parametrize('decoder', ['fast', 'plain'])
@pytest.mark.parametrize('name', FAMILIES)
@torch.no_grad()
def test_outputs_of_every_input_match(name, decoder):
    ref = Dump(name)
    model = official_model(name, decoder)
    for case in CASES:
        inp = ref('inp.pt' if case in ('', 'x6_') else f'{case}inp.pt')
        out = model(inp, ref(f'{case}coord.pt'), ref(f'{case}cell.pt'))
        assert max_diff(out, ref(f'{case}out_full.pt')) < TOL, case
    model(ref('inp.pt'))
    assert max_diff(model.feat, ref('feat.pt')) < TOL
    assert max_diff(model.nonlocal_feat, ref('nonlocal.pt')) < TOL
    assert max_diff(model(ref('inp.pt'), ref('coord.pt'), ref('cell.pt'), bsize=64), ref('out_bsize64.pt')) < TOL
    model(ref('thin_inp.pt'))
    assert model.nonlocal_feat.abs().max() == 0  # 40 x 64: more than 48^2 latents, no whole 48 x 48 tile


@torch.no_grad()
def test_lmciaosr_paths_and_modulations():
    ref = Dump('lmciaosr')
    model = official_model('lmciaosr')
    inp, coord, cell = ref('inp.pt'), ref('coord.pt'), ref('cell.pt')
    model(inp)
    assert max_diff(model.gen_modulations(cell), ref('mod.pt')) < TOL
    with calibrating(model):  # the official eval-mode query_rgb, what its CMSR calibration renders: no LR skip
        assert max_diff(model.query_rgb(coord, cell), ref('out_query_rgb_eval.pt')) < TOL
    model.train()  # the official training path has no LR skip either
    assert max_diff(model(inp, coord, cell), ref('out_train_path.pt')) < TOL
    model.eval()
    assert max_diff(model(inp, ref('x8_coord.pt'), ref('x8_cell.pt')), ref('x8_out_full.pt')) < TOL


@torch.no_grad()
def test_lmciaosr_latent_stage_in_bands_of_rows(monkeypatch):
    """The latent stage runs on bands of LR rows (bounded memory): a band of 1 row, the same output."""
    ref = Dump('lmciaosr')
    monkeypatch.setattr(models.lmciaosr, 'LATENT_PIXELS', 60)  # 48 x 100 latents: one row a band
    out = official_model('lmciaosr')(ref('crop_inp.pt'), ref('crop_coord.pt'), ref('crop_cell.pt'))
    assert max_diff(out, ref('crop_out_full.pt')) < TOL


@pytest.mark.parametrize('table', ['synthetic', 'shipped'])
@pytest.mark.parametrize('s', [6, 8])
@torch.no_grad()
def test_lmciaosr_cmsr_matches_official(s, table):
    ref = Dump('lmciaosr')
    model = official_model('lmciaosr', s2m=ref.cmsr_tables(table))
    out = model(ref('inp.pt'), ref(f'x{s}_coord.pt'), ref(f'x{s}_cell.pt'))
    assert max_diff(out, ref(f'x{s}_out_cmsr_{table}.pt')) < TOL
    official = ref.json('info.json')['cmsr'][f'x{s}_{table}']
    assert model.cmsr.last['points'] == [n for _, n in official['(decode scale, points) per level']]
    assert model.cmsr.last['official_ratio'] == pytest.approx(official['valid_mask_ratio(total_q/total_qn)'], rel=1e-9)


@torch.no_grad()
def test_rcan_matches_official_and_is_encoded_whole():
    ref = Dump('rcan')
    encoder = models.make(ref.spec()).eval()
    encoder.load_state_dict(ref('sd.pt'), strict=True)
    for case in ('enc', 'enc_odd', 'enc_big'):
        assert max_diff(encoder(ref(f'{case}_inp.pt')), ref(f'{case}_out.pt')) < TOL, case
    # its channel attention pools over the whole image: tiles would change the features
    assert encoder.receptive_radius is None
    big = ref('enc_big_inp.pt')
    left = encoder(big[..., :24])[..., :20]
    assert max_diff(left, ref('enc_big_out.pt')[..., :20]) > 1e-3


CONVERT_CLI = load_script('scripts/convert_ciaosr')


def ciaosr_repository_names(sd, n_blocks):
    """The dump's weights under the CiaoSR repository's names (mmediting: `generator.` prefix,
    EDSR trunk as conv_first, body.i.conv1/conv2, conv_after_body; no MeanShift)."""
    out = {}
    for key, value in sd.items():
        if 'mean' in key:
            continue
        key = re.sub(r'^encoder\.head\.0\.', 'encoder.conv_first.', key)
        key = re.sub(rf'^encoder\.body\.{n_blocks}\.', 'encoder.conv_after_body.', key)
        key = re.sub(r'^encoder\.body\.(\d+)\.body\.([02])\.', lambda m: f'encoder.body.{m[1]}.conv{int(m[2]) // 2 + 1}.', key)
        out['generator.' + key] = value
    return out


@torch.no_grad()
def test_a_ciaosr_repository_checkpoint_converts_to_the_same_model(tmp_path):
    ref = Dump('ciaosr')
    torch.save({'meta': {}, 'state_dict': ciaosr_repository_names(ref('sd.pt'), 2)}, tmp_path / 'cr.pth')
    proc = run_main(CONVERT_CLI, tmp_path / 'cr.pth', tmp_path / 'converted.pth')
    assert proc.returncode == 0, proc.stderr
    model = load_model(str(tmp_path / 'converted.pth'))
    assert model.state_dict().keys() == ref('sd.pt').keys()
    assert max_diff(model(ref('inp.pt'), ref('coord.pt'), ref('cell.pt')), ref('out_full.pt')) < TOL
    again = run_main(CONVERT_CLI, tmp_path / 'cr.pth', tmp_path / 'converted.pth')
    assert again.returncode == 2 and 'already exists' in again.stderr  # never replaced silently
    # the CiaoSR repository's normalisation (the mean colour subtracted, no division) comes with it
    model, norm = load_model(str(tmp_path / 'converted.pth'), with_data_norm=True)
    assert norm[0] == pytest.approx((0.4488, 0.4371, 0.404)) and norm[1] == 1
    lr, size = ref('odd_inp.pt')[0] * 0.5 + 0.5, (39, 45)
    mean = torch.tensor(norm[0]).view(3, 1, 1)
    coord = make_coord(size).unsqueeze(0)
    pred = model((lr - mean).unsqueeze(0), coord, torch.tensor([2 / 39, 2 / 45]).expand_as(coord))
    assert max_diff(upscale(model, lr, size, data_norm=norm), (pred[0].t().reshape(3, *size) + mean).clamp(0, 1)) < TOL


@pytest.mark.slow
def test_test_py_scores_a_converted_checkpoint_with_its_normalisation(tmp_path):
    torch.save({'state_dict': ciaosr_repository_names(Dump('ciaosr')('sd.pt'), 2)}, tmp_path / 'cr.pth')
    assert run_main(CONVERT_CLI, tmp_path / 'cr.pth', tmp_path / 'converted.pth').returncode == 0
    proc = run_main(load_script('test'), '--config', 'configs/test/test-set5-4.yaml', '--model', tmp_path / 'converted.pth',
                    '--load-dir', need(os.path.join(DATA, 'benchmark', 'Set5')) and DATA, '--device', 'cpu')
    assert proc.returncode == 0 and 'data_norm of the checkpoint (sub (0.448' in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize('name', FAMILIES)
@torch.no_grad()
def test_upscale_equals_the_official_forward(name):
    """Whole-image inference: the image is encoded whole (non-local features), decoded in chunks."""
    ref = Dump(name)
    model = official_model(name)
    lr = ref('odd_inp.pt')[0] * 0.5 + 0.5
    out = upscale(model, lr, (39, 45), tile=4, chunk=100)
    coord = make_coord((39, 45)).unsqueeze(0)
    cell = torch.tensor([2 / 39, 2 / 45]).expand_as(coord)
    expected = (model(ref('odd_inp.pt'), coord, cell)[0] * 0.5 + 0.5).clamp(0, 1).t().reshape(3, 39, 45)
    assert max_diff(out, expected) < TOL


def test_calibration_script_makes_an_lmciaosr_table(tmp_path):
    """scripts/calibrate_cmsr.py on an LM-CiaoSR: its strengths are tried up to 0.5, as officially."""
    model = tiny('lmciaosr').eval()
    assert model.calibration_top == 0.5
    save_checkpoint(str(tmp_path / 'lm.pth'), spec('lmciaosr'), model)
    proc = run_main(load_script('scripts/calibrate_cmsr'), '--model', tmp_path / 'lm.pth', '--out', tmp_path / 't.yaml',
                    '--hr', write_images(tmp_path / 'hr', n=1, size=(72, 96)), '--scales', '6', '--device', 'cpu')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(scale2mod.load(str(tmp_path / 't.yaml'))) == [6] and 'x6 median: detail' in proc.stdout
