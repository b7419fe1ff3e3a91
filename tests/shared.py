"""Paths to the shared test data and weights beside the checkout; tests skip when absent,
except under CI (CI=true), where missing development data fails the test: a misplaced ../shared
must not turn the suite green by skipping."""
import os

import pytest

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
        pytest.skip(f"shared file not found: {path}")
    return path


def tiny_liif_spec(n_feats=8):
    """A LIIF small enough for fast tests: one res-block encoder, one hidden layer of 16."""
    return {'name': 'liif', 'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True, 'n_resblocks': 1, 'n_feats': n_feats}},
        'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}}}
