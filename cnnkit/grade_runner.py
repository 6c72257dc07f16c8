"""Kernel side of the instructor CLI: this file's code runs INSIDE the submission's kernel.

The trusted side (``cnnkit.grade``) never imports it for itself: it reads this file's text from its snapshot of
the package before the submission runs, and sends it in the cells it executes in the kernel (``exec`` of that
text), so a submission that patched ``sys.modules`` or the files on disk cannot change it. The guard
(``cnnkit/checks/guard.py``) is loaded the same way, from text, into a module of its own.

- ``fingerprint(user_ns)``: ``{name: identity}`` of the objects grading relies on (the ``cnnkit`` modules and
  their classes' methods, IPython's display functions and hooks, ``sys.setprofile``/``settrace``,
  ``torch.overrides``, the dispatch modes, ``torch``, ``torch.nn.functional``, NumPy, the builtins). Taken once
  before any learner cell, again after them and after the tests: any identity that changed is a patch.
- ``namespace_problems(user_ns, slug)``: ``check`` / ``Checker`` in the notebook that are not the grader's.
- ``Runner``: the loaded guard and the notebook's namespace; ``call`` runs one learner function under
  ``guard.execute`` with the arguments the trusted side saved, and saves ``outcome.to_wire()`` with
  ``torch.save`` (the trusted side loads it with ``weights_only=True``).
"""
import json
import sys
import types

_DEEP = ("IPython.core.displaypub", "IPython.core.displayhook", "IPython.core.formatters", "ipykernel.zmqshell",
         "ipykernel.displayhook", "torch.overrides", "torch.utils._python_dispatch")
_SHALLOW = ("IPython.display", "IPython.core.display_functions", "IPython.core.display", "builtins", "torch",
            "torch.nn.functional", "torch.autograd", "torch.autograd.functional", "torch._C", "torch._C._nn",
            "torch.func", "numpy", "numpy.lib.stride_tricks", "pickle", "json")
_SYS = ("setprofile", "settrace", "getprofile", "gettrace", "displayhook", "_getframe", "modules")
_THREADING = ("setprofile", "settrace")


def _torch_dir():
    torch = sys.modules.get("torch")
    path = getattr(torch, "__file__", None)
    return path.rsplit("/", 1)[0].rsplit("\\", 1)[0] if path else None


def _unwrap(obj):
    """Look through wrappers torch puts on its own functions when a submodule is imported (``torch._dynamo``
    wraps ``torch.manual_seed``): a ``functools.wraps`` wrapper whose code lives inside torch."""
    where = _torch_dir()
    for _ in range(5):
        if not isinstance(obj, types.FunctionType) or where is None:
            return obj
        inner = obj.__dict__.get("__wrapped__")
        if inner is None or not obj.__code__.co_filename.startswith(where):
            return obj
        obj = inner
    return obj


def _ident(obj):
    obj = _unwrap(obj)
    if isinstance(obj, types.MethodType):  # a fresh bound-method object each time: compare what it binds
        return hash((id(obj.__self__), id(obj.__func__))) & 0xFFFFFFFFFFFF
    return id(obj)


def _add_object(out, name, obj, deep):
    out[name] = _ident(obj)
    obj = _unwrap(obj)
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        out[name + ".__code__"] = id(code)
    if deep and isinstance(obj, type):
        for key, value in list(vars(obj).items()):
            if callable(value) or isinstance(value, (staticmethod, classmethod, property)):
                out[f"{name}.{key}"] = _ident(value)
                inner = getattr(value, "__func__", value)
                code = getattr(inner, "__code__", None)
                if isinstance(code, types.CodeType):
                    out[f"{name}.{key}.__code__"] = id(code)


def _add_module(out, name, deep):
    module = sys.modules.get(name)
    if module is None:
        return
    out[name] = id(module)
    for key, value in list(vars(module).items()):
        if callable(value) or isinstance(value, types.ModuleType):
            own = deep and getattr(value, "__module__", name) == name
            _add_object(out, f"{name}.{key}", value, own)


def _add_instance(out, name, obj):
    if obj is None:
        return
    out[name] = id(obj)
    out[name + ".__class__"] = id(type(obj))
    methods = {key for cls in type(obj).__mro__ for key, value in vars(cls).items()
               if isinstance(value, types.FunctionType) and not key.startswith("__")}
    for key in sorted(methods):  # a method overridden on the instance, e.g. display_pub.publish = ...
        try:
            out[f"{name}.{key}"] = _ident(getattr(obj, key))
        except Exception:  # noqa: BLE001 - whatever the attribute does
            continue


def fingerprint(user_ns=None, extra=()):
    """``{dotted name: identity}`` of everything grading relies on, as it is now in this process."""
    out = {}
    for name in sorted(n for n in list(sys.modules) if n == "cnnkit" or n.startswith("cnnkit.")):
        _add_module(out, name, True)
    for name in _DEEP:
        _add_module(out, name, True)
    for name in _SHALLOW:
        _add_module(out, name, False)
    for key in _SYS:
        if hasattr(sys, key):
            out[f"sys.{key}"] = _ident(getattr(sys, key))
    threading = sys.modules.get("threading")
    for key in _THREADING:
        if threading is not None and hasattr(threading, key):
            out[f"threading.{key}"] = _ident(getattr(threading, key))
    torch = sys.modules.get("torch")
    if torch is not None:
        _add_object(out, "torch.Tensor", torch.Tensor, True)
    getipython = sys.modules.get("IPython.core.getipython")
    shell = getipython.get_ipython() if getipython is not None else None
    if shell is not None:
        for attr in ("display_pub", "displayhook", "display_formatter"):
            _add_instance(out, f"shell.{attr}", getattr(shell, attr, None))
    for name, module in extra:
        out[name] = id(module)
        for key, value in list(vars(module).items()):
            if callable(value):
                _add_object(out, f"{name}.{key}", value, isinstance(value, type))
    return out


def namespace_problems(user_ns, slug):
    """``check`` and ``Checker`` in the notebook that are not the grader's own (redefined or replaced)."""
    grading = sys.modules.get("cnnkit.grading")
    real = getattr(grading, "Checker", None)
    out = []
    if "Checker" in user_ns and real is not None and user_ns["Checker"] is not real:
        out.append({"name": "Checker", "detail": "`Checker` in the notebook is not cnnkit.grading.Checker (it was "
                                                 f"redefined as {_short(user_ns['Checker'])})"})
    if "check" in user_ns:
        check = user_ns["check"]
        if real is None or type(check) is not real:
            out.append({"name": "check", "detail": "`check` in the notebook is not a cnnkit Checker (it was "
                                                   f"redefined as {_short(check)})"})
        elif getattr(check, "slug", slug) != slug:
            out.append({"name": "check", "detail": f"`check` grades {check.slug!r}, not {slug!r}"})
        elif "__call__" in getattr(check, "__dict__", {}):
            out.append({"name": "check", "detail": "`check` has its own __call__ attribute"})
    return out


def _short(obj):
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001 - the learner's object may refuse
        text = f"a {type(obj).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def probe(user_ns, slug, out_path, extra=()):
    """Write the fingerprint and the namespace problems as JSON to ``out_path``."""
    data = {"fingerprint": fingerprint(user_ns, extra), "namespace": namespace_problems(user_ns, slug)}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def baseline(user_ns, slug, out_path):
    """Before any learner cell: import what grading relies on, then record its fingerprint."""
    import numpy  # noqa: F401
    import torch.nn.functional  # noqa: F401
    import IPython.display  # noqa: F401
    import cnnkit.grading
    cnnkit.grading.load_exercise(slug)
    probe(user_ns, slug, out_path)


def _load_guard(source, path):
    module = types.ModuleType("_cnnkit_grade_guard")
    module.__file__ = path
    sys.modules[module.__name__] = module  # dataclasses look their module up while the classes are made
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    finally:
        sys.modules.pop(module.__name__, None)
    return module


class Runner:
    """The guard, loaded from the pristine text, and the notebook's namespace; lives for the grading phase."""

    def __init__(self, user_ns, guard_source, guard_path):
        self.ns = user_ns
        self.guard = _load_guard(guard_source, guard_path)
        self.graphs = {}
        getipython = sys.modules.get("IPython.core.getipython")
        shell = getipython.get_ipython() if getipython is not None else None
        if shell is not None and hasattr(shell, "InteractiveTB"):
            try:  # short tracebacks: an interrupted call must answer within seconds even on a busy machine
                shell.InteractiveTB.set_mode("Plain")
            except Exception:  # noqa: BLE001
                pass

    def prepare(self, rules):
        """The guard's slow one-time set-up (lazy imports such as ``torch._dynamo``) for every question's rules,
        now, outside the tests' time limits: an interrupt in the middle of an import would break torch."""
        prepare = getattr(self.guard, "prepare", None)
        for wire in rules:
            rules_ = self.guard.Rules.from_wire(wire)
            if prepare is not None:
                prepare(rules_)
            self.guard.execute(lambda: None, (), {}, rules_)

    def names(self, names, out_path):
        """For each name: null when it is a callable in the notebook, else a description (or missing)."""
        found = {}
        for name in names:
            if name not in self.ns:
                continue
            value = self.ns[name]
            found[name] = None if callable(value) else self.guard.describe(value)
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump(found, f)

    def direct(self, key, name, in_path, out_path):
        """A test's direct call ``fn(*args)`` (not through the checker): no copies and no rules, as in the
        learner's notebook; when the result carries a graph back to arguments that require grad, keep it so
        the trusted side can ask for vector-Jacobian products (``vjp``)."""
        import torch
        guard = self.guard
        with open(in_path, "rb") as f:
            args, kwargs = torch.load(f, weights_only=False)
        outcome = guard.Outcome()
        try:
            outcome.result = self.ns.get(name)(*args, **kwargs)
        except KeyboardInterrupt:  # the grader's interrupt (or the learner's): answer fast, no traceback
            outcome.error = guard.ErrorInfo("KeyboardInterrupt", "interrupted")
        except BaseException as exc:  # noqa: BLE001 - the learner's code may raise anything
            outcome.error = guard.ErrorInfo(type(exc).__name__, str(exc), guard.location(exc),
                                            isinstance(exc, NotImplementedError))
        flat = list(args) + list(kwargs.values())
        leaves = [i for i, t in enumerate(flat) if isinstance(t, torch.Tensor) and t.requires_grad]
        graph = isinstance(outcome.result, torch.Tensor) and outcome.result.requires_grad and bool(leaves)
        if graph:
            self.graphs[key] = (outcome.result, [flat[i] for i in leaves])
            while len(self.graphs) > 8:
                self.graphs.pop(next(iter(self.graphs)))
        torch.save({"outcome": outcome.to_wire(), "leaves": leaves if graph else []}, out_path)

    def vjp(self, key, in_path, out_path):
        """The gradients of a kept direct call's result, weighted by the saved ``grad_output``."""
        import torch
        result, leaves = self.graphs[key]
        with open(in_path, "rb") as f:
            grad_output = torch.load(f, weights_only=False)
        grads = torch.autograd.grad(result, leaves, grad_output, allow_unused=True, retain_graph=True)
        torch.save([None if g is None else g.detach() for g in grads], out_path)

    def call(self, name, in_path, out_path):
        import torch
        guard = self.guard
        try:
            with open(in_path, "rb") as f:
                args, kwargs, rules = torch.load(f, weights_only=False)
            outcome = guard.execute(self.ns.get(name), tuple(args), dict(kwargs), guard.Rules.from_wire(rules))
        except KeyboardInterrupt:  # the grader's interrupt (or the learner's): answer fast, no traceback
            outcome = guard.Outcome(error=guard.ErrorInfo("KeyboardInterrupt", "interrupted"))
        torch.save(outcome.to_wire(), out_path)
