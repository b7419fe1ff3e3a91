import collections
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes more than a few seconds (deselect with -m "not slow")')
    # torch 2.13's own torch/utils/mkldnn.py, imported by torch.compile, decorates 14 methods with the
    # deprecated torch.jit.script_method: nothing this project calls or can change
    config.addinivalue_line('filterwarnings',
                            'ignore:`torch.jit.script_method` is deprecated:DeprecationWarning:torch.jit._script')
    workers = os.environ.get('PYTEST_XDIST_WORKER_COUNT')
    if workers:  # tests spread over processes (-n): each takes its share of the cores, for itself and the
        # CLIs it runs (more threads than cores stall torch's parallel kernels)
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(threads)
        os.environ['OMP_NUM_THREADS'] = str(threads)


def pytest_terminal_summary(terminalreporter):
    """What was skipped, one line a reason (-rs lists each test): a missing file counts under the
    outermost folder missing, so a clone without ../shared gets one line for all it skipped."""
    reasons = collections.Counter()
    for report in terminalreporter.stats.get('skipped', []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        head, found, path = reason.removeprefix('Skipped: ').partition('not found: ')
        while found and not os.path.exists(os.path.dirname(path)) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        reasons[head + found + path] += 1
    if reasons:
        terminalreporter.section('skipped')
        for reason, count in reasons.most_common():
            terminalreporter.line(f"{count:4d} {reason}")


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """A config's `threads` (train.py run in this process) ends with the test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_ckpt(tmp_path_factory):
    """A checkpoint of a tiny random LIIF (`shared.tiny_liif_spec`), for CLI tests that need any model."""
    import models
    from shared import tiny_liif_spec
    from models.checkpoint import save_checkpoint
    torch.manual_seed(0)
    spec = tiny_liif_spec()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny-liif.pth'
    save_checkpoint(str(path), spec, models.make(spec))
    return str(path)


@pytest.fixture(scope='module')
def one_thread():
    """torch on one thread for a module of tiny-tensor tests (a second one only adds contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def big_image(tmp_path):
    """A folder holding one 200x210 noise image, and the image."""
    from dataset_helpers import folder, noise
    img = noise((200, 210, 3), seed=1)
    return folder(tmp_path / 'big', {'img.png': img}), img


@pytest.fixture(scope='module')
def small_rgb(tmp_path_factory):
    """A 24x20 8-bit RGB PNG (demo_helpers.rgb_gradient), for demo.py runs that need any image."""
    from PIL import Image
    from demo_helpers import rgb_gradient
    path = tmp_path_factory.mktemp('small') / 'small.png'
    Image.fromarray(rgb_gradient(20, 24)).save(path)
    return path
