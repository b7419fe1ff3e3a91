"""scripts/pack_images.py as users run it: a real subprocess on real images."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import datasets
from shared import DATA, REPO, need


def pack(*args):
    return subprocess.run([sys.executable, os.path.join('scripts', 'pack_images.py'), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_packed_images_are_the_same_training_data(tmp_path):
    src = tmp_path / 'photos'
    src.mkdir()
    for name in sorted(os.listdir(need(os.path.join(DATA, 'train', 'T91'))))[:3]:
        shutil.copy(os.path.join(DATA, 'train', 'T91', name), src / name)
    rgb = np.asarray(Image.open(src / sorted(os.listdir(src))[0]).convert('RGB'))
    Image.fromarray(rgb[..., 0]).save(src / 'zz_gray.png')
    rgba = np.dstack([rgb, np.arange(rgb[..., 0].size, dtype=np.uint8).reshape(rgb.shape[:2])])
    Image.fromarray(rgba, 'RGBA').save(src / 'zz_alpha.png')

    result = pack(src, '--out', tmp_path / 'packed', '--workers', 2)
    assert result.returncode == 0, result.stderr
    assert '5 images' in result.stdout
    packed = sorted(os.listdir(tmp_path / 'packed' / 'photos'))
    assert packed == sorted(os.path.splitext(n)[0] + '.webp' for n in os.listdir(src))
    with Image.open(tmp_path / 'packed' / 'photos' / 'zz_alpha.webp') as im:
        assert np.array_equal(np.asarray(im.convert('RGBA')), rgba)  # alpha and the colour under it kept

    def folder(path):
        return datasets.make({'name': 'image-folder', 'args': {'root_path': str(path)}})
    a, b = folder(src), folder(tmp_path / 'packed' / 'photos')
    assert len(a) == len(b) == 5
    for i in range(5):
        assert np.array_equal(a[i], b[i]), a.name(i)


@pytest.mark.slow
def test_existing_outputs_are_kept_and_bad_input_is_named(tmp_path):
    src = tmp_path / 'in'
    src.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / 'a.png')
    out = tmp_path / 'out' / 'in'
    out.mkdir(parents=True)
    (out / 'a.webp').write_bytes(b'kept')
    assert pack(src, '--out', tmp_path / 'out').returncode == 0
    assert (out / 'a.webp').read_bytes() == b'kept'

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / 'a.bmp')
    clash = pack(src, '--out', tmp_path / 'out2')
    assert clash.returncode == 2 and 'would both become a.webp' in clash.stderr
    assert not (tmp_path / 'out2').exists()  # checked before anything is written

    deep = tmp_path / 'deep'
    deep.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(deep / 'b.png')  # a 16-bit PNG
    bad = pack(deep, '--out', tmp_path / 'out3')
    assert bad.returncode == 2 and 'b.png: image mode I;16 cannot be stored exactly as WebP' in bad.stderr
    assert pack(tmp_path / 'missing', '--out', tmp_path / 'o').stderr.strip().endswith('missing: no such folder')
