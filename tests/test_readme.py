"""What a new user reads: the README's commands run as written on a fresh clone, or say what
else they need, and every option of the CLIs has help text.

A command of a ```bash block needs nothing but the clone unless a `# needs: ...` comment says
otherwise (on its line, or on a line of its own for the rest of the block). Each such command is
run here, in a folder that mirrors the clone (its top-level entries linked, `save/` empty but for
the shipped weights), as cheaply as it can be checked: `pip install -r requirements[-dev].txt` as a
check that the installed packages satisfy it, the pytest command as a check that `.ci/run` runs
it, `demo.py` whole except for the model's upscale (bilinear here: the real one is
test_demo_quality.py's), `train.py` through its whole set-up up to the first iteration. What they write
must be git-ignored."""
import argparse
import os
import re
import shlex
import subprocess
from importlib.metadata import PackageNotFoundError, version

import pytest
import torch.nn.functional as F
from packaging.requirements import Requirement
from PIL import Image

from cli import load_script, run_main
from shared import REPO

README = os.path.join(REPO, 'README.md')
DEMO_CLI = load_script('demo')
TRAIN_CLI = load_script('train')
TEST_CLI = load_script('test')
CHECK_DATA_CLI = load_script('scripts/check_data')


def split_comment(line):
    """(code, comment) of a shell line: the comment starts at a '#' outside quotes that begins
    a word."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in '\'"':
            quote = c
        elif c == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip(), line[i + 1:].strip()
    return line.strip(), ''


def readme_commands(text):
    """[(line number, command, needs)] for each command of the text's ```bash blocks, continued
    lines joined; `needs` is what its `needs:` comment says, or None."""
    found, block, pending, start = [], None, '', 0
    for number, line in enumerate(text.splitlines(), 1):
        if block is None:
            if line.strip() == '```bash':
                block = {'needs': None}
            continue
        if line.strip() == '```':
            block = None
            continue
        if not pending:
            start = number
        if line.rstrip().endswith('\\'):
            pending += line.rstrip()[:-1] + ' '
            continue
        code, comment = split_comment(pending + line)
        pending = ''
        needs = comment.split('needs:', 1)[1].strip() if 'needs:' in comment else None
        if not code:
            if needs is not None:
                block['needs'] = needs
            continue
        found.append((start, code, needs if needs is not None else block['needs']))
    return found


with open(README) as f:
    COMMANDS = readme_commands(f.read())
RUNNABLE = [(number, code) for number, code, needs in COMMANDS if needs is None]


def test_commands_are_found_and_each_needing_more_than_the_clone_says_what():
    assert len(COMMANDS) > 20 and len(RUNNABLE) >= 6, COMMANDS
    for number, code, needs in COMMANDS:
        assert needs != '', f"README.md line {number}: an empty 'needs:' ({code})"
    # the parser itself: comments, quotes, continued lines and a block-wide note
    text = ('```bash\npython a.py --x "#1"  # needs: data\n# needs: a GPU\nrun \\\n  --fast\n```\n'
            '```bash\npython b.py  # plain\n```\n')
    assert readme_commands(text) == [(2, 'python a.py --x "#1"', 'data'), (4, 'run    --fast', 'a GPU'),
                                     (8, 'python b.py', None)]


# ------------------------------------------------------------------------------------------
# running the commands that need nothing but the clone

@pytest.fixture
def clone(tmp_path):
    """A folder that looks like a fresh clone: the repo's top-level entries linked, save/ holding
    only the shipped weights."""
    root = tmp_path / 'clone'
    root.mkdir()
    for name in os.listdir(REPO):
        if name not in ('save', '.git', '.venv') and not name.startswith('.pytest'):
            os.symlink(os.path.join(REPO, name), root / name)
    (root / 'save').mkdir()
    os.symlink(os.path.join(REPO, 'save', 'pretrained'), root / 'save' / 'pretrained')
    return root


def requirements(path):
    """The requirement lines of a requirements file, those of the files it includes (-r) first."""
    found = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line.startswith('-r '):
                found += requirements(os.path.join(os.path.dirname(path), line[3:].strip()))
            elif line:
                found.append(line)
    return found


def check_requirements(argv, clone, monkeypatch, line):
    """`pip install -r requirements[-dev].txt`: what it would install is installed (no network here)."""
    assert argv[:3] == ['pip', 'install', '-r'] and argv[3] in ('requirements.txt', 'requirements-dev.txt'), argv
    for line in requirements(clone / argv[3]):
        req = Requirement(line)
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{argv[3]}: {req.name} is not installed")
        assert req.specifier.contains(installed, prereleases=True), (line, installed)


def test_the_demo_installs_without_test_tools_and_the_tests_with_everything():
    runtime = {Requirement(r).name.lower() for r in requirements(os.path.join(REPO, 'requirements.txt'))}
    dev = {Requirement(r).name.lower() for r in requirements(os.path.join(REPO, 'requirements-dev.txt'))}
    assert 'torch' in runtime and not runtime & {'pytest', 'pytest-xdist', 'tensorboard', 'imageio'}, runtime
    assert runtime < dev and {'pytest', 'pytest-xdist', 'tensorboard'} <= dev, dev


def check_ci_runs(argv, clone, monkeypatch, line):
    """The README's test command is the one CI runs."""
    with open(clone / '.ci' / 'run') as f:
        assert line in [text.strip() for text in f], f".ci/run does not run {line!r}"


def bilinear_upscale(model, pixels, alpha, size, *args, **kwargs):
    resize = lambda x: F.interpolate(x[None], size, mode='bilinear', align_corners=False)[0].clamp(0, 1)  # noqa: E731
    return resize(pixels), (resize(alpha) if alpha is not None else None)


def run_demo(argv, clone, monkeypatch, line):
    monkeypatch.setattr(DEMO_CLI, 'upscale_image', bilinear_upscale)
    proc = run_main(DEMO_CLI, *argv[2:], cwd=clone)
    assert proc.returncode == 0, proc.stderr
    written = re.findall(r'demo\.py: wrote (.+?) \((\d+)x(\d+) px', proc.stdout)
    assert written, proc.stdout
    for path, w, h in written:
        with Image.open(clone / path) as im:
            assert im.size == (int(w), int(h))


def run_train(argv, clone, monkeypatch, line):
    """Everything before the first iteration: config, data, model, optimizer, run folder."""
    monkeypatch.chdir(clone)
    run = TRAIN_CLI.Run(TRAIN_CLI.parse_args(argv[2:]))
    run.log.close()
    assert os.path.isfile(os.path.join(run.save_path, 'config.yaml'))
    if '--config configs/quickstart.yaml' in line:  # its comment gives the iterations an epoch
        with open(clone / 'configs' / 'quickstart.yaml') as f:
            assert f"{len(run.train_loader)} iterations" in f.read()


RUNNERS = {  # by the command's first words
    ('pip', 'install'): check_requirements,
    ('python', '-m', 'pytest'): check_ci_runs,
    ('python', 'demo.py'): run_demo,
    ('python', 'train.py'): run_train,
}


def ignored(paths):
    """The paths (relative to the repo) that git ignores."""
    try:
        proc = subprocess.run(['git', '-C', REPO, 'check-ignore', '--no-index', '--stdin'], input='\n'.join(paths),
                              capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip('git is not installed: cannot check .gitignore')
    if proc.returncode not in (0, 1):  # 0: some are ignored, 1: none is
        pytest.skip(f'not a git checkout, cannot check .gitignore ({proc.stderr.strip()})')
    return set(proc.stdout.splitlines())


@pytest.mark.parametrize('number, line', RUNNABLE, ids=[f'line{n}' for n, _ in RUNNABLE])
def test_readme_command_runs_on_a_clone_and_writes_only_ignored_files(clone, monkeypatch, number, line):
    for step in line.split('&&'):
        argv = shlex.split(step)
        runner = next((run for words, run in RUNNERS.items() if tuple(argv[:len(words)]) == words), None)
        assert runner, (f"README.md line {number}: no way to check {step.strip()!r} here: give it a "
                        f"'# needs: ...' comment, or a runner in tests/test_readme.py")
        runner(argv, clone, monkeypatch, line)
    written = [os.path.relpath(os.path.join(folder, name), clone) for folder, _, names in os.walk(clone)
               for name in names if not os.path.islink(os.path.join(folder, name))]  # the links are the clone
    assert set(written) <= ignored(written), f"README.md line {number} writes files git would track"


def test_python_example_of_the_demo_runs_on_a_clone(clone, monkeypatch):
    """The README's Python example (the one that reads an image), as written, in a clone; the
    model's upscale is bilinear here, as for the demo command."""
    import models.upscale
    with open(README) as f:
        code = next(block for block in re.findall(r'```python\n(.*?)```', f.read(), re.S) if 'read_image(' in block)
    monkeypatch.chdir(clone)
    monkeypatch.setattr(models.upscale, 'upscale', lambda model, rgb, size, **kwargs: bilinear_upscale(
        model, rgb, None, size)[0])
    exec(code, {})
    with Image.open(clone / 'save' / 'coffee_x4_python.png') as im:
        assert im.size == (800, 532) and im.mode == 'RGB'


# ------------------------------------------------------------------------------------------
# help

def parser_of(module):
    """The argparse parser a CLI's main() builds (caught as it parses)."""
    class Caught(Exception):
        pass

    def catch(self, *args, **kwargs):
        raise Caught(self)
    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        module.main([])
    except Caught as e:
        return e.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError(f"{module.__name__}.main built no parser")


@pytest.mark.parametrize('module', [TRAIN_CLI, TEST_CLI, DEMO_CLI, CHECK_DATA_CLI], ids=lambda m: m.__name__)
def test_every_option_has_help(module):
    parser = parser_of(module)
    bare = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert not bare, f"options without help text: {bare}"
    assert not re.search(r'\d\.\d+x', parser.format_help())  # speed-ups belong in benchmarks/RESULTS.md
