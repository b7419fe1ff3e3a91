"""Name -> class registries (models and data sets each keep one): `@register(name)` on a class or factory,
`make(spec)` builds one from a YAML spec `{name: ..., args: {...}}`; a wrong name lists what exists."""
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
        kwargs = {**copy.deepcopy(spec.get('args') or {}), **(args or {})}
        return self.entries[name](**kwargs)
