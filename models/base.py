"""The model contract: what an encoder declares, what a decoder family provides, and what the
rest of the project (models/upscale.py, test.py, demo.py, train.py) may rely on.

Encoders (edsr.py, rdn.py, swinir.py) set three attributes:
  out_dim           feature channels;
  receptive_radius  input pixels on each side that one output feature can depend on, for crops
                    laid as below; None: the encoder must see the whole image;
  window            crops start at multiples of this in the full image (1 for convolutional
                    encoders; the attention window for SwinIR, whose windows are laid from the
                    crop's corner and which pads its input to a multiple of it).
Whole-image inference (models/upscale.py) reads them to encode an image in tiles whose output
equals the untiled one, and pads inputs for window encoders as their official evaluation does.

A decoder family is one file with a subclass of `LocalImplicitSR`, registered by name. It
provides the paper's equations and a fast form of the same function:
  make_tables()     per-LR-pixel tables the fast form gathers from, made once per encoding;
  query_rgb_plain   the equations as written (unfold, grid_sample, one MLP call per local-
                    ensemble member): the test oracle, on whole feature maps;
  query_window      the fast form for queries in the full image's frame, given the tables and
                    the window of the full LR grid that the features cover (tiles);
and may override `query_grid` (decode rows x columns of an output grid directly), `reach` (LR
pixels beyond a query's nearest one that it reads) and `decodes_whole` (the output must be
decoded in one piece, e.g. CMSR). Everything else (encode once, the official
`forward(inp, coord, cell)`, query chunks, compile, the plain/fast switch) is here, so that the
CLIs talk to this contract and never to a family's internals.
"""
import math

import torch
import torch.nn as nn

from .models import make


def conv_radius(module):
    """The receptive radius of a convolutional encoder: the sum of the reach of its convolutions
    (exact for a chain of convolutions, an upper bound with skips and dense connections)."""
    return sum(max(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
               for m in module.modules() if isinstance(m, nn.Conv2d))


class LocalImplicitSR(nn.Module):
    """An encoder run once at LR resolution and a decoder queried at any coordinates.

    Coordinates are pixel centres in [-1, 1], (row, col); a query's cell is its pixel size in
    the same units. `gen_feat(inp, window)` may encode a crop of a larger image: `window =
    (top, left, full_h, full_w)` places the features in the full LR grid, and queries keep the
    full image's geometry, so decoding tile by tile gives the untiled result."""

    reach = 2  # local-ensemble neighbour + a 3x3 neighbourhood of it
    cmsr = None  # latent-modulated models may carry a CMSR renderer (models/cmsr.py)
    supports_cmsr = False
    cpu_chunk = 2048  # queries per decoder call on a CPU (models/upscale.py)

    def __init__(self, encoder_spec):
        super().__init__()
        self.encoder = make(encoder_spec)
        self.decoder = 'fast'  # or 'plain'; not a constructor argument, so checkpoints stay official
        self.compiled_query = None  # query_window through torch.compile, set by compile_decoder()

    # --- encoding ---------------------------------------------------------------------------

    def gen_feat(self, inp, window=None):
        """Encode `inp` (B, 3, h, w), normalised; returns the features (B, C, h', w')."""
        self.inp = inp
        self.feat = self.encoder(inp)
        h, w = self.feat.shape[-2:]
        self.window = tuple(window) if window is not None else (0, 0, h, w)
        self.lr_tables = None
        return self.feat

    def make_tables(self):
        """Per-LR-pixel tables of the fast form, each (B*h*w, D) (see `query_window`)."""
        return ()

    def tables(self, cell):
        """The tables for queries with `cell` (made once per encoding here, and again when grad
        mode changed: tables made under no_grad would cut the encoder out of the graph; a family
        whose tables depend on the cell overrides this)."""
        grad = torch.is_grad_enabled()
        if self.lr_tables is None or self.lr_tables[1] != grad:
            self.lr_tables = (self.make_tables(), grad)
        return self.lr_tables[0]

    # --- decoding ---------------------------------------------------------------------------

    def query_rgb(self, coord, cell=None):
        """coord, cell: (B, Q, 2) -> (B, Q, 3), normalised RGB at `coord` (after gen_feat)."""
        if self.decoder == 'plain':
            if self.window != (0, 0, *self.feat.shape[-2:]):
                raise ValueError(f"{type(self).__name__}: the plain decoder works on whole feature maps only; "
                                 f"tiled inference needs the fast form")
            return self.query_rgb_plain(coord, cell)
        return self.query_rgb_fast(coord, cell)

    def query_rgb_fast(self, coord, cell=None):
        query = self.compiled_query or self.query_window
        return query(coord, cell, self.tables(cell), *self.window, *self.feat.shape[-2:])

    def query_rgb_plain(self, coord, cell=None):
        raise NotImplementedError

    def query_window(self, coord, cell, tables, top, left, full_h, full_w, h, w):
        """The fast form: queries (B, Q, 2) in the full_h x full_w LR grid's frame, the features
        (h x w) covering the window at (top, left) of it; `tables` from `make_tables`."""
        raise NotImplementedError

    def query_grid(self, ys, xs, cell, chunk=None):
        """The queries at every (y, x) of ys (n,) x xs (m,), all with `cell` (2,), for one image
        (B = 1): (n, m, 3), what models/upscale.py asks for; `chunk` bounds the queries of one
        decoder call where the grid is larger (when decoding whole)."""
        coord = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1).view(1, -1, 2)
        return self.batched_query(coord, cell.view(1, 1, 2).expand_as(coord), chunk).view(len(ys), len(xs), -1)

    def decodes_whole(self, h, w, H, W):
        """Whether an h x w input upscaled to H x W must be encoded and decoded in one piece."""
        return False

    def forward(self, inp, coord=None, cell=None, bsize=None):
        """The official forward: encode, then decode all queries, in chunks of about `bsize`
        (equal chunks, as the official code splits them; queries are independent). Without
        coord, only encodes (as LMF's)."""
        self.gen_feat(inp)
        return None if coord is None else self.batched_query(coord, cell, bsize)

    def batched_query(self, coord, cell, bsize=None):
        Q = coord.shape[1]
        if bsize is None or bsize >= Q:
            return self.query_rgb(coord, cell)
        chunk = math.ceil(Q / math.ceil(Q / bsize))
        return torch.cat([self.query_rgb(coord[:, i:i + chunk], None if cell is None else cell[:, i:i + chunk])
                          for i in range(0, Q, chunk)], dim=1)

    def compile_decoder(self, backend='inductor'):
        """Run the fast form's queries through torch.compile. The window geometry and tables are
        arguments, so tiles of any position and size share a few compiled graphs."""
        self.compiled_query = torch.compile(self.query_window, dynamic=True, backend=backend)
