"""demo.py and its images for the tests: demo.py as a subprocess, synthetic 8- and 16-bit test
images (with a PNG writer of its own), and the check that a failed run left nothing behind."""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import torch

from cli import load_script
from shared import REPO

DEMO = os.path.join(REPO, 'demo.py')
DEMO_CLI = load_script('demo')


def demo(*args, ok=True):
    """Run demo.py; return the CompletedProcess. ok: assert success (True) / failure (False)."""
    proc = subprocess.run([sys.executable, DEMO, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def png16(path, arr, exif=None):
    """An independent minimal 16-bit PNG writer (no filters): arr uint16 (H, W[, C])."""
    arr = np.asarray(arr, np.uint16)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    h, w = arr.shape[:2]
    raw = b''.join(b'\x00' + arr[y].astype('>u2').tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    body = chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0))
    if exif is not None:
        body += chunk(b'eXIf', exif.tobytes()[6:])  # without the 'Exif\0\0' header
    body += chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + body)


def as_uint(img, bits):
    """A LoadedImage's colour (+ alpha) as an (H, W, C) integer array."""
    planes = img.pixels if img.alpha is None else torch.cat([img.pixels, img.alpha])
    return (planes.permute(1, 2, 0).numpy() * (2 ** bits - 1)).round().astype(np.int64)


def rgb_gradient(h, w, seed=0):
    """A smooth colourful 8-bit test image with some texture."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    noise = np.random.default_rng(seed).normal(0, 6, (h, w, 3))
    img = np.stack([40 + 180 * x / w, 60 + 150 * y / h, 128 + 90 * np.sin(x / 3 + y / 5)], -1) + noise
    return np.clip(img, 0, 255).round().astype(np.uint8)


def disc(h, w):
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot(y - (h - 1) / 2, x - (w - 1) / 2)
    return np.clip((min(h, w) * 0.35 - r) * 60 + 128, 0, 255).round().astype(np.uint8)


def assert_clean_failure(proc, out, needles, before=None):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('demo.py: error: ')
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert 'Traceback' not in proc.stderr and 'wrote' not in proc.stdout
    if before is None:
        assert not os.path.exists(out)
    else:
        assert out.read_bytes() == before
    assert [n for n in os.listdir(out.parent) if n.startswith('.')] == []  # no temporary left
