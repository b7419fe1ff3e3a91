"""The model registry: `@register(name)` on a class or factory, `make(spec)` to build one."""
import copy

models = {}


def register(name):
    def decorator(cls):
        if name in models:
            raise ValueError(f"model name registered twice: {name!r}")
        models[name] = cls
        return cls
    return decorator


def make(model_spec, args=None, load_sd=False):
    """Build a model from `{name, args[, sd]}`; `args` overrides the spec's args."""
    name = model_spec['name']
    if name not in models:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(models))}")
    model_args = copy.deepcopy(model_spec.get('args') or {})
    if args is not None:
        model_args.update(args)
    model = models[name](**model_args)
    if load_sd:
        model.load_state_dict(model_spec['sd'])
    return model
