"""Run a learner's function under its question's rules, and report what happened as plain data.

``execute(fn, args, kwargs, rules)`` calls ``fn`` on copies of the arguments and returns an :class:`Outcome`: the
result or the error, the forbidden calls it made (``rules.forbid``), how many steps its own code took (lines
and calls, so a loop written in NumPy or plain Python counts as much as one in torch), how many torch functions
it called, and which arguments it changed in place. It never raises, except :class:`TimedOut` and
``KeyboardInterrupt``.

Forbidden calls are caught however they were reached: ``F.conv2d``, ``from torch.nn.functional import conv2d``,
``torch.conv2d``, ``torch.ops.aten.convolution``, an ``nn.Conv2d`` being built or run, or anything defined
inside a forbidden module. Three nets do it: a profile hook that sees every Python and built-in call, a
dispatcher mode that sees the ATen operators that run, and code-object identity for Python functions.

The learner's notebook calls ``execute`` in its own process; the instructor CLI calls it inside the
submission's kernel and ships ``Outcome.to_wire()`` back (tensors and plain Python values only, so the trusted
side can load it with ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import copy
import importlib
import sys
import sysconfig
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["API_READY", "ErrorInfo", "Opaque", "Outcome", "Rules", "TimedOut", "describe", "execute", "prepare",
           "library_dirs", "location"]

API_READY = True


class TimedOut(BaseException):
    """A test ran past its time limit (a BaseException, so ``except Exception`` in learner code can't hide it)."""

    def __init__(self, note: str = "") -> None:
        super().__init__(note)
        self.note = note


# ---------------------------------------------------------------- rules and outcomes (plain data)

@dataclass
class Rules:
    """What a question forbids (name -> advice) and what to measure while the learner's code runs."""
    qid: str = ""
    forbid: dict[str, str] = field(default_factory=dict)
    count_steps: bool = False
    count_ops: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"qid": self.qid, "forbid": dict(self.forbid), "count_steps": self.count_steps,
                "count_ops": self.count_ops}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Rules:
        return cls(str(d.get("qid", "")), {str(k): str(v) for k, v in dict(d.get("forbid", {})).items()},
                   bool(d.get("count_steps")), bool(d.get("count_ops")))


@dataclass
class ErrorInfo:
    """An exception raised by the learner's code, as text (it may come from another process)."""
    type_name: str
    message: str
    location: str = ""
    not_implemented: bool = False
    exc: BaseException | None = field(default=None, repr=False, compare=False)  # only in-process


class Opaque:
    """Stands for a returned object that cannot travel between processes (a module, a function...)."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return self.description


@dataclass
class Outcome:
    result: Any = None
    error: ErrorInfo | None = None
    violations: list[str] = field(default_factory=list)
    steps: int = 0
    torch_ops: int = 0
    mutated: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        err = None if self.error is None else {
            "type_name": self.error.type_name, "message": self.error.message, "location": self.error.location,
            "not_implemented": self.error.not_implemented}
        return {"result": _encode(self.result), "error": err, "violations": list(self.violations),
                "steps": int(self.steps), "torch_ops": int(self.torch_ops), "mutated": list(self.mutated)}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Outcome:
        err = d.get("error")
        error = None if err is None else ErrorInfo(str(err["type_name"]), str(err["message"]),
                                                   str(err.get("location", "")), bool(err.get("not_implemented")))
        return cls(_decode(d.get("result")), error, [str(v) for v in d.get("violations", [])],
                   int(d.get("steps", 0)), int(d.get("torch_ops", 0)), [str(m) for m in d.get("mutated", [])])


def _encode(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return {"__opaque__": "a deeply nested object"}
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu() if value.device.type not in ("cpu", "meta") else value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufc":
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
        return {"__opaque__": describe(value)}
    if isinstance(value, np.generic):
        return {"__npscalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"__tuple__": [_encode(v, depth + 1) for v in value]}
    if isinstance(value, list):
        return [_encode(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return {"__dict__": [[k, _encode(v, depth + 1)] for k, v in value.items()]}
    return {"__opaque__": describe(value)}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy()
        if "__npscalar__" in value:
            return np.dtype(value["dtype"]).type(value["__npscalar__"])
        if "__dict__" in value:
            return {k: _decode(v) for k, v in value["__dict__"]}
        if "__opaque__" in value:
            return Opaque(str(value["__opaque__"]))
    return value


# ---------------------------------------------------------------- describing values

def describe(value: Any) -> str:
    """A short description for messages: ``Tensor(2, 3, 5, 5) float32``, ``ndarray(3, 3) float64``, ``28``."""
    if isinstance(value, torch.Tensor):
        where = "" if value.device.type == "cpu" else f" on {value.device}"
        shape = ", ".join(str(s) for s in value.shape)
        return f"Tensor({shape}) {str(value.dtype).replace('torch.', '')}{where}"
    if isinstance(value, np.ndarray):
        return f"NumPy ndarray{value.shape} {value.dtype}"
    if isinstance(value, Opaque):
        return value.description
    if isinstance(value, (list, tuple)):
        simple = all(isinstance(v, (int, float, bool, str, type(None))) for v in value)
        if simple and len(value) <= 6:
            text = repr(value)
            return text if len(text) <= 60 else text[:57] + "..."
        kinds = {type(v).__name__ for v in value}
        if len(kinds) == 1 and len(value) <= 4:
            return f"a {type(value).__name__} of [{', '.join(describe(v) for v in value)}]"
        what = f"{kinds.pop()}s" if len(kinds) == 1 else "items"
        return f"a {type(value).__name__} of {len(value)} {what}"
    if isinstance(value, types.FunctionType):
        return f"the function {value.__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def library_dirs() -> tuple[str, ...]:
    """Folders whose code is not the learner's: cnnkit, torch, numpy and the standard library."""
    dirs = {str(Path(__file__).resolve().parents[1]), str(Path(torch.__file__).parent),
            str(Path(np.__file__).parent)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        dirs.add(sysconfig.get_paths()[key])
    return tuple(dirs)


_LIBS = library_dirs()


def _is_learner_code(code: types.CodeType) -> bool:
    name = code.co_filename
    return not name.startswith(_LIBS) and not name.startswith("<frozen")


def location(exc: BaseException) -> str:
    """Where in the learner's own code ``exc`` was raised, e.g. `` (line 6, in conv2d_loops: `out[i] = ...`)``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_LIBS)
              and f.filename != __file__]
    if not frames:
        return ""
    f = frames[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f" (line {f.lineno}, in {f.name}:{code})"


# ---------------------------------------------------------------- what a forbidden name covers

# ATen operators behind common functions, so that torch.conv2d, torch.ops.aten... and nn modules are caught too.
_ATEN = {
    "conv1d": {"convolution", "_convolution", "conv1d", "mkldnn_convolution", "_slow_conv2d_forward"},
    "conv2d": {"convolution", "_convolution", "conv2d", "mkldnn_convolution", "_slow_conv2d_forward",
               "thnn_conv2d", "cudnn_convolution", "_nnpack_spatial_convolution"},
    "conv3d": {"convolution", "_convolution", "conv3d", "mkldnn_convolution", "slow_conv3d"},
    "conv_transpose2d": {"convolution", "_convolution", "conv_transpose2d", "slow_conv_transpose2d"},
    "max_pool1d": {"max_pool1d", "max_pool1d_with_indices", "max_pool2d_with_indices"},
    "max_pool2d": {"max_pool2d", "max_pool2d_with_indices", "mkldnn_max_pool2d"},
    "avg_pool1d": {"avg_pool1d", "avg_pool2d"},
    "avg_pool2d": {"avg_pool2d", "mkldnn_avg_pool2d"},
    "adaptive_avg_pool2d": {"adaptive_avg_pool2d", "_adaptive_avg_pool2d"},
    "adaptive_max_pool2d": {"adaptive_max_pool2d"},
    "pad": {"constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
            "replication_pad2d", "replication_pad3d", "_pad_circular", "_pad_enum", "pad"},
    "leaky_relu": {"leaky_relu", "leaky_relu_"},
    "gelu": {"gelu"},
    "logsumexp": {"logsumexp"},
    "softmax": {"softmax", "_softmax"},
    "log_softmax": {"log_softmax", "_log_softmax"},
    "cross_entropy": {"cross_entropy_loss", "nll_loss", "nll_loss_forward", "nll_loss2d_forward"},
    "nll_loss": {"nll_loss", "nll_loss_forward", "nll_loss2d_forward"},
    "batch_norm": {"batch_norm", "native_batch_norm", "_native_batch_norm_legit",
                   "_native_batch_norm_legit_no_training", "cudnn_batch_norm", "_batch_norm_impl_index"},
    "one_hot": {"one_hot"},
}
_CLASS_ALIASES = {
    "Conv1d": "conv1d", "Conv2d": "conv2d", "Conv3d": "conv3d", "ConvTranspose2d": "conv_transpose2d",
    "MaxPool1d": "max_pool1d", "MaxPool2d": "max_pool2d", "AvgPool1d": "avg_pool1d", "AvgPool2d": "avg_pool2d",
    "AdaptiveAvgPool2d": "adaptive_avg_pool2d", "AdaptiveMaxPool2d": "adaptive_max_pool2d",
    "ReflectionPad1d": "pad", "ReflectionPad2d": "pad", "ReplicationPad1d": "pad", "ReplicationPad2d": "pad",
    "ZeroPad2d": "pad", "ConstantPad1d": "pad", "ConstantPad2d": "pad", "CircularPad2d": "pad",
    "LeakyReLU": "leaky_relu", "GELU": "gelu", "Softmax": "softmax", "LogSoftmax": "log_softmax",
    "CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss", "BatchNorm1d": "batch_norm",
    "BatchNorm2d": "batch_norm",
}
_TORCH_BUILTIN_OWNERS: tuple[Any, ...] = tuple(o for o in (
    getattr(torch._C, "_VariableFunctions", None), getattr(torch._C, "_nn", None),
    getattr(torch._C, "_special", None), getattr(torch._C, "_linalg", None), getattr(torch._C, "_fft", None),
    torch) if o is not None)
_AUTOGRAD_TEXT = "autograd (`.backward()`, `torch.autograd.grad`, `torch.func` transforms)"


@dataclass
class _Forbidden:
    codes: dict[Any, str] = field(default_factory=dict)        # code object -> the forbidden name
    prefixes: dict[str, str] = field(default_factory=dict)     # source path prefix (a module) -> name
    builtins: dict[str, str] = field(default_factory=dict)     # torch built-in name -> forbidden name
    c_names: dict[str, str] = field(default_factory=dict)      # any built-in name (autograd engine) -> name
    aten: dict[str, str] = field(default_factory=dict)         # ATen overload packet name -> forbidden name
    advice: dict[str, str] = field(default_factory=dict)


def _resolve(name: str) -> Any:
    """The object a dotted name refers to, or None when it does not exist here (e.g. SciPy not installed)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _codes_of(obj: Any) -> list[Any]:
    out, seen = [], set()
    todo = [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, (staticmethod, classmethod)):
            todo.append(o.__func__)
            continue
        code = getattr(o, "__code__", None)
        if isinstance(code, types.CodeType):
            out.append(code)
        for attr in ("__wrapped__", "_implementation", "__func__"):
            inner = getattr(o, attr, None)
            if inner is not None:
                todo.append(inner)
    return out


@lru_cache(maxsize=64)
def _compile(items: tuple[tuple[str, str], ...]) -> _Forbidden:
    f = _Forbidden()
    for name, advice in items:
        f.advice[name] = advice
        if name == "autograd":
            for obj in (torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad,
                        *(getattr(torch.autograd.functional, n) for n in ("jacobian", "hessian", "vjp", "jvp",
                                                                           "vhp", "hvp"))):
                for code in _codes_of(obj):
                    f.codes[code] = "autograd"
            func_dir = Path(torch.__file__).parent / "_functorch"
            f.prefixes[str(func_dir / "eager_transforms.py")] = "autograd"
            f.prefixes[str(func_dir / "apis.py")] = "autograd"
            f.c_names.update({"run_backward": "autograd", "_run_backward": "autograd"})
            continue
        if name.startswith("aten."):
            f.aten[name.split(".", 1)[1]] = name
            continue
        obj = _resolve(name)
        if obj is None:
            continue
        short = name.rsplit(".", 1)[-1]
        if isinstance(obj, types.ModuleType):
            path = getattr(obj, "__file__", None)
            if path:
                p = Path(path)
                f.prefixes[str(p.parent) + "/" if p.name == "__init__.py" else str(p)] = name
            for attr in dir(obj):  # built-ins the module exposes (e.g. numpy's C functions)
                member = getattr(obj, attr, None)
                if isinstance(member, types.BuiltinFunctionType) and getattr(member, "__module__", "") and \
                        str(getattr(member, "__module__", "")).startswith(name):
                    f.builtins.setdefault(member.__name__, name)
            continue
        if isinstance(obj, type):
            for member in vars(obj).values():
                for code in _codes_of(member):
                    f.codes[code] = name
            alias = _CLASS_ALIASES.get(obj.__name__)
            if alias:
                f.aten.update({op: name for op in _ATEN.get(alias, ())})
            continue
        for code in _codes_of(obj):
            f.codes[code] = name
        if isinstance(obj, types.BuiltinFunctionType) or not _codes_of(obj):
            f.builtins[getattr(obj, "__name__", short)] = name
        if name.startswith("torch"):
            f.builtins.setdefault(short, name)
            f.aten.update({op: name for op in _ATEN.get(short, ())})
    return f


def _message(f: _Forbidden, name: str, how: str) -> str:
    what = _AUTOGRAD_TEXT if name == "autograd" else f"`{name}`"
    advice = f.advice.get(name, "")
    text = f"your code used {what}{how}, which this question forbids."
    return f"{text} {advice}" if advice else text + " Write that part yourself."


# ---------------------------------------------------------------- running under the guard

class _OpCounter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


class _AtenGuard(TorchDispatchMode):
    def __init__(self, forbidden: _Forbidden, hits: list[tuple[str, str]]) -> None:
        super().__init__()
        self.forbidden, self.hits = forbidden, hits

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        packet = getattr(getattr(func, "overloadpacket", None), "__name__", "")
        if packet in self.forbidden.aten:
            self.hits.append((self.forbidden.aten[packet], f" (it ran the operator aten.{packet})"))
        return func(*args, **(kwargs or {}))


class _Watch:
    """sys.setprofile / sys.settrace hooks: forbidden calls, and the learner's own steps."""

    def __init__(self, forbidden: _Forbidden, count_steps: bool) -> None:
        self.f, self.count = forbidden, count_steps
        self.hits: list[tuple[str, str]] = []
        self.steps = 0
        self._learner: dict[Any, bool] = {}

    def learner(self, code: Any) -> bool:
        known = self._learner.get(code)
        if known is None:
            known = self._learner[code] = _is_learner_code(code)
        return known

    def profile(self, frame, event, arg):  # noqa: ANN001 - the profile hook's signature
        if event == "call":
            code = frame.f_code
            name = self.f.codes.get(code)
            if name is None and self.f.prefixes:
                fname = code.co_filename
                for prefix, pname in self.f.prefixes.items():
                    if fname.startswith(prefix):
                        name = pname
                        break
            if name is not None:
                self.hits.append((name, ""))
        elif event == "c_call":
            if self.count and self.learner(frame.f_code):
                self.steps += 1
            cname = getattr(arg, "__name__", None)
            if cname is None:
                return
            if cname in self.f.c_names:
                self.hits.append((self.f.c_names[cname], ""))
            elif cname in self.f.builtins:
                name = self.f.builtins[cname]
                owner = getattr(arg, "__self__", None)
                if not name.startswith("torch") or owner is None or isinstance(owner, torch.Tensor) or \
                        any(owner is o for o in _TORCH_BUILTIN_OWNERS):
                    self.hits.append((name, ""))

    def trace(self, frame, event, arg):  # noqa: ANN001 - the trace hook's signature
        if event == "call" and self.learner(frame.f_code):
            self.steps += 1
            return self._local
        return None

    def _local(self, frame, event, arg):  # noqa: ANN001
        if event == "line":
            self.steps += 1
        return self._local


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - uncopyable objects are passed as they are
        return value


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are equal values (tensors: shape, dtype, device and values; meta: no values)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and a.device == b.device):
            return False
        if a.device.type == "meta":
            return True
        return bool(torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and \
            bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return a is b


def prepare(rules: Rules | None = None) -> None:
    """Do the slow one-time set-up for ``rules`` now, outside any time limit.

    PyTorch imports its compiler (``torch._dynamo``, with SymPy) lazily, the first time a dispatcher mode meets
    some operators; under the profile hook that import takes many seconds and would eat a learner's first
    test's time limit.
    """
    forbidden = _compile(tuple(sorted((rules or Rules()).forbid.items())))
    if forbidden.aten and "torch._dynamo" not in sys.modules:
        importlib.import_module("torch._dynamo")


def execute(fn: Callable, args: tuple, kwargs: dict, rules: Rules | None = None) -> Outcome:
    """Call ``fn(*copies of args, **copies of kwargs)`` under ``rules``; see the module docstring."""
    rules = rules or Rules()
    forbidden = _compile(tuple(sorted(rules.forbid.items())))
    if forbidden.aten:
        prepare(rules)
    watch = _Watch(forbidden, rules.count_steps)
    args2, kwargs2 = tuple(_copy(a) for a in args), {k: _copy(v) for k, v in kwargs.items()}
    counter = _OpCounter() if rules.count_ops else None
    aten_hits: list[tuple[str, str]] = []
    aten = _AtenGuard(forbidden, aten_hits) if forbidden.aten else None
    outcome = Outcome()
    old_profile, old_trace = sys.getprofile(), sys.gettrace()
    try:
        if aten is not None:
            aten.__enter__()
        if counter is not None:
            counter.__enter__()
        try:
            sys.setprofile(watch.profile)
            if rules.count_steps:
                sys.settrace(watch.trace)
            outcome.result = fn(*args2, **kwargs2)
        finally:
            sys.settrace(old_trace)
            sys.setprofile(old_profile)
            if counter is not None:
                counter.__exit__(None, None, None)
            if aten is not None:
                aten.__exit__(None, None, None)
    except (TimedOut, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: the learner's code may raise anything
        outcome.error = ErrorInfo(type(exc).__name__, str(exc), location(exc), isinstance(exc, NotImplementedError),
                                  exc)
    seen: set[str] = set()
    for name, how in watch.hits + aten_hits:
        if name not in seen:
            seen.add(name)
            outcome.violations.append(_message(forbidden, name, how))
    outcome.steps, outcome.torch_ops = watch.steps, counter.n if counter is not None else 0
    outcome.mutated = [f"argument {i + 1} ({describe(a)})" for i, (a, b) in enumerate(zip(args, args2))
                       if not same(a, b)]
    outcome.mutated += [f"argument `{k}`" for k in kwargs if not same(kwargs[k], kwargs2[k])]
    return outcome
