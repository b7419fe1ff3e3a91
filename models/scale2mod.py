"""Scale2Mod tables, what CMSR (models/cmsr.py) reads: YAML {target scale: {decode scale:
threshold}}, the official format (LMF's configs/cmsr/result/*.yaml load as they are). Reading,
checking, writing, and where a checkpoint's own table lies."""
import os

import yaml

from utils.config import is_number, load_yaml
from utils.errors import UserError
from utils.files import atomic_write

DECODE_SCALES = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # the decode scales a calibrated table starts with
BESIDE = 'beside'  # a bare --cmsr: the table shipped beside the checkpoint


class CMSRError(UserError):
    """A Scale2Mod table or model that CMSR cannot use; one line naming the file."""


def initial(scale):
    """The table a calibration at target scale `scale` starts from (the official init_cmsr's):
    every decode scale up to `scale`, and `scale` itself, at threshold 1."""
    return {**{d: 1.0 for d in DECODE_SCALES if d <= scale}, scale: 1.0}


def check(data, label):
    """`data` if it is {target scale > 0: {decode scale > 0: threshold >= 0, ...}, ...}."""
    if not isinstance(data, dict) or not data:
        raise CMSRError(f"{label}: expected a Scale2Mod table {{target scale: {{decode scale: threshold}}}}, "
                        f"got {type(data).__name__ if data is not None else 'an empty file'}")
    for scale, table in data.items():
        if not is_number(scale) or scale <= 0:
            raise CMSRError(f"{label}: target scale {scale!r} is not a positive number")
        if not isinstance(table, dict) or not table:
            raise CMSRError(f"{label}: target scale {scale}: expected a mapping {{decode scale: threshold}}, "
                            f"got {table!r}")
        for d, t in table.items():
            bad = (f"decode scale {d!r} is not a positive number" if not is_number(d) or d <= 0 else
                   f"decode scale {d}: threshold {t!r} is not a number >= 0" if not (is_number(t) and t >= 0)
                   else None)
            if bad:
                raise CMSRError(f"{label}: target scale {scale}: {bad}")
    return data


def load(path, label=None):
    """The checked tables in the YAML file at `path` (yaml.safe_load); errors name `label`
    (default: the path)."""
    label = label or path
    return check(load_yaml(path, label), label)


def number(x):
    """A YAML-friendly number: 6 rather than 6.0."""
    x = float(x)
    return int(x) if x.is_integer() else x


def save(path, s2m, header=''):
    """Write a table {S: {d: threshold}} as YAML (sorted, as the official yaml.dump), atomically."""
    data = {number(s): {number(d): number(round(t, 4)) for d, t in sorted(table.items())}
            for s, table in sorted(s2m.items())}
    text = ''.join(f'# {line}\n' for line in header.splitlines()) + yaml.safe_dump(data, default_flow_style=False)
    atomic_write(path, lambda f: f.write(text.encode()))


def path_for(option, checkpoint):
    """The table a --cmsr option names: its own value, or for a bare --cmsr the table beside the
    checkpoint (`NAME.pth` -> `NAME-cmsr.yaml`, as save/pretrained/ ships them)."""
    return os.path.splitext(checkpoint)[0] + '-cmsr.yaml' if option == BESIDE else option
