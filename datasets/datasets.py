"""The data set registry (image folders and the SR wrappers around them), like the models'."""
from utils.errors import UserError
from utils.registry import Registry

registry = Registry('dataset')
register = registry.register


class DataError(UserError):
    """Data that cannot be used (unreadable file, image too small, ...); one line naming the file."""


class ArgError(UserError):
    """A data set's constructor argument with a value it cannot use, found before any data is
    read; `loading.build` puts the config key in front (train_dataset.wrapper.args.<arg>)."""

    def __init__(self, arg, value, expected):
        super().__init__(f"{arg} {value!r}: expected {expected}")


def make(dataset_spec, args=None):
    """Build a data set from `{name, args}`; `args` (e.g. {'dataset': inner}) update the spec's args."""
    return registry.make(dataset_spec, args)
