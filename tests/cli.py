"""Running the entry scripts (train.py, test.py, demo.py) in this process, for argument and
input errors: `main(argv)` with its exit code and output captured as a subprocess's would be,
without a new Python and torch start-up per case. (Each CLI keeps a few real subprocess tests.)"""
import contextlib
import importlib.util
import io
import os
import subprocess

import torch

from shared import REPO


def load_script(name):
    """The module of REPO/<name>.py, e.g. 'test' or 'scripts/calibrate_cmsr' (by path: `test`
    would otherwise name Python's own package)."""
    spec = importlib.util.spec_from_file_location(f'{os.path.basename(name)}_cli', os.path.join(REPO, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(module, *args, cwd=REPO):
    """module.main(argv) run in `cwd` (by default the repo, as the subprocesses run: configs'
    ./load paths are relative to it); an unexpected exception is not caught: it fails the test
    with its traceback."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    previous, deterministic = os.getcwd(), torch.are_deterministic_algorithms_enabled()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            module.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:  # what a script may set for its process (train.py's `deterministic`) ends with it
        os.chdir(previous)
        torch.use_deterministic_algorithms(deterministic)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
