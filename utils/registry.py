"""Name -> class registries: `@register(name)` on a class or factory, `make(spec)` to build one.

Models and data sets each keep one `Registry`, so a YAML spec `{name: ..., args: {...}}` can name
anything registered, and a wrong name lists what exists."""
import copy


class Registry:
    def __init__(self, kind):
        self.kind = kind    # 'model', 'dataset': used in error messages
        self.entries = {}

    def register(self, name):
        def decorator(cls):
            if name in self.entries:
                raise ValueError(f"{self.kind} name registered twice: {name!r}")
            self.entries[name] = cls
            return cls
        return decorator

    def make(self, spec, args=None):
        """Build `spec['name']` with `spec['args']`, updated by `args` when given."""
        name = spec['name']
        if name not in self.entries:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self.entries))}")
        kwargs = copy.deepcopy(spec.get('args') or {})
        if args is not None:
            kwargs.update(args)
        return self.entries[name](**kwargs)
