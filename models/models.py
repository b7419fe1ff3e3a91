"""The model registry: `@register(name)` on a class or factory, `make(spec)` to build one."""
from utils.registry import Registry

registry = Registry('model')
register = registry.register
models = registry.entries


def make(model_spec, args=None, load_sd=False):
    """Build a model from `{name, args[, sd]}`; `args` overrides the spec's args."""
    model = registry.make(model_spec, args)
    if load_sd:
        model.load_state_dict(model_spec['sd'])
    return model
