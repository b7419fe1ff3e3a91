"""Paths to the shared test data and weights beside the checkout; tests skip when absent,
except under CI (CI=true), where missing development data fails the test: a misplaced ../shared
must not turn the suite green by skipping."""
import os

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('LIIF_SHARED', os.path.join(os.path.dirname(REPO), 'shared'))
DATA = os.path.join(SHARED, 'data')
WEIGHTS = os.path.join(SHARED, 'weights')
OFFICIAL_CKPT = os.path.join(WEIGHTS, 'edsr-baseline-liif.pth')


def need(path):
    """`path` if it exists, else skip the calling test (fail it under CI)."""
    if not os.path.exists(path):
        if os.environ.get('CI') == 'true':
            pytest.fail(f"shared file not found under CI: {path} (set LIIF_SHARED to the shared folder)")
        pytest.skip(f"needs the development data or weights (README.md, Tests), not found: {path}")
    return path


def tiny_liif_spec(n_feats=8):
    """The tiny LIIF of tests/tiny_models.py (one res-block encoder, one hidden layer of 16), with
    `n_feats` encoder features: for CLI tests that need any model."""
    from tiny_models import spec
    out = spec('liif')
    out['args']['encoder_spec']['args']['n_feats'] = n_feats
    return out


def native_bf16():
    """Whether this CPU runs bf16 convolutions and matrix products natively (oneDNN's own check:
    AVX-512 or AMX); elsewhere bf16 is emulated, some 20x slower than float32."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()
