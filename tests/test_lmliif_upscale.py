"""Whole-image inference with LM-LIIF (models/upscale.py): the row-run grid decoder and tiling
against one untiled forward, bounded tiles and chunks, bf16, and CMSR (decoded whole)."""
import itertools

import pytest
import torch

from models import cmsr
from models.upscale import upscale
from utils.coords import make_coord
from tiny_lmliif import quartile_table, tiny_lmliif

TOL = 1e-5


pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: a second thread only adds contention


def image(h, w, seed=0):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


def forward(model, inp, size, cell_scale=1.0):
    """The official forward on the whole output grid, as upscale() returns it (3, H, W) in [0, 1]."""
    H, W = size
    coord = make_coord((H, W)).unsqueeze(0)
    cell = torch.tensor([2 / H * cell_scale, 2 / W * cell_scale]).expand_as(coord)
    with torch.no_grad():
        pred = model(((inp - 0.5) / 0.5).unsqueeze(0), coord, cell)
    return (pred[0] * 0.5 + 0.5).clamp(0, 1).t().reshape(3, H, W)


@pytest.mark.parametrize('size, local_ensemble', list(itertools.product(
    [(45, 31), (104, 88), (20, 6)], [True, False])))  # x3.5 by x2.8, x8, and x1.5 by x0.5 (downscaling a side)
def test_tiles_and_chunks_equal_one_forward(size, local_ensemble):
    model = tiny_lmliif()
    model.local_ensemble = local_ensemble
    inp = image(13, 11)
    whole = forward(model, inp, size)
    for tile, chunk in [(256, None), (256, 50), (4, 97), (5, 7)]:
        assert (upscale(model, inp, size, tile=tile, chunk=chunk) - whole).abs().max() < TOL, (tile, chunk)
    model.decoder = 'plain'  # query_grid through the equations' form
    assert (upscale(model, inp, size, chunk=60) - whole).abs().max() < TOL  # (whole feature maps only)


def test_tiles_and_chunks_stay_bounded():
    model = tiny_lmliif()
    crops, calls = [], []
    gen_feat, query_grid = model.gen_feat, model.query_grid
    model.gen_feat = lambda inp, crop=None: crops.append(inp.shape[-2:]) or gen_feat(inp, crop)
    model.query_grid = lambda ys, xs, cell, chunk: calls.append(len(ys) * len(xs)) or query_grid(ys, xs, cell, chunk)
    inp = image(40, 30)
    out = upscale(model, inp, (320, 240), tile=8, chunk=500)
    halo = model.encoder.receptive_radius + 3
    assert len(crops) == 20 and max(max(c) for c in crops) <= 8 + 2 * halo
    assert max(calls) <= 500 and sum(calls) == 320 * 240
    assert (out - forward(model, inp, (320, 240))).abs().max() < TOL


def test_bf16_is_close_to_float32():
    model = tiny_lmliif()
    inp = image(12, 16)
    fp32 = upscale(model, inp, (72, 96))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        bf16 = upscale(model, inp, (72, 96))
        # encoder and hypernetwork in bf16; the 16-wide per-query MLP stays float32 (models/lmliif.py)
        hyper_cell = torch.tensor([[[2 / 72, 2 / 96]]])
        assert model.feat.dtype == model.modulations(hyper_cell).rows.dtype == torch.bfloat16
        assert model.modulations(hyper_cell).table.dtype == torch.float32
    diff = (bf16 - fp32).abs()
    assert 0 < diff.max() < 0.01 and diff.mean() < 0.002, (diff.max(), diff.mean())  # measured 1e-3, 2e-4


def test_cmsr_decodes_the_whole_image_and_counts_what_it_renders():
    model = tiny_lmliif()
    inp = image(12, 16)
    cell = torch.tensor([2 / 72, 2 / 96])
    model.cmsr = cmsr.CMSR(quartile_table(model, ((inp - 0.5) / 0.5).unsqueeze(0), cell))
    whole = forward(model, inp, (72, 96))
    assert model.cmsr.last['levels'] == [1, 2, 4, 6] and all(model.cmsr.last['points'])
    model.cmsr.take_stats()
    for tile in (4, 256):  # CMSR merges its levels over the whole grid: the tile does not matter
        assert (upscale(model, inp, (72, 96), tile=tile, chunk=100) - whole).abs().max() < TOL
    stats = model.cmsr.take_stats()
    assert stats['images'] == 2 and stats['queries'] == 2 * 72 * 96
    assert stats['rendered'] == 2 * sum(model.cmsr.last['points']) < stats['queries']
    # without CMSR the result differs; at x4 and below CMSR is not used at all
    plain = tiny_lmliif()
    assert (upscale(plain, inp, (72, 96)) - whole).abs().max() > 0.01
    assert torch.equal(upscale(model, inp, (48, 64)), upscale(plain, inp, (48, 64)))
    assert model.cmsr.take_stats()['images'] == 0


def test_cmsr_with_other_scales_per_axis():
    """x6 by x8: CMSR's levels use the mean scale (sqrt 48) and its last level, not the output
    grid, is resampled to the pixels (the official code requires the exact int(h S) grid)."""
    model = tiny_lmliif()
    inp = image(12, 16)
    model.cmsr = cmsr.CMSR(quartile_table(model, ((inp - 0.5) / 0.5).unsqueeze(0), torch.tensor([2 / 72, 2 / 128])))
    out = upscale(model, inp, (72, 128))
    assert out.shape == (3, 72, 128)
    assert model.cmsr.last['scale'] == pytest.approx(48 ** 0.5) and model.cmsr.last['levels'][-1] == 6
    assert (out - forward(tiny_lmliif(), inp, (72, 128))).abs().mean() < 0.05  # close to the full render


def test_cmsr_rendering_every_pixel_at_the_target_scale_equals_the_full_render_borders_included():
    """The level grids are the levels' pixel centres: with every pixel at x8 CMSR is the full
    render (cell clip at x4, as CMSR's cells), borders included. The official grids (the LR
    centres resized, clamped at the border) give flat blocks half an LR pixel wide along the
    bottom and right edges, which the paper's shave hides."""
    model = tiny_lmliif()
    inp = image(12, 16)
    full = upscale(model, inp, (96, 128), cell_clip=4)
    model.cmsr = cmsr.CMSR({8: {1: 0.0}})  # no strength is <= 0: every pixel goes to x8
    out = upscale(model, inp, (96, 128), cell_clip=4)
    assert model.cmsr.last['levels'] == [1, 8] and model.cmsr.last['rendered_fraction'] == 1
    assert (out - full).abs().max() < TOL
    model.cmsr.official_grid = True
    official = upscale(model, inp, (96, 128), cell_clip=4)
    assert (official - full)[:, 4:-4, 4:-4].abs().max() < TOL
    for band in (official[:, :4], official[:, -4:], official[:, :, :4].transpose(1, 2), official[:, :, -4:].transpose(1, 2)):
        assert torch.equal(band, band[:, :1].expand_as(band))  # 4 equal rows (columns): flat blocks
    assert (official - full)[:, -4:].abs().max() > 1e-3 and (official - full)[:, :, :4].abs().max() > 1e-3
