"""The model contract: what an encoder declares, what a decoder family provides, and what the
rest of the project (upscale.py, test.py, demo.py, train.py) may rely on (README.md, Layout).

Encoders set `out_dim` (feature channels), `receptive_radius` (input pixels on each side one
output feature can depend on, for crops laid as below; None: the whole image, as RCAN's channel
attention) and `window` (crops start at multiples of it: 1 for convolutions, SwinIR's attention
window). models/upscale.py reads them to encode in tiles whose output equals the untiled one.

A decoder family subclasses `LocalImplicitSR` in one registered file and writes the paper's
equations (`query_rgb_plain`: unfold, grid_sample, one MLP call per local-ensemble member; the
test oracle, on whole feature maps) and a fast form of the same function (`make_tables`:
per-LR-pixel tables made once per encoding; `fast_query`: integer gathers from them, for queries
in the full image's frame and features at a `Crop` of the full LR grid). It may set
`adds_lr_skip` and override `query_grid` (an output grid decoded directly), `reach` (LR pixels
beyond a query's nearest it reads), `receptive_radius` (None where its own feature stage sees the
whole map) and `decodes_whole` (one piece, as CMSR). The base owns the rest: encode once, the
official `forward(inp, coord, cell, bsize)`, chunks, the tables' cache, compile, the plain/fast
switch. Latent-modulated families extend it in models/modulated.py.
"""
import math
from collections import namedtuple
from typing import NamedTuple

import torch
import torch.nn as nn

from .local_ensemble import lr_skip
from .models import make


class Crop(NamedTuple):
    """Where features lie in the full LR grid: their h x w pixels start at row `top`, column
    `left` of a full_h x full_w grid (the whole grid: (0, 0, h, w, h, w))."""
    top: int
    left: int
    full_h: int
    full_w: int
    h: int
    w: int

    @property
    def whole(self):
        return (self.top, self.left, self.full_h, self.full_w) == (0, 0, self.h, self.w)


Cache = namedtuple('Cache', 'key grad value')


def grid_coord(ys, xs):
    """The queries (1, n * m, 2) at every (y, x) of ys (n,) x xs (m,), row-major."""
    return torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1).view(1, -1, 2)


class LocalImplicitSR(nn.Module):
    """An encoder run once at LR resolution and a decoder queried at any coordinates (pixel centres
    in [-1, 1], (row, col); a query's cell is its pixel size in the same units). `gen_feat(inp,
    crop)` may encode a crop at (top, left) of a full_h x full_w LR image; queries keep the full
    image's geometry, so decoding tile by tile gives the untiled result."""

    reach = 2  # local-ensemble neighbour + a 3x3 neighbourhood of it
    cmsr = None  # latent-modulated models may carry a CMSR renderer (models/cmsr.py)
    supports_cmsr = False
    adds_lr_skip = False
    cpu_chunk = 2048  # queries per decoder call on a CPU (models/upscale.py)

    def __init__(self, encoder_spec):
        super().__init__()
        self.encoder = make(encoder_spec)
        self.decoder = 'fast'  # or 'plain'; not a constructor argument, so checkpoints stay official
        self.compiled_query = None  # fast_query through torch.compile, set by compile_decoder()

    @property
    def receptive_radius(self):
        """LR pixels on each side that the features a query reads depend on (None: all)."""
        return self.encoder.receptive_radius

    # --- encoding ---------------------------------------------------------------------------

    def gen_feat(self, inp, crop=None):
        """Encode `inp` (B, 3, h, w), normalised; returns the features (B, C, h', w')."""
        self.inp = inp
        self.feat = self.encoder(inp)
        h, w = self.feat.shape[-2:]
        self.crop = Crop(*(crop or (0, 0, h, w)), h, w)
        self.cache = None
        return self.feat

    def cached(self, key, make_value):
        """make_value(), reused while `key` (a tensor, or None) and the grad mode stay those of the
        last call since gen_feat: tables made under no_grad would cut the encoder out of the graph."""
        grad = torch.is_grad_enabled()
        c = self.cache
        if c is None or c.grad != grad or not (key is None if c.key is None else
                                               key is not None and c.key.shape == key.shape and torch.equal(c.key, key)):
            self.cache = Cache(None if key is None else key.clone(), grad, make_value())
        return self.cache.value

    def make_tables(self):
        """Per-LR-pixel tables of the fast form, each (B*h*w, D) (see `fast_query`)."""
        return ()

    def tables(self, cell):
        """The tables for queries with `cell` (a family whose tables depend on it overrides this)."""
        return self.cached(None, self.make_tables)

    # --- decoding ---------------------------------------------------------------------------

    def query_rgb(self, coord, cell=None):
        """coord, cell: (B, Q, 2) -> (B, Q, 3), normalised RGB at `coord` (after gen_feat)."""
        if self.decoder == 'plain':
            if not self.crop.whole:
                raise ValueError(f"{type(self).__name__}: the plain decoder works on whole feature maps only; "
                                 f"tiled inference needs the fast form")
            out = self.query_rgb_plain(coord, cell)
        else:
            out = self.query_rgb_fast(coord, cell)
        return out + self.lr_skip(coord) if self.adds_lr_skip else out

    def lr_skip(self, coord):
        return lr_skip(self.inp, coord, self.crop)

    def query_rgb_fast(self, coord, cell=None):
        return (self.compiled_query or self.fast_query)(coord, cell, self.tables(cell), self.crop)

    def query_rgb_plain(self, coord, cell=None):
        raise NotImplementedError

    def fast_query(self, coord, cell, tables, crop):
        """The fast form: queries (B, Q, 2) in the full LR grid's frame, the features lying at
        `crop` of it; `tables` from `make_tables`."""
        raise NotImplementedError

    def query_grid(self, ys, xs, cell, chunk=None):
        """The queries at every (y, x) of ys (n,) x xs (m,), all with `cell` (2,), for one image
        (B = 1): (n, m, 3), what models/upscale.py asks for; `chunk` bounds the queries of one
        decoder call where the grid is larger (when decoding whole)."""
        coord = grid_coord(ys, xs)
        return self.batched_query(coord, cell.view(1, 1, 2).expand_as(coord), chunk).view(len(ys), len(xs), -1)

    def decodes_whole(self, h, w, H, W):
        """Whether an h x w input upscaled to H x W must be encoded and decoded in one piece."""
        return False

    def forward(self, inp, coord=None, cell=None, bsize=None):
        """The official forward: encode, then decode all queries, in chunks of about `bsize`
        (equal chunks, as LMF splits them; queries are independent). Without coord, only encodes
        (as LMF's)."""
        self.gen_feat(inp)
        return None if coord is None else self.batched_query(coord, cell, bsize)

    def batched_query(self, coord, cell, chunk=None):
        Q = coord.shape[1]
        if chunk is None or chunk >= Q:
            return self.query_rgb(coord, cell)
        n = math.ceil(Q / math.ceil(Q / chunk))
        return torch.cat([self.query_rgb(coord[:, i:i + n], None if cell is None else cell[:, i:i + n])
                          for i in range(0, Q, n)], dim=1)

    def compile_decoder(self, backend='inductor'):
        """Run the fast form's queries through torch.compile. The crop geometry and tables are
        arguments, so tiles of any position and size share a few compiled graphs."""
        self.compiled_query = torch.compile(self.fast_query, dynamic=True, backend=backend)
