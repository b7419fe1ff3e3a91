"""LM-LIIF's decoder through torch.compile (test.py / demo.py --compile): compile_decoder compiles
the per-query form (forward, CMSR's levels); upscale()'s grid decoding stays eager. The same
results as eager, tiles and CMSR included."""
import pytest
import torch

from models import cmsr
from models.upscale import upscale
from utils.coords import make_coord
from utils.speedups import compile_decoder, compile_unsupported
from tiny_lmliif import quartile_table, tiny_lmliif


@pytest.mark.slow
def test_compiled_decoder_equals_eager():
    device = torch.device('cpu')
    if compile_unsupported(device):
        pytest.skip(compile_unsupported(device))
    torch._dynamo.reset()
    model = tiny_lmliif()
    inp = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(0))
    x = ((inp - 0.5) / 0.5).unsqueeze(0)
    coords = [make_coord(size).unsqueeze(0) for size in [(30, 40), (31, 17)]]
    cells = [torch.tensor([2 / 30, 2 / 40]).expand_as(coords[0]), torch.full_like(coords[1], 0.05)]
    with torch.no_grad():
        eager = [model(x, coord, cell, bsize=500) for coord, cell in zip(coords, cells)]
    eager_tiles = upscale(model, inp, (30, 40), tile=7)
    table = quartile_table(model, x, torch.tensor([2 / 72, 2 / 96]))
    cmsr.enable(model, table)
    eager_cmsr = upscale(model, inp, (72, 96))

    model.cmsr_spec = None
    assert compile_decoder(model, device) is None and model.compiled_query is not None
    with torch.no_grad():
        for coord, cell, expected in zip(coords, cells, eager):
            assert (model(x, coord, cell, bsize=500) - expected).abs().max() < 1e-5
    assert (upscale(model, inp, (30, 40), tile=7) - eager_tiles).abs().max() < 1e-5
    cmsr.enable(model, table)
    assert (upscale(model, inp, (72, 96)) - eager_cmsr).abs().max() < 1e-5
    assert model.cmsr_log['levels'] == [1, 2, 4, 6]
