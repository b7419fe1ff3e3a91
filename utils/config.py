"""YAML configs: `yaml.safe_load`, `_base_:` inheritance (base files relative to the config, merged
in order, then the file on top: dicts key by key, anything else replaced) and `--set a.b=value`."""
import copy
import math
import os
import re

import yaml

from .errors import UserError


class ConfigError(UserError):
    """A config that cannot be used; the message is one line and names the file or key."""


def merge(base, top):
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path, label=None, what='file'):
    """The data in the YAML file at `path` (yaml.safe_load); errors name `label` (default: the path)."""
    label = label or path
    if not os.path.isfile(path):
        raise ConfigError(f"{label}: no such {what}")
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f" at line {mark.line + 1}" if mark else ''
        raise ConfigError(f"{label}: invalid YAML{where} ({getattr(e, 'problem', None) or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not a text file") from None


def load_config(path, overrides=(), _seen=()):
    """The config at `path` with its bases merged in and `overrides` ('a.b=value') applied."""
    path = os.path.abspath(path)
    if path in _seen:
        raise ConfigError(f"{path}: _base_ inheritance loops back to this file")
    data = load_yaml(path, what='config file')
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    bases = data.pop('_base_', [])
    cfg = {}
    for base in [bases] if isinstance(bases, str) else bases:
        cfg = merge(cfg, load_config(os.path.join(os.path.dirname(path), base), _seen=_seen + (path,)))
    cfg = merge(cfg, data)
    for item in overrides:
        apply_override(cfg, item)
    return cfg


def apply_override(cfg, item):
    """Apply 'a.b.c=value' (value parsed as YAML). The key must exist unless written '+a.b.c=value'."""
    key, sep, text = item.partition('=')
    if not sep or not key.lstrip('+'):
        raise ConfigError(f"override {item!r}: expected key=value, e.g. epoch_max=2")
    add = key.startswith('+')
    parts = key.lstrip('+').split('.')
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"override {item!r}: value is not valid YAML") from None
    if isinstance(value, str) and re.fullmatch(r'[+-]?\d+(\.\d*)?[eE][+-]?\d+', value.strip()):
        value = float(value)  # YAML 1.1 reads 2e-3 (no dot) as a string
    node = get_key(cfg, '.'.join(parts[:-1])) if len(parts) > 1 else cfg
    if not isinstance(node, dict):
        raise ConfigError(f"override {item!r}: {'.'.join(parts[:-1])} is not a mapping")
    if parts[-1] not in node and not add:
        raise ConfigError(f"override {item!r}: no key {key!r}; existing keys there: {', '.join(map(str, node)) or 'none'}"
                          f" (write +{key}=... to add a new key)")
    node[parts[-1]] = value


def is_number(value):
    """A finite int or float from YAML (not a bool, which YAML also reads for yes/no)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value, least=1):
    """An int (not a bool) >= least."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def get_key(cfg, dotted):
    """cfg['a']['b'] for 'a.b'; a missing key is an error that lists the keys that exist."""
    node, path = cfg, []
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            where = '.'.join(path) or 'the top level'
            keys = ', '.join(map(str, node)) if isinstance(node, dict) else 'none (not a mapping)'
            raise ConfigError(f"config key {dotted!r} missing: {where} has {keys}")
        node = node[part]
        path.append(part)
    return node
