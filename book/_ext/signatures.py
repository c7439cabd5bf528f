"""Show the constructor's parameters in the API reference.

brainstate modules have a metaclass whose ``__call__(*args, **kwargs)``
autodoc takes for the class signature. For those classes, use the
signature of ``__init__`` instead (without ``self``), with class defaults
written by name (``brainstate.ParamState``, not ``<class '...'>``).
"""

import inspect


class _Name:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _plain(param):
    param = param.replace(annotation=inspect.Parameter.empty)
    default = param.default
    if default is not inspect.Parameter.empty and inspect.isclass(default):
        param = param.replace(default=_Name(f"{default.__module__.split('.')[0]}.{default.__qualname__}"))
    return param


def _init_signature(app, what, name, obj, options, signature, return_annotation):
    if what != "class" or signature not in ("(*args, **kwargs)", "(*args, **kw)"):
        return None
    try:
        sig = inspect.signature(obj.__init__)
    except (TypeError, ValueError):
        return None
    params = [_plain(p) for p in sig.parameters.values()][1:]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty)), return_annotation


def setup(app):
    app.connect("autodoc-process-signature", _init_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
