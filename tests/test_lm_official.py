"""LM-LIIF and LM-LTE (models/lmliif.py, lmlte.py, modulated.py, cmsr.py) against dumps of the
official LMF code (shared/reference/{lmliif,lmlte}: seeded weights, inputs and the outputs of
every official path: forward, chunked, eval and training query_rgb, x6/x8/x12 grids with the cell
clip, CMSR with a synthetic and with the shipped table)."""
import pytest
import torch
import torch.nn.functional as F

import models
from models.cmsr import CMSR
from utils.coords import make_coord
from reference import Dump, max_diff, official_model

TOL = 1e-5
FAMILIES = ['lmliif', 'lmlte']
# per dump: tensors and values of the state dict, its last key, points CMSR renders with the
# synthetic table (info.json)
FACTS = {'lmliif': (90, 1_386_091, 'imnet.layers.12.bias', 2735),
         'lmlte': (100, 1_490_907, 'imnet.layers.16.bias', 2603)}

pytestmark = pytest.mark.usefixtures('one_thread')  # small tensors: a second thread only adds contention


@pytest.mark.parametrize('name', FAMILIES)
def test_state_dict_loads_strictly_with_official_names(name):
    ref = Dump(name)
    sd = ref('sd.pt')
    n_tensors, n_values, last_key, _ = FACTS[name]
    model = models.make(ref.spec())
    assert list(model.state_dict()) == list(sd) and len(sd) == n_tensors and list(sd)[-1] == last_key
    assert sum(v.numel() for v in sd.values()) == n_values
    model.load_state_dict(sd, strict=True)


@pytest.mark.parametrize('name', FAMILIES)
@torch.no_grad()
def test_outputs_of_every_official_path_match(name):
    ref = Dump(name)
    model = official_model(name)
    inp, coord, cell = ref('inp.pt'), ref('coord.pt'), ref('cell.pt')
    assert model(inp) is None  # as officially: without queries, forward only encodes
    assert max_diff(model.feat, ref('feat.pt')) < TOL
    assert max_diff(model.gen_modulations(cell), ref('mod.pt')) < TOL
    assert max_diff(model(inp, coord, cell), ref('out_full.pt')) < TOL
    assert max_diff(model(inp, coord, cell, bsize=64), ref('out_bsize64.pt')) < TOL
    model.gen_feat(inp)
    assert max_diff(model.query_rgb(coord, cell), ref('out_query_rgb_eval.pt')) < TOL
    for s in (6, 8, 12):
        assert max_diff(model.query_rgb(ref(f'x{s}_coord.pt'), ref(f'x{s}_cell.pt')), ref(f'x{s}_out_full.pt')) < TOL, s
    model.decoder = 'plain'  # the equations' form too (on other weights: test_lmliif.py, test_lmlte.py)
    assert max_diff(model.query_rgb(coord, cell), ref('out_full.pt')) < TOL
    model.decoder = 'fast'
    model.train()
    assert max_diff(model(inp, coord, cell), ref('out_train_path.pt')) < TOL


@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('s', [6, 8, 12])
@torch.no_grad()
def test_cmsr_matches_official_on_synthetic_table(name, s):
    ref = Dump(name)
    model = official_model(name, s2m=ref.cmsr_tables('synthetic'))
    out = model(ref('inp.pt'), ref(f'x{s}_coord.pt'), ref(f'x{s}_cell.pt'))
    assert max_diff(out, ref(f'x{s}_out_cmsr_synthetic.pt')) < TOL
    log = model.cmsr.last
    assert log['levels'] == [1, 2, 4, 6]  # x8 takes table 12 (the first key >= 8), then resamples
    assert sum(log['points']) == FACTS[name][3] and all(log['points'])  # every level renders
    official = ref.json('info.json')['cmsr'][f'x{s}_synthetic']['valid_mask_ratio(total_q/total_qn)']
    assert log['official_ratio'] == pytest.approx(official, rel=1e-9)


@pytest.mark.parametrize('name', FAMILIES)
@torch.no_grad()
def test_cmsr_with_empty_last_level_returns_the_full_grid(name):
    """Shipped table, random weights: every pixel goes to decode scale 1 and the last level (6)
    is empty. The official code then returns the (1, 3, 12, 16) level-1 image; ours resamples it
    onto the last level's grid like any level, giving (1, 6912, 3)."""
    ref = Dump(name)
    cmsr_spec = {'mse_threshold': 2e-5, 's2m_tables': ref.cmsr_tables('shipped'), 'log': True}
    model = models.make(ref.spec(cmsr_spec=cmsr_spec))  # built as the official test.py builds it
    model.load_state_dict(ref('sd.pt'), strict=True)
    model.cmsr.official_grid = True
    out = model.eval()(ref('inp.pt'), ref('x6_coord.pt'), ref('x6_cell.pt'))
    assert out.shape == (1, 72 * 96, 3)
    assert model.cmsr.last['points'] == [192, 0, 0, 0]
    official = ref('x6_out_cmsr_shipped.pt')
    assert official.shape == (1, 3, 12, 16)
    # the last level's grid: the LR centre grid bilinearly resized to 72 x 96 (border clamped)
    lr_grid = make_coord((12, 16), flatten=False).permute(2, 0, 1).unsqueeze(0)
    grid = F.interpolate(lr_grid, size=(72, 96), mode='bilinear', align_corners=False).permute(0, 2, 3, 1)
    expected = F.grid_sample(official, grid.flip(-1), mode='bilinear', padding_mode='border', align_corners=False)
    assert max_diff(out, expected.flatten(2).permute(0, 2, 1)) < TOL


@pytest.mark.parametrize('name', FAMILIES)
@torch.no_grad()
def test_cmsr_only_in_eval_with_more_than_16_queries_per_pixel(name):
    ref = Dump(name)
    model = official_model(name, s2m=ref.cmsr_tables('synthetic'))
    inp = ref('inp.pt')
    model.train()
    assert max_diff(model(inp, ref('x6_coord.pt'), ref('x6_cell.pt')), ref('x6_out_full.pt')) < TOL
    model.eval()
    coord = make_coord((48, 64)).unsqueeze(0)  # x4: exactly 16 queries per LR pixel
    cell = torch.tensor([2 / 48, 2 / 64]).expand_as(coord)
    with_cmsr = model(inp, coord, cell)
    model.cmsr = None
    assert max_diff(with_cmsr, model(inp, coord, cell)) == 0
    model.cmsr = CMSR(ref.cmsr_tables('synthetic'))
    with pytest.raises(ValueError, match='batch size 1'):
        model(inp.expand(2, -1, -1, -1), ref('x6_coord.pt').expand(2, -1, -1), ref('x6_cell.pt').expand(2, -1, -1))
