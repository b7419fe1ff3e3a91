"""The model registry: `@register(name)` on a class or factory, `make(spec)` to build one."""
from utils.registry import Registry

registry = Registry('model')
register = registry.register


def make(model_spec, args=None):
    """Build a model from `{name, args}`; `args` overrides the spec's args."""
    return registry.make(model_spec, args)
