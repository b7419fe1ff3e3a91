"""scripts/check_data.py: the published Set5 and Set14 (as benchmark.tar has them) pass; copies
with what goes wrong in a download (missing folders and files, extra files, wrong sizes, LR
files made by another resizer, nothing there) are named, and the make_lr.py command it prints
repairs the copy."""
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli import load_script, run_main
from shared import DATA, REPO, need

CHECK_CLI = load_script('scripts/check_data')
MAKE_LR_CLI = load_script('scripts/make_lr')
MATLAB_NOTE = '(the first LR file of each scale is MATLAB bicubic of its HR image)'


@pytest.fixture
def download(tmp_path):
    """A load folder holding copies of the published Set5 and Set14."""
    load = tmp_path / 'load'
    for name in ('Set5', 'Set14'):
        shutil.copytree(need(os.path.join(DATA, 'benchmark', name)), load / 'benchmark' / name)
    return load


def test_the_published_sets_pass():
    need(os.path.join(DATA, 'benchmark', 'Set14'))
    proc = subprocess.run([sys.executable, 'scripts/check_data.py', '--load-dir', DATA, 'Set5', 'set14'], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        f'Set5         ok: HR 5/5, X2 5, X3 5, X4 5 {MATLAB_NOTE}',
        f'Set14        ok: HR 14/14, X2 14, X3 14, X4 14 {MATLAB_NOTE}',
        f'2 ok, 0 broken, 0 not found under {DATA} (README.md, Data, says where each set is published and how '
        f'to lay it out)']


def test_missing_lr_files_are_named_and_the_printed_command_makes_them(download):
    set5 = download / 'benchmark' / 'Set5'
    shutil.rmtree(set5 / 'LR_bicubic' / 'X3')
    os.remove(set5 / 'LR_bicubic' / 'X2' / 'birdx2.png')
    proc = run_main(CHECK_CLI, '--load-dir', download, 'Set5')
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout.startswith('Set5         BROKEN: HR 5/5, X2 4, X4 5\n')
    assert f'{set5}/LR_bicubic/X2: 1 of 5 LR images missing (e.g. birdx2.png)' in proc.stdout
    assert f'{set5}/LR_bicubic/X3 not found' in proc.stdout
    command = re.search(r'make the missing LR files: (.*)', proc.stdout)[1]
    assert command == f'python scripts/make_lr.py --hr {set5}/HR --out {set5}/LR_bicubic --scales 2 3'
    assert MAKE_LR_CLI.main(shlex.split(command)[2:]) == 0
    proc = run_main(CHECK_CLI, '--load-dir', download, 'Set5')
    assert proc.returncode == 0 and proc.stdout.startswith(f'Set5         ok: HR 5/5, X2 5, X3 5, X4 5 {MATLAB_NOTE}')
    published = os.path.join(DATA, 'benchmark', 'Set5', 'LR_bicubic', 'X3')
    for name in os.listdir(published):  # what make_lr.py wrote is what the archive has
        assert np.array_equal(np.asarray(Image.open(set5 / 'LR_bicubic' / 'X3' / name)),
                              np.asarray(Image.open(os.path.join(published, name)))), name


def test_wrong_counts_sizes_extra_files_and_another_resizer_are_named(download):
    set14, set5 = download / 'benchmark' / 'Set14', download / 'benchmark' / 'Set5'
    os.remove(set14 / 'HR' / 'zebra.png')
    for scale in (2, 3, 4):  # as if the LR files had been copied without their HR image
        os.remove(set14 / 'LR_bicubic' / f'X{scale}' / f'zebrax{scale}.png')
    shutil.copy(set14 / 'LR_bicubic' / 'X3' / 'lennax3.png', set14 / 'LR_bicubic' / 'X3' / 'lennax3 (1).png')
    lr = set14 / 'LR_bicubic' / 'X4' / 'monarchx4.png'
    Image.open(lr).crop((0, 0, 100, 50)).save(lr)
    # Set5 x2 made with PIL's bicubic instead of MATLAB's, for one image that is not the first
    with Image.open(set5 / 'HR' / 'woman.png') as hr:
        hr.resize((hr.width // 2, hr.height // 2), Image.BICUBIC).save(set5 / 'LR_bicubic' / 'X2' / 'womanx2.png')

    proc = run_main(CHECK_CLI, '--load-dir', download)
    assert proc.returncode == 1
    assert f'{set14}/HR: 13 images, the published set has 14' in proc.stdout
    assert f'{set14}/LR_bicubic/X3: 1 file(s) match no HR image (e.g. lennax3 (1).png)' in proc.stdout
    with Image.open(set14 / 'HR' / 'monarch.png') as hr:
        w, h = hr.size
    assert f'{lr}: 100x50 px, expected {w // 4}x{h // 4} (HR {w}x{h} / 4, rounded down)' in proc.stdout
    assert 'make the missing LR files' not in proc.stdout  # nothing make_lr.py would add
    assert proc.stdout.startswith('Set5         ok:')      # the first file of each folder is fine
    full = run_main(CHECK_CLI, '--load-dir', download, '--full', 'Set5')
    assert full.returncode == 1
    assert re.search(rf'{set5}/LR_bicubic/X2/womanx2.png: differs from MATLAB bicubic of its HR image by up to '
                     r'\d+ levels', full.stdout), full.stdout


def test_nothing_there_a_missing_named_set_and_bad_arguments(tmp_path, download):
    empty = tmp_path / 'empty'
    empty.mkdir()
    proc = run_main(CHECK_CLI, '--load-dir', empty)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert all(line[13:].startswith('not found: ') for line in lines[:6]), lines
    assert f'B100         not found: {empty}/benchmark/B100/HR; published: the 100 test images of BSD300' in lines[2]
    assert 'cv.snu.ac.kr/research/EDSR/benchmark.tar' in lines[2] and 'data.vision.ee.ethz.ch/cvl/DIV2K' in lines[5]
    assert lines[6].startswith(f'0 ok, 0 broken, 6 not found under {empty}')

    assert run_main(CHECK_CLI, '--load-dir', download, 'Set5').returncode == 0
    assert run_main(CHECK_CLI, '--load-dir', download, 'Set5', 'B100').returncode == 1  # asked for, not there
    assert run_main(CHECK_CLI, '--load-dir', download).returncode == 0  # the others are optional

    for args, message in ((['--load-dir', tmp_path / 'nope'], f'--load-dir {tmp_path}/nope: no such folder'),
                          (['--load-dir', empty, 'Set6'], "unknown set 'Set6'; the published sets are Set5, Set14")):
        proc = run_main(CHECK_CLI, *args)
        assert proc.returncode == 2 and proc.stderr.startswith(f'check_data.py: error: {message}'), proc.stderr
        assert len(proc.stderr.splitlines()) == 1
