"""What a learner program may reach: the whitelisted parts of torch, numpy and Python's builtins.

Nothing here hands the program a real module, class or Python function. Names resolve to
``Namespace`` objects (a fixed dict of members), ``SafeFunction`` wrappers and ``BoundMethod``
wrappers, none of which is callable by Python itself (no ``__call__``), so a program cannot
smuggle one into a library routine that calls back. Every wrapper checks its keyword arguments
and the size of what it is about to allocate before calling the real library function.
"""

from __future__ import annotations

import collections
import math
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as torch_f
from torch import nn

from app.sandbox.guards import (
    ARRAY_KINDS,
    Guard,
    arange_count,
    as_number,
    as_shape,
    as_size,
    broadcast_shape,
    check_iterable,
    data_elements,
    matmul_shape,
    numel,
    shape_elements,
    shape_of,
    size_int,
    varargs_shape,
)
from app.sandbox.hints import notice_probabilities
from app.sandbox.limits import SandboxRefused
from app.sandbox.operators import binary
from app.sandbox.values import format_value

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Impl = Callable[[Guard, Args, Kwargs], Any]
MethodImpl = Callable[[Guard, Any, Args, Kwargs], Any]
Rule = Callable[[Guard, Args, Kwargs], None]
# Converts a function's size arguments and checks them; returns the arguments to call with.
Prep = Callable[[Guard, str, Args, Kwargs], tuple[Args, Kwargs]]


class SafeFunction:
    """A whitelisted function; only the interpreter can call it (``impl(guard, args, kwargs)``)."""

    __slots__ = ("name", "impl", "pytype")

    def __init__(self, name: str, impl: Impl, pytype: type | None = None) -> None:
        self.name = name
        self.impl = impl
        self.pytype = pytype  # float/int/bool double as dtypes: torch.ones(2, dtype=float)

    def __repr__(self) -> str:
        if isinstance(self.pytype, type):
            module = self.pytype.__module__
            prefix = "" if module == "builtins" else f"{module}."
            return f"<class '{prefix}{self.pytype.__qualname__}'>"
        return f"<function {self.name}>"


class Namespace:
    """A module as the program sees it: a fixed set of whitelisted members."""

    __slots__ = ("name", "members")

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        self.name = name
        self.members = members

    def __repr__(self) -> str:
        return f"<module '{self.name}'>"


class BoundMethod:
    """``x.view`` as a value: the object and the whitelisted method implementation."""

    __slots__ = ("obj", "name", "impl")

    def __init__(self, obj: Any, name: str, impl: MethodImpl) -> None:
        self.obj = obj
        self.name = name
        self.impl = impl

    def __repr__(self) -> str:
        return f"<method {type(self.obj).__name__}.{self.name}>"


class BaseClass:
    """A library class a program may subclass (``nn.Module``, ``Dataset``, ``object``) and name in
    ``isinstance``; the interpreter builds the learner's class on ``real``."""

    __slots__ = ("name", "real")

    def __init__(self, name: str, real: type) -> None:
        self.name = name
        self.real = real

    def __repr__(self) -> str:
        return f"<class '{self.name}'>"


def _names(text: str) -> list[str]:
    """Whitespace-separated names, so long whitelists read as one block."""
    return text.split()


# -- keyword arguments and dtypes ------------------------------------------------------------------

SAFE_KWARGS = frozenset(
    _names(
        """dtype requires_grad dim keepdim size axis keepdims start end step steps low high input
    other exponent min max reduction target ignore_index label_smoothing weight lr momentum
    weight_decay nesterov dampening betas eps maximize in_features out_features bias fill_value
    retain_graph create_graph gradient inputs rtol atol equal_nan decimals out sep num endpoint
    dim0 dim1 dims start_dim end_dim inplace negative_slope condition alpha n m stop shape
    reverse set_to_none unbiased correction p copy tensors device mean std in_channels out_channels
    kernel_size stride padding dilation groups padding_mode ceil_mode return_indices num_features
    affine track_running_stats momentum amsgrad alpha centered initial_accumulator_value lr_decay
    non_blocking strict assign keep_vars prefix recurse generator descending stable"""
    )
)

_NP_DTYPES: dict[str, Any] = {
    "float16": np.float16,
    "float32": np.float32,
    "float64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool_": np.bool_,
}
_DTYPE_STRINGS = frozenset([*_NP_DTYPES, "bool", "float", "int"])


def normalise_dtype(value: Any) -> Any:
    if value is None or isinstance(value, torch.dtype):
        return value
    if isinstance(value, SafeFunction) and value.pytype is not None:
        return value.pytype
    if isinstance(value, type) and value in _NP_DTYPES.values():
        return value
    if isinstance(value, np.dtype) and value.kind in ARRAY_KINDS:
        return value
    if isinstance(value, str) and value in _DTYPE_STRINGS:
        return value
    raise SandboxRefused(f"dtype {format_value(value, True, 80)[0]} is not allowed here")


def check_kwargs(name: str, kwargs: Kwargs) -> Kwargs:
    """Refuse keyword arguments outside the whitelist; normalise dtype and device."""
    for key in kwargs:
        if key not in SAFE_KWARGS:
            raise SandboxRefused(f"{name}() does not take the keyword argument '{key}' here")
    if "dtype" in kwargs:
        kwargs["dtype"] = normalise_dtype(kwargs["dtype"])
    if "device" in kwargs:
        device = kwargs["device"]
        if not (device == "cpu" or (isinstance(device, torch.device) and device.type == "cpu")):
            if isinstance(device, str | torch.device) and str(device).startswith("cuda"):
                raise AssertionError("Torch not compiled with CUDA enabled")
            raise SandboxRefused("only the CPU is available in this sandbox: use device='cpu'")
    generator = kwargs.get("generator")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name}(): generator= must be a torch.Generator, not {type(generator).__name__}"
        )
    for key in ("out", "input", "other", "target", "weight", "gradient"):
        value = kwargs.get(key)
        if value is not None and not isinstance(value, torch.Tensor | np.ndarray | int | float):
            raise SandboxRefused(f"{name}(): {key}= must be a tensor or a number")
    return kwargs


# -- size rules: run before the library call -------------------------------------------------------


def _array_args(args: Args, kwargs: Kwargs, lists: bool) -> list[Any]:
    values = [*args, *kwargs.values()]
    arrays: tuple[type, ...] = (torch.Tensor, np.ndarray)
    kinds = (*arrays, list, tuple, range) if lists else arrays
    return [v for v in values if isinstance(v, kinds) and not isinstance(v, torch.Size)]


def rule_broadcast(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    """Elementwise ops and reductions: at most the broadcast of the tensor arguments."""
    shapes = [s for s in map(shape_of, _array_args(args, kwargs, False)) if s is not None]
    if len(shapes) > 1:
        result = broadcast_shape(shapes)
        if result is not None:
            guard.check_shape(result)


def rule_broadcast_lists(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    """NumPy turns lists into arrays, so their shapes broadcast too."""
    shapes = [s for s in map(shape_of, _array_args(args, kwargs, True)) if s is not None]
    if len(shapes) > 1:
        result = broadcast_shape(shapes)
        if result is not None:
            guard.check_shape(result)


def rule_matmul(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    operands = [a for a in (*args, kwargs.get("input"), kwargs.get("other")) if a is not None]
    if len(operands) >= 2:
        a, b = shape_of(operands[0]), shape_of(operands[1])
        if a is not None and b is not None:
            result = matmul_shape(a, b)
            if result is not None:
                guard.check_shape(result, "matmul result")


def rule_nonzero(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    """``x.nonzero()``: at most one row of ``x.dim()`` indices per element."""
    if args and isinstance(args[0], torch.Tensor):
        guard.check_elements(args[0].numel() * max(args[0].dim(), 1))


def rule_none(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    """Ops whose result is never bigger than an argument that already exists."""


def _positional(args: Args, kwargs: Kwargs, names: list[str], defaults: list[Any]) -> list[Any]:
    values = list(defaults)
    for i, value in enumerate(args[: len(names)]):
        values[i] = value
    for i, name in enumerate(names):
        if name in kwargs:
            values[i] = kwargs[name]
    return values


# -- size rules that convert: every size becomes the checked Python int that is passed on ----------
#
# A program may give a size as an int, a bool, a NumPy integer or a one-element integer tensor
# (``torch.linspace(0, 1, torch.tensor(400000000))``); each is turned into a Python int by
# ``as_size`` and checked before the call, and the call gets that int, never the original.

_MISSING = object()


def _convert_arg(
    args: Args, kwargs: Kwargs, index: int, key: str, convert: Callable[[Any], Any]
) -> tuple[Args, Any]:
    """Convert the argument given at position ``index`` or as ``key=`` (kwargs in place).

    Returns the new positional arguments and the converted value (``_MISSING`` if not given).
    """
    if key in kwargs:
        kwargs[key] = value = convert(kwargs[key])
        return args, value
    if len(args) > index:
        value = convert(args[index])
        return (*args[:index], value, *args[index + 1 :]), value
    return args, _MISSING


def size_creator(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """``torch.ones(2, 3)``, ``torch.ones((2, 3))``, ``torch.ones(size=[2, 3])``."""
    shape, args = varargs_shape(args, kwargs, f"{name}(): size")
    guard.check_size(shape)
    return args, kwargs


def size_full(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """``torch.full(size, fill_value)``."""
    args, shape = _convert_arg(args, kwargs, 0, "size", lambda v: as_shape(v, f"{name}(): size"))
    if shape is not _MISSING:
        guard.check_size(shape)
    return args, kwargs


def size_randint(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """``torch.randint([low,] high, size)``: the size is the last list/tuple (or ``size=``)."""
    sized = [i for i, a in enumerate(args) if isinstance(a, list | tuple)]
    index = sized[-1] if sized else len(args)
    args, shape = _convert_arg(
        args, kwargs, index, "size", lambda v: as_shape(v, f"{name}(): size")
    )
    if shape is not _MISSING:
        guard.check_size(shape)
    return args, kwargs


def size_arange(numpy: bool) -> Prep:
    """``arange(end)``, ``arange(start, end[, step])``: the ends and step as plain numbers."""

    def prep(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
        args = tuple(as_number(a) if i < 3 else a for i, a in enumerate(args))
        for key in ("start", "end", "stop", "step"):
            if key in kwargs:
                kwargs[key] = as_number(kwargs[key])
        if len(args) == 1 and "end" not in kwargs and "stop" not in kwargs:
            start, end, step = 0, args[0], kwargs.get("step", 1)
        else:
            start, end, step = _positional(args, kwargs, ["start", "end", "step"], [0, 0, 1])
            if "stop" in kwargs:
                end = kwargs["stop"]
        if numpy:  # np.arange(5, None) is np.arange(0, 5); a step of None is 1
            start, end = (0, start) if end is None else (start, end)
            step = 1 if step is None else step
        guard.check_elements(arange_count(start, end, step), "array" if numpy else "tensor")
        return args, kwargs

    return prep


def size_linspace(numpy: bool) -> Prep:
    """``linspace(start, end, steps)``; NumPy's ``num`` (default 50) times the broadcast shape of
    ``start`` and ``stop``, which may be arrays."""
    key = "num" if numpy else "steps"

    def prep(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
        args, steps = _convert_arg(args, kwargs, 2, key, lambda v: as_size(v, f"{name}(): {key}"))
        if steps is _MISSING:
            steps = 50 if numpy else 0
        start, end = _positional(args, kwargs, ["start", "stop" if numpy else "end"], [0, 0])
        ends = [s for s in (shape_of(start), shape_of(end)) if s is not None]
        points = broadcast_shape(ends) or ()
        if isinstance(steps, int):
            guard.check_elements(max(steps, 0) * numel(points), "array" if numpy else "tensor")
        return args, kwargs

    return prep


def size_eye(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """``torch.eye(n, m=None)``."""
    args, n = _convert_arg(args, kwargs, 0, "n", lambda v: as_size(v, f"{name}(): n"))
    args, m = _convert_arg(
        args, kwargs, 1, "m", lambda v: v if v is None else as_size(v, f"{name}(): m")
    )
    columns = n if m is _MISSING or m is None else m
    if isinstance(n, int) and isinstance(columns, int):
        guard.check_elements(max(n, 0) * max(columns, 0))
    return args, kwargs


def size_randperm(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """``torch.randperm(n)``."""
    args, n = _convert_arg(args, kwargs, 0, "n", lambda v: as_size(v, f"{name}(): n"))
    if isinstance(n, int):
        guard.check_elements(n)
    return args, kwargs


def size_np_shape(guard: Guard, name: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """``np.ones(shape)``: an int, a list/tuple, or a 1-d integer array of dimensions."""
    args, shape = _convert_arg(
        args, kwargs, 0, "shape", lambda v: as_shape(v, f"{name}(): shape", arrays=True)
    )
    if shape is not _MISSING:
        guard.check_size(shape, "array")
    return args, kwargs


def rule_data(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    if args:
        guard.check_elements(data_elements(guard, args[0], "a tensor"))


def rule_cat(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    tensors = args[0] if args else kwargs.get("tensors", ())
    if not isinstance(tensors, list | tuple):
        return
    guard.check_seq_len(len(tensors))
    total = sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))
    guard.check_elements(total)


# -- torch -----------------------------------------------------------------------------------------


def _wrap(qualname: str, fn: Callable[..., Any], rule: Rule = rule_broadcast) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        check_kwargs(qualname, kwargs)
        rule(guard, args, kwargs)
        return fn(*args, **kwargs)

    return SafeFunction(qualname, impl)


def _sized(qualname: str, fn: Callable[..., Any], prep: Prep) -> SafeFunction:
    """A creator whose size arguments ``prep`` converts and checks before ``fn`` runs."""

    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        check_kwargs(qualname, kwargs)
        args, kwargs = prep(guard, qualname, args, kwargs)
        return fn(*args, **kwargs)

    return SafeFunction(qualname, impl)


def _manual_seed(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    check_kwargs("torch.manual_seed", kwargs)
    torch.manual_seed(*args, **kwargs)  # returns the global Generator: not handed out
    return None


# -- torch.Generator and torch's threads ---------------------------------------------------------

# Bytes a CPU Generator holds (its Mersenne Twister state, ``Generator().get_state().numel()``):
# what each one costs against max_total_bytes, so a loop cannot make them without bound.
GENERATOR_STATE_BYTES = 5056


def _new_generator(guard: Guard, args: Args, kwargs: Kwargs) -> torch.Generator:
    """``torch.Generator()`` / ``torch.Generator(device="cpu")``: a CPU generator of its own,
    counted against max_total_bytes for as long as it lives."""
    if len(args) + len(kwargs) > 1 or set(kwargs) - {"device"}:
        raise TypeError("torch.Generator() takes at most one argument, the device")
    device = args[0] if args else kwargs.get("device", "cpu")
    if not (isinstance(device, str) and len(device) <= 20) and not isinstance(device, torch.device):
        raise SandboxRefused("torch.Generator() takes a device such as 'cpu' here")
    if str(device).startswith("cuda"):
        raise RuntimeError("Cannot get CUDA generator without ATen_cuda library.")
    generator = torch.Generator(device)  # any other device: PyTorch's own error
    held: dict[int, torch.Tensor] = guard.extra("torch.generators", dict)
    state = generator.get_state()  # stands for the generator's memory while it lives
    held[id(generator)] = state
    weakref.finalize(generator, held.pop, id(generator), None)
    guard.track(state)
    return generator


def _generator_manual_seed(
    guard: Guard, generator: torch.Generator, args: Args, kwargs: Kwargs
) -> torch.Generator:
    """``g.manual_seed(seed)``: a Python int, as PyTorch takes it; returns the generator."""
    if kwargs:
        raise TypeError("Generator.manual_seed() takes no keyword arguments")
    if len(args) != 1:
        raise TypeError(f"Generator.manual_seed() takes exactly one argument ({len(args)} given)")
    seed = args[0]
    if isinstance(seed, np.integer):
        raise TypeError("an integer is required")
    if type(seed) is not int:
        raise RuntimeError(f"manual_seed expected a long, but got {type(seed).__name__}")
    if not -(2**63) <= seed < 2**64:
        raise ValueError("Overflow when unpacking long long")
    return generator.manual_seed(seed)


def _generator_initial_seed(
    guard: Guard, generator: torch.Generator, args: Args, kwargs: Kwargs
) -> int:
    if args or kwargs:
        raise TypeError("Generator.initial_seed() takes no arguments")
    return generator.initial_seed()


GENERATOR_METHODS: dict[str, MethodImpl] = {
    "manual_seed": _generator_manual_seed,
    "initial_seed": _generator_initial_seed,
}
GENERATOR_PROPS: dict[str, Callable[[Any], Any]] = {"device": lambda g: g.device}


def _get_num_threads(guard: Guard, args: Args, kwargs: Kwargs) -> int:
    if args or kwargs:
        raise TypeError("get_num_threads() takes no arguments")
    return torch.get_num_threads()


def _set_num_threads(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    """``torch.set_num_threads(n)``: checked as PyTorch checks it, then left as it is. The worker
    keeps its own thread count (one), so a program cannot take more of the server's cores; a
    notice says so when ``n`` differs."""
    if kwargs or len(args) != 1:
        raise TypeError("set_num_threads() takes exactly one argument (int)")
    n = args[0]
    if type(n) is not int:
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    threads = torch.get_num_threads()
    if n != threads:
        guard.notice(
            f"torch.set_num_threads({n}) left the number of threads at {threads}: this "
            "sandbox's worker keeps its own"
        )


def _from_numpy(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    if kwargs or len(args) != 1 or not isinstance(args[0], np.ndarray):
        raise TypeError("torch.from_numpy() takes exactly one NumPy array")
    return torch.from_numpy(args[0])


_ELEMENTWISE = _names(
    """exp log sin cos tan sqrt abs sum mean max min argmax argmin relu sigmoid tanh
softmax log_softmax where clamp allclose equal add sub mul div pow neg square maximum minimum
round floor ceil sign std var prod reshape flatten squeeze unsqueeze transpose t permute numel
is_tensor isclose log2 log10 exp2 zeros_like ones_like rand_like randn_like full_like
is_grad_enabled all any cumsum norm eq ne gt lt ge le clone sort topk"""
)

_TORCH_DTYPES = _names(
    """float32 float64 float16 bfloat16 int64 int32 int16 int8 uint8 bool float double
half long int short"""
)


def _torch_members() -> dict[str, Any]:
    members: dict[str, Any] = {
        name: _wrap(f"torch.{name}", getattr(torch, name)) for name in _ELEMENTWISE
    }
    members.update({name: getattr(torch, name) for name in _TORCH_DTYPES})
    for name in ("zeros", "ones", "rand", "randn"):
        members[name] = _sized(f"torch.{name}", getattr(torch, name), size_creator)
    # torch.empty would show whatever the memory held before; zeros teach the same shapes.
    members["empty"] = _sized("torch.empty", torch.zeros, size_creator)
    members["empty_like"] = _wrap("torch.empty_like", torch.zeros_like)
    members["full"] = _sized("torch.full", torch.full, size_full)
    members["randint"] = _sized("torch.randint", torch.randint, size_randint)
    members["arange"] = _sized("torch.arange", torch.arange, size_arange(numpy=False))
    members["linspace"] = _sized("torch.linspace", torch.linspace, size_linspace(numpy=False))
    members["eye"] = _sized("torch.eye", torch.eye, size_eye)
    members["randperm"] = _sized("torch.randperm", torch.randperm, size_randperm)
    members["tensor"] = _wrap("torch.tensor", torch.tensor, rule_data)
    members["as_tensor"] = _wrap("torch.as_tensor", torch.as_tensor, rule_data)
    for name in ("matmul", "mm", "dot"):
        members[name] = _wrap(f"torch.{name}", getattr(torch, name), rule_matmul)
    members["cat"] = _wrap("torch.cat", torch.cat, rule_cat)
    members["stack"] = _wrap("torch.stack", torch.stack, rule_cat)
    members["from_numpy"] = SafeFunction("torch.from_numpy", _from_numpy)
    members["manual_seed"] = SafeFunction("torch.manual_seed", _manual_seed)
    members["Generator"] = SafeFunction("torch.Generator", _new_generator, torch.Generator)
    members["get_num_threads"] = SafeFunction("torch.get_num_threads", _get_num_threads)
    members["set_num_threads"] = SafeFunction("torch.set_num_threads", _set_num_threads)
    members["no_grad"] = _wrap("torch.no_grad", torch.no_grad, rule_none)
    members["enable_grad"] = _wrap("torch.enable_grad", torch.enable_grad, rule_none)
    members["pi"] = float(np.pi)
    members["e"] = float(np.e)
    return members


# -- torch.nn, torch.nn.functional, torch.optim ----------------------------------------------------

_F_NAMES = _names(
    """relu sigmoid tanh softmax log_softmax cross_entropy mse_loss nll_loss l1_loss
leaky_relu binary_cross_entropy binary_cross_entropy_with_logits max_pool2d avg_pool2d dropout
one_hot softplus gelu elu"""
)


def _cross_entropy(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    """F.cross_entropy, with the notice for probabilities given as scores (hints.py)."""
    check_kwargs("F.cross_entropy", kwargs)
    rule_broadcast(guard, args, kwargs)
    notice_probabilities(guard, "F.cross_entropy", args, kwargs)
    return torch_f.cross_entropy(*args, **kwargs)


def _linear(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    check_kwargs("nn.Linear", kwargs)
    args, n_in = _convert_arg(
        args, kwargs, 0, "in_features", lambda v: as_size(v, "nn.Linear(): in_features")
    )
    args, n_out = _convert_arg(
        args, kwargs, 1, "out_features", lambda v: as_size(v, "nn.Linear(): out_features")
    )
    if isinstance(n_in, int) and isinstance(n_out, int):
        guard.check_elements(max(n_in, 0) * max(n_out, 0), "nn.Linear weight")
    return nn.Linear(*args, **kwargs)


def _sequential(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    """``nn.Sequential(layer, ...)``, or ``nn.Sequential(OrderedDict(name=layer, ...))``, which
    names the layers (PyTorch's own ``add_module`` checks the names)."""
    named = len(args) == 1 and type(args[0]) is collections.OrderedDict
    layers = tuple(args[0].values()) if named else args
    if kwargs or not all(
        type(m) in MODULE_CLASSES or getattr(type(m), "_sandbox_class", None) is not None
        for m in layers
    ):
        raise SandboxRefused(
            "nn.Sequential() takes layers such as nn.Linear(2, 3), nn.ReLU(), or an "
            "OrderedDict of them"
        )
    guard.check_seq_len(len(layers))
    return nn.Sequential(*args)


def _plain_number(value: Any) -> bool:
    if isinstance(value, tuple):
        return len(value) <= 4 and all(isinstance(v, int) for v in value)
    return value is None or isinstance(value, int | float | str | bool)


def _kernel_elements(value: Any) -> int:
    if isinstance(value, tuple):
        return math.prod(max(int(v), 1) for v in value)
    return max(int(value), 1) ** 2 if isinstance(value, int) else 1


def _module_class(name: str, cls: type[nn.Module]) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        check_kwargs(f"nn.{name}", kwargs)
        if any(
            not _plain_number(a) for a in [*args, *kwargs.values()] if a is not kwargs.get("weight")
        ):
            raise SandboxRefused(f"nn.{name}() takes numbers only")
        if cls is nn.Conv2d:
            sizes = _positional(
                args, kwargs, ["in_channels", "out_channels", "kernel_size"], [1, 1, 1]
            )
            n_in, n_out = (
                as_size(v, f"nn.Conv2d(): {k}")
                for v, k in zip(sizes[:2], ("in_channels", "out_channels"), strict=True)
            )
            guard.check_elements(
                max(n_in, 0) * max(n_out, 0) * _kernel_elements(sizes[2]), "nn.Conv2d weight"
            )
        elif cls in (nn.BatchNorm1d, nn.BatchNorm2d) and args:
            guard.check_elements(
                max(as_size(args[0], f"nn.{name}(): num_features"), 0), f"nn.{name}"
            )
        return cls(*args, **kwargs)

    return SafeFunction(f"nn.{name}", impl, cls)  # a type: isinstance(layer, nn.ReLU)


MODULE_CLASSES: set[type] = {
    nn.Linear,
    nn.Sequential,
    nn.Conv2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BCEWithLogitsLoss,
    nn.NLLLoss,
    nn.LogSoftmax,
    nn.MSELoss,
    nn.CrossEntropyLoss,
    nn.L1Loss,
    nn.BCELoss,
    nn.ReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softmax,
    nn.LeakyReLU,
}

_optim_ready = False


def _ensure_optim_ready(guard: Guard) -> None:
    """The first optimizer imports torch._dynamo (~2 s): not the learner's time."""
    global _optim_ready
    if not _optim_ready:
        started = time.monotonic()
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        _optim_ready = True
        guard.extend_deadline(time.monotonic() - started)


_MAX_OPTIMIZER_TENSORS = 1_000


def _hyperparameter(value: Any) -> bool:
    """A value an optimizer's option may take: a number, a flag, None, or a tuple of numbers
    (Adam's ``betas``)."""
    if isinstance(value, tuple):
        return len(value) <= 4 and all(isinstance(v, int | float) for v in value)
    return value is None or isinstance(value, bool | int | float)


def _optimizer_params(guard: Guard, name: str, given: Any) -> list[Any]:
    """What an optimizer takes: tensors (``model.parameters()``), or parameter groups, dicts of
    ``params`` and that group's own options (``[{"params": body, "lr": 0.01}, ...]``)."""
    items = guard.bounded(given, _MAX_OPTIMIZER_TENSORS)
    if all(isinstance(p, torch.Tensor) for p in items):
        return items
    if not items or not all(type(g) is dict for g in items):
        raise TypeError(
            f"torch.optim.{name}() takes a list of tensors or model.parameters(), or a list of "
            "parameter groups (dicts with 'params')"
        )
    groups: list[dict[str, Any]] = []
    total = 0
    for group in items:
        for key, value in group.items():
            if key != "params" and (key not in SAFE_KWARGS or not _hyperparameter(value)):
                raise SandboxRefused(
                    f"torch.optim.{name}(): a parameter group takes 'params' and options such as "
                    f"'lr' set to numbers, not {format_value(key, True, 40)[0]}"
                )
        if "params" not in group:
            raise KeyError("params")  # what PyTorch's add_param_group raises
        tensors = group["params"]
        tensors = (
            [tensors]
            if isinstance(tensors, torch.Tensor)
            else guard.bounded(tensors, _MAX_OPTIMIZER_TENSORS)
        )
        if not all(isinstance(p, torch.Tensor) for p in tensors):
            raise TypeError(f"torch.optim.{name}(): a group's 'params' must be tensors")
        total += len(tensors)
        if total > _MAX_OPTIMIZER_TENSORS:
            raise SandboxRefused(
                f"torch.optim.{name}() takes at most {_MAX_OPTIMIZER_TENSORS} tensors here"
            )
        groups.append({**group, "params": tensors})
    return groups


def _optimizer(name: str, cls: type[torch.optim.Optimizer]) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        check_kwargs(f"torch.optim.{name}", kwargs)
        if not args:
            raise TypeError(f"torch.optim.{name}() needs the parameters to optimise")
        params = _optimizer_params(guard, name, args[0])
        _ensure_optim_ready(guard)
        return cls(params, *args[1:], **kwargs)

    return SafeFunction(f"torch.optim.{name}", impl)


OPTIMIZER_CLASSES: tuple[type, ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
)


def call_module(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    """``model(x)``: check the output size first, run Sequential layer by layer."""
    if kwargs:
        raise SandboxRefused("layers and losses take positional arguments only")
    if isinstance(module, nn.Sequential):
        if len(args) != 1:
            raise TypeError("nn.Sequential takes one input")
        value = args[0]
        for layer in module:
            guard.check_deadline()
            value = guard.check_result(call_module(guard, layer, (value,), {}))
        # Its own forward hooks (register_forward_hook), after its forward, as Module.__call__
        for hook in list(module._forward_hooks.values()):
            result = hook(module, (args[0],), value)
            if result is not None:
                value = guard.check_result(result)
        return value
    if isinstance(module, nn.Conv2d) and args and isinstance(args[0], torch.Tensor):
        guard.check_elements(_conv_elements(args[0].shape, module.out_channels, module.padding))
    elif isinstance(module, nn.Linear) and args and isinstance(args[0], torch.Tensor):
        x = args[0]
        if x.dim() >= 1 and x.shape[-1] == module.in_features:
            guard.check_elements(x.numel() // max(module.in_features, 1) * module.out_features)
    else:
        rule_broadcast(guard, args, kwargs)
    if isinstance(module, nn.CrossEntropyLoss):
        notice_probabilities(guard, "nn.CrossEntropyLoss", args)
    return module(*args)


def _conv_elements(shape: Any, out_channels: int, padding: Any) -> int:
    """At most how many elements a 2-d convolution of an input of ``shape`` makes."""
    dims = list(shape)
    if len(dims) < 3:
        return 0
    pad = padding if isinstance(padding, tuple) else (0, 0)
    height, width = dims[-2] + 2 * int(pad[0]), dims[-1] + 2 * int(pad[-1])
    batch = dims[0] if len(dims) == 4 else 1
    return batch * out_channels * max(height, 1) * max(width, 1)


def rule_conv(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    """``F.conv2d(x, weight, bias, stride, padding)``: at most the padded input per channel out."""
    x, weight = (list(args) + [kwargs.get("input"), kwargs.get("weight")])[:2]
    if isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor) and weight.dim() == 4:
        padding = args[4] if len(args) > 4 else kwargs.get("padding", 0)
        pad = (padding, padding) if isinstance(padding, int) else (0, 0)
        guard.check_elements(_conv_elements(x.shape, weight.shape[0], pad))


# -- numpy -----------------------------------------------------------------------------------------


def _np_array(name: str, fn: Callable[..., Any]) -> SafeFunction:
    def rule(guard: Guard, args: Args, kwargs: Kwargs) -> None:
        if args:
            guard.check_elements(data_elements(guard, args[0], "an array"), "array")

    return _wrap(f"np.{name}", fn, rule)


def _numpy_members() -> dict[str, Any]:
    members: dict[str, Any] = dict(_NP_DTYPES)
    members["bool"] = np.bool_
    for name in _names(
        """add subtract multiply divide exp log sqrt abs sum mean maximum minimum allclose
            array_equal may_share_memory dot std var max min argmax argmin square power round
            clip tanh sin cos where isclose log2 log10 exp2 floor ceil sign"""
    ):
        members[name] = _wrap(f"np.{name}", getattr(np, name), rule_broadcast_lists)
    members["matmul"] = _wrap("np.matmul", np.matmul, rule_matmul)
    members["dot"] = _wrap("np.dot", np.dot, rule_matmul)
    members["concatenate"] = _wrap("np.concatenate", np.concatenate, rule_cat)
    members["stack"] = _wrap("np.stack", np.stack, rule_cat)
    members["zeros_like"] = _wrap("np.zeros_like", np.zeros_like)
    members["ones_like"] = _wrap("np.ones_like", np.ones_like)
    members["ndarray"] = BaseClass("numpy.ndarray", np.ndarray)
    members["array"] = _np_array("array", np.array)
    members["asarray"] = _np_array("asarray", np.asarray)
    members["ones"] = _sized("np.ones", np.ones, size_np_shape)
    members["zeros"] = _sized("np.zeros", np.zeros, size_np_shape)
    members["arange"] = _sized("np.arange", np.arange, size_arange(numpy=True))
    members["linspace"] = _sized("np.linspace", np.linspace, size_linspace(numpy=True))
    members["pi"] = float(np.pi)
    members["e"] = float(np.e)
    return members


# -- tensor, ndarray and other attributes ----------------------------------------------------------


def _method(qualname: str, name: str, rule: Rule = rule_broadcast) -> MethodImpl:
    def impl(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
        check_kwargs(qualname, kwargs)
        rule(guard, (obj, *args), kwargs)
        return getattr(obj, name)(*args, **kwargs)

    return impl


def _device_arg(value: Any) -> Any:
    """A device given to ``.to()``: the CPU, or what PyTorch says about a GPU on this machine."""
    if isinstance(value, str | torch.device):
        check_kwargs(".to", {"device": value})
        return torch.device("cpu")
    return value


def _no_cuda(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
    """``x.cuda()`` / ``model.cuda()``: what PyTorch's CPU build answers."""
    raise AssertionError("Torch not compiled with CUDA enabled")


def _tensor_to(guard: Guard, t: torch.Tensor, args: Args, kwargs: Kwargs) -> Any:
    check_kwargs("Tensor.to", kwargs)
    args = tuple(_device_arg(a) for a in args)
    kwargs.pop("non_blocking", None)
    if set(kwargs) - {"dtype", "copy", "device"} or not all(
        isinstance(a, torch.dtype | torch.device) for a in args
    ):
        raise SandboxRefused("Tensor.to() takes a dtype or a device here, e.g. x.to(torch.float64)")
    return t.to(*args, **kwargs)


def _tensor_numpy(guard: Guard, t: torch.Tensor, args: Args, kwargs: Kwargs) -> Any:
    if args or kwargs:
        raise TypeError("Tensor.numpy() takes no arguments here")
    return t.numpy()


def _tolist(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
    if args or kwargs:
        raise TypeError("tolist() takes no arguments")
    count = obj.numel() if isinstance(obj, torch.Tensor) else obj.size
    guard.check_seq_len(count)
    return obj.tolist()


def _expand(guard: Guard, t: torch.Tensor, args: Args, kwargs: Kwargs) -> Any:
    check_kwargs("Tensor.expand", kwargs)
    sizes, _ = varargs_shape(args, kwargs, "Tensor.expand(): size")
    sizes = sizes if isinstance(sizes, tuple) else (sizes,)
    if shape_elements(sizes) is not None:
        shape = list(t.shape)
        full = [1] * (len(sizes) - len(shape)) + shape
        guard.check_size(
            tuple(full[i] if s == -1 else s for i, s in enumerate(sizes))
            if len(full) == len(sizes)
            else sizes
        )
    return t.expand(*sizes)


def _repeat(guard: Guard, t: torch.Tensor, args: Args, kwargs: Kwargs) -> Any:
    check_kwargs("Tensor.repeat", kwargs)
    sizes, _ = varargs_shape(args, kwargs, "Tensor.repeat(): repeats")
    sizes = sizes if isinstance(sizes, tuple) else (sizes,)
    count = shape_elements(sizes)
    if count is not None:
        guard.check_elements(t.numel() * count)
    return t.repeat(*sizes)


def _backward(guard: Guard, t: torch.Tensor, args: Args, kwargs: Kwargs) -> Any:
    """``loss.backward()``, then count the grads it made (wherever their tensors are kept)."""
    check_kwargs("Tensor.backward", kwargs)
    rule_broadcast(guard, (t, *args), kwargs)
    result = t.backward(*args, **kwargs)
    guard.track_grads(t, kwargs.get("inputs"))
    return result


def _retain_grad(guard: Guard, t: torch.Tensor, args: Args, kwargs: Kwargs) -> Any:
    check_kwargs("Tensor.retain_grad", kwargs)
    t.retain_grad(*args, **kwargs)
    if not t.is_leaf:
        guard.retain_grad(t)
    return None


_TENSOR_METHODS_PLAIN = _names(
    """view reshape item t sum mean pow exp log abs sqrt max min argmax argmin
zero_ add_ mul_ sub_ div_ pow_ fill_ clamp_ clamp clone detach detach_ requires_grad_
contiguous size dim numel unsqueeze squeeze flatten permute transpose float double long int half
bool storage_offset stride is_contiguous softmax log_softmax relu sigmoid tanh sin cos
neg square std var prod norm round floor ceil sign all any add sub mul div eq ne lt gt le ge
maximum minimum allclose equal expand_as view_as reshape_as masked_fill masked_fill_ copy_ abs_
exp_ neg_ sqrt_ relu_ is_floating_point element_size nelement cumsum type_as cpu round_ sort topk
argsort amax amin"""
)

TENSOR_PROPS: dict[str, Callable[[Any], Any]] = {
    "shape": lambda t: t.shape,
    "dtype": lambda t: t.dtype,
    "grad": lambda t: t.grad,
    "grad_fn": lambda t: t.grad_fn,
    "is_leaf": lambda t: t.is_leaf,
    "requires_grad": lambda t: t.requires_grad,
    "data": lambda t: t.data,
    "T": lambda t: t.T,
    "mT": lambda t: t.mT,
    "ndim": lambda t: t.ndim,
    "device": lambda t: t.device,
    "retains_grad": lambda t: t.retains_grad,
}

TENSOR_METHODS: dict[str, MethodImpl] = {
    name: _method(f"Tensor.{name}", name) for name in _TENSOR_METHODS_PLAIN
}
TENSOR_METHODS.update(
    {
        "nonzero": _method("Tensor.nonzero", "nonzero", rule_nonzero),
        "matmul": _method("Tensor.matmul", "matmul", rule_matmul),
        "mm": _method("Tensor.mm", "mm", rule_matmul),
        "dot": _method("Tensor.dot", "dot", rule_matmul),
        "to": _tensor_to,
        "numpy": _tensor_numpy,
        "tolist": _tolist,
        "expand": _expand,
        "repeat": _repeat,
        "backward": _backward,
        "retain_grad": _retain_grad,
        "cuda": _no_cuda,
    }
)

NDARRAY_PROPS: dict[str, Callable[[Any], Any]] = {
    "shape": lambda a: a.shape,
    "dtype": lambda a: a.dtype,
    "ndim": lambda a: a.ndim,
    "size": lambda a: a.size,
    "T": lambda a: a.T,
}


def _astype(guard: Guard, a: np.ndarray, args: Args, kwargs: Kwargs) -> Any:
    if kwargs or len(args) != 1:
        raise TypeError("astype() takes one dtype here")
    return a.astype(normalise_dtype(args[0]))


NDARRAY_METHODS: dict[str, MethodImpl] = {
    name: _method(f"ndarray.{name}", name, rule_broadcast_lists)
    for name in _names(
        """reshape sum mean max min copy fill flatten item argmax argmin transpose std var prod
        round clip squeeze cumsum any all dot ravel"""
    )
}
NDARRAY_METHODS.update({"tolist": _tolist, "astype": _astype})


def _node_name(guard: Guard, node: Any, args: Args, kwargs: Kwargs) -> Any:
    return node.name()


NODE_PROPS: dict[str, Callable[[Any], Any]] = {
    "next_functions": lambda n: n.next_functions,
    "variable": lambda n: n.variable,
}


def _parameters(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    if args or kwargs:
        raise TypeError("parameters() takes no arguments here")
    return iter(list(module.parameters()))  # a one-pass iterator, like PyTorch's generator


def _module_method(name: str) -> MethodImpl:
    def impl(guard: Guard, module: Any, args: Args, kwargs: Kwargs) -> Any:
        check_kwargs(name, kwargs)
        if any(not isinstance(a, bool) for a in args):
            raise TypeError(f"{name}() takes no arguments here")
        result = getattr(module, name)(*args, **kwargs)
        return None if isinstance(result, nn.Module) else result

    return impl


MODULE_PROPS: dict[str, Callable[[Any], Any]] = {
    "weight": lambda m: m.weight,
    "bias": lambda m: m.bias,
    "in_features": lambda m: m.in_features,
    "out_features": lambda m: m.out_features,
    "training": lambda m: m.training,
}


def _named_parameters(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    if args or kwargs:
        raise TypeError("named_parameters() takes no arguments here")
    return iter(list(module.named_parameters()))


def _children(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    if args or kwargs:
        raise TypeError("children() takes no arguments here")
    return list(module.children())


def _state_dict(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
    if args or kwargs:
        raise TypeError("state_dict() takes no arguments here")
    return obj.state_dict()


def _load_state_dict(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
    """``model.load_state_dict(sd)`` / ``optimizer.load_state_dict(sd)``: a dict, checked."""
    check_kwargs("load_state_dict", kwargs)
    if len(args) != 1 or not isinstance(args[0], dict):
        raise TypeError(
            f"Expected state_dict to be dict-like, got {type(args[0] if args else None)}."
        )
    guard.check_container(args[0])
    result = obj.load_state_dict(args[0], **kwargs)
    if isinstance(obj, torch.optim.Optimizer):
        guard.track_optimizer(obj)
    return result


def _module_to(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    """``model.to(device)`` (the CPU) or ``model.to(dtype)``: the module itself, as PyTorch."""
    check_kwargs("Module.to", kwargs)
    args = tuple(_device_arg(a) for a in args)
    if not all(isinstance(a, torch.dtype | torch.device) for a in args):
        raise SandboxRefused("Module.to() takes a device or a dtype here")
    return module.to(*args, **kwargs)


def _modules(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    if args or kwargs:
        raise TypeError("modules() takes no arguments here")
    return iter(list(module.modules()))  # the module itself, then every submodule, once each


def _module_requires_grad(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    """``model.requires_grad_(False)``: freeze (or unfreeze) every parameter; the module."""
    check_kwargs("Module.requires_grad_", kwargs)
    values = [*args, *kwargs.values()]
    if len(values) > 1 or not all(isinstance(v, bool) for v in values):
        raise TypeError("requires_grad_() takes one argument, True or False")
    return module.requires_grad_(*args, **kwargs)


def _register_forward_hook(guard: Guard, module: nn.Module, args: Args, kwargs: Kwargs) -> Any:
    """``layer.register_forward_hook(hook)``: PyTorch calls ``hook(module, inputs, output)`` after
    each forward pass of the layer, and here that call goes through the interpreter
    (``guard.call``), under the same limits as any call the program makes. What the hook returns
    replaces the output, as in PyTorch. A library function (``print``) is refused as a hook: the
    hook is the program's own code."""
    if kwargs:
        raise SandboxRefused("register_forward_hook() takes the hook only here")
    if len(args) != 1:
        raise TypeError(
            f"register_forward_hook() takes 1 positional argument but {len(args)} were given"
        )
    hook = args[0]
    if isinstance(hook, SafeFunction | BoundMethod | BaseClass | Namespace):
        raise SandboxRefused(
            "register_forward_hook() takes a function the program defines (def or lambda), "
            f"not {type_phrase(hook)}"
        )

    def run(layer: nn.Module, inputs: Any, output: Any) -> Any:
        guard.check_deadline()
        return guard.call(hook, (layer, inputs, output), {})

    return module.register_forward_hook(run)


def _remove_hook(guard: Guard, handle: Any, args: Args, kwargs: Kwargs) -> None:
    if args or kwargs:
        raise TypeError("remove() takes no arguments")
    handle.remove()


MODULE_METHODS: dict[str, MethodImpl] = {
    "parameters": _parameters,
    "named_parameters": _named_parameters,
    "children": _children,
    "modules": _modules,
    "requires_grad_": _module_requires_grad,
    "register_forward_hook": _register_forward_hook,
    "state_dict": _state_dict,
    "load_state_dict": _load_state_dict,
    "to": _module_to,
    "cpu": lambda guard, module, args, kwargs: module.cpu(),
    "cuda": _no_cuda,
    "zero_grad": _module_method("zero_grad"),
    "train": _module_method("train"),
    "eval": _module_method("eval"),
}
# What a learner's nn.Module subclass has of nn.Module's own methods.
LEARNER_MODULE_METHODS = MODULE_METHODS
_step = _module_method("step")


def _optimizer_step(guard: Guard, optimizer: Any, args: Args, kwargs: Kwargs) -> Any:
    """``optimizer.step()``, then count the state it made (Adam's averages, SGD's momentum)."""
    result = _step(guard, optimizer, args, kwargs)
    guard.track_optimizer(optimizer)
    return result


OPTIMIZER_METHODS: dict[str, MethodImpl] = {
    "step": _optimizer_step,
    "zero_grad": _module_method("zero_grad"),
    "state_dict": _state_dict,
    "load_state_dict": _load_state_dict,
}
OPTIMIZER_PROPS: dict[str, Callable[[Any], Any]] = {
    "param_groups": lambda o: o.param_groups,
    "defaults": lambda o: dict(o.defaults),
}


def _list_grow(name: str) -> MethodImpl:
    def impl(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
        if kwargs:
            raise TypeError(f"list.{name}() takes no keyword arguments")
        if name == "extend":
            args = (guard.bounded(args[0]),) if args else args
            added = args[0] if args else []
        else:
            added = args[-1:]
        guard.check_seq_len(len(obj) + len(added))
        guard.check_added(obj, added)
        return getattr(obj, name)(*args)

    return impl


def _searching(name: str) -> MethodImpl:
    """list.index/count compare every item: bound the sizes first."""

    def impl(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
        if kwargs:
            raise TypeError(f"{name}() takes no keyword arguments")
        guard.check_container(obj)
        for arg in args:
            guard.check_container(arg)
        return getattr(obj, name)(*args)

    return impl


def _plain(name: str) -> MethodImpl:
    def impl(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
        if kwargs:
            raise TypeError(f"{name}() takes no keyword arguments here")
        return getattr(obj, name)(*args)

    return impl


def _str_join(guard: Guard, sep: str, args: Args, kwargs: Kwargs) -> Any:
    if kwargs or len(args) != 1:
        raise TypeError("join() takes one list of strings")
    parts = guard.bounded(args[0])
    guard.check_str_len(sum(len(p) for p in parts if isinstance(p, str)) + len(sep) * len(parts))
    return sep.join(parts)


LIST_METHODS: dict[str, MethodImpl] = {
    "append": _list_grow("append"),
    "extend": _list_grow("extend"),
    "insert": _list_grow("insert"),
    **{name: _plain(name) for name in ("pop", "copy", "reverse", "clear", "remove")},
    **{name: _searching(name) for name in ("index", "count")},
    "sort": lambda guard, obj, args, kwargs: _list_sort(guard, obj, args, kwargs),
}
TUPLE_METHODS: dict[str, MethodImpl] = {name: _searching(name) for name in ("index", "count")}


def _dict_update(guard: Guard, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> Any:
    given = (args[0].items() if isinstance(args[0], dict) else args[0]) if args else []
    pairs = dict(guard.bounded(given))
    pairs.update(kwargs)
    guard.check_seq_len(len(obj) + len(pairs))
    guard.check_added(obj, [*pairs, *pairs.values()])
    obj.update(pairs)


def _dict_setdefault(guard: Guard, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> Any:
    if kwargs or not 1 <= len(args) <= 2:
        raise TypeError("setdefault expected 1 or 2 arguments")
    guard.check_seq_len(len(obj) + 1)
    guard.check_added(obj, list(args))
    return obj.setdefault(*args)


DICT_METHODS: dict[str, MethodImpl] = {
    **{name: _plain(name) for name in ("keys", "values", "items", "get", "pop", "copy", "clear")},
    "update": _dict_update,
    "setdefault": _dict_setdefault,
}


def _list_sort(guard: Guard, items: list[Any], args: Args, kwargs: Kwargs) -> None:
    """``list.sort(key=..., reverse=...)``: a learner key is called by the interpreter first, so
    no C sort calls back into learner code."""
    key = kwargs.pop("key", None)
    reverse = bool(kwargs.pop("reverse", False))
    if args or kwargs:
        raise TypeError("sort() takes key= and reverse= only")
    guard.check_container(items)
    if key is None:
        items.sort(reverse=reverse)
        return
    keys = [guard.call(key, (item,), {}) for item in items]
    order = sorted(range(len(items)), key=keys.__getitem__, reverse=reverse)
    items[:] = [items[i] for i in order]


def _str_replace(guard: Guard, text: str, args: Args, kwargs: Kwargs) -> Any:
    """``str.replace``: the result's length bounded before it is built."""
    if kwargs or not 2 <= len(args) <= 3 or not all(isinstance(a, str) for a in args[:2]):
        raise TypeError("replace() takes two strings (and a count)")
    old, new = args[0], args[1]
    count = text.count(old) if old else len(text) + 1
    if len(args) == 3 and isinstance(args[2], int) and args[2] >= 0:
        count = min(count, args[2])
    guard.check_str_len(len(text) + count * max(len(new) - len(old), 0))
    return text.replace(*args)


def _str_pad(name: str) -> MethodImpl:
    def impl(guard: Guard, text: str, args: Args, kwargs: Kwargs) -> Any:
        if kwargs or not args or not isinstance(args[0], int):
            raise TypeError(f"{name}() takes a width")
        guard.check_str_len(args[0])
        return getattr(text, name)(*args)

    return impl


STR_METHODS: dict[str, MethodImpl] = {
    **{
        name: _plain(name)
        for name in _names(
            """upper lower strip lstrip rstrip split rsplit splitlines startswith endswith title
            capitalize find rfind index count isdigit isalpha isalnum isspace isupper islower"""
        )
    },
    **{name: _str_pad(name) for name in ("zfill", "ljust", "rjust", "center")},
    "replace": _str_replace,
    "join": _str_join,
}


def _attribute_tables(obj: Any) -> tuple[dict[str, Callable[[Any], Any]], dict[str, MethodImpl]]:
    """(properties, methods) the program may use on ``obj``."""
    if isinstance(obj, torch.Tensor):
        return TENSOR_PROPS, TENSOR_METHODS
    if isinstance(obj, np.ndarray):
        return NDARRAY_PROPS, NDARRAY_METHODS
    if isinstance(obj, torch.autograd.graph.Node):
        props = (
            NODE_PROPS
            if hasattr(obj, "variable")
            else {"next_functions": NODE_PROPS["next_functions"]}
        )
        return props, {"name": _node_name}
    if type(obj) in MODULE_CLASSES:
        props = {k: v for k, v in MODULE_PROPS.items() if hasattr(obj, k)}
        return props, MODULE_METHODS
    if isinstance(obj, OPTIMIZER_CLASSES):
        return OPTIMIZER_PROPS, OPTIMIZER_METHODS
    if isinstance(obj, torch.Size):
        return {}, {"numel": _plain("numel"), **TUPLE_METHODS}
    if type(obj).__module__ == "torch.return_types":
        return {"values": lambda r: r.values, "indices": lambda r: r.indices}, {}
    if isinstance(obj, np.generic):
        return {"dtype": lambda a: a.dtype, "shape": lambda a: a.shape}, NDARRAY_METHODS
    if type(obj) is list:
        return {}, LIST_METHODS
    if type(obj) is tuple:
        return {}, TUPLE_METHODS
    if type(obj) is dict or type(obj) is collections.OrderedDict:
        return {}, DICT_METHODS
    if type(obj) is set:
        return {}, SET_METHODS
    if type(obj) is str:
        return {}, STR_METHODS
    if isinstance(obj, torch.dtype):
        return {"is_floating_point": lambda d: d.is_floating_point}, {}
    if isinstance(obj, torch.device):
        return {"type": lambda d: d.type, "index": lambda d: d.index}, {}
    if isinstance(obj, torch.Generator):
        return GENERATOR_PROPS, GENERATOR_METHODS
    for kind, props, methods in TYPE_TABLES:
        if isinstance(obj, kind):
            return props, methods
    return {}, {}


# The sandbox's own value types (app.sandbox.objects), by class name, as a message names them.
_WRAPPER_PHRASES = {
    "LearnerFunction": "a function",
    "LearnerMethod": "a method",
    "LearnerClass": "a class",
    "TypeView": "a type",
    "StaticMethod": "a staticmethod",
    "ClassMethod": "a classmethod",
    "Property": "a property",
    "SuperProxy": "a super() object",
    "BaseInit": "a base class's __init__",
    "BoundMethod": "a method",
}

Props = dict[str, Callable[[Any], Any]]
# Attribute tables of the objects the libraries in ``app.sandbox.lib_*`` hand out (a DataLoader,
# a StandardScaler, a figure, a file): checked in order, by isinstance, after the ones above.
TYPE_TABLES: list[tuple[type, Props, dict[str, MethodImpl]]] = []


def register_type(kind: type, props: Props, methods: dict[str, MethodImpl]) -> None:
    """Let programs use ``props`` and ``methods`` on instances of ``kind`` (and no others)."""
    TYPE_TABLES.append((kind, props, methods))


# What register_forward_hook hands back: handle.remove() takes the hook off its layer.
register_type(torch.utils.hooks.RemovableHandle, {}, {"remove": _remove_hook})


def type_phrase(obj: Any) -> str:
    """A short phrase naming what ``obj`` is, for an error message: "a tensor", a module's name."""
    if isinstance(obj, Namespace):
        return obj.name
    if isinstance(obj, SafeFunction):
        return obj.name
    if isinstance(obj, BaseClass):
        return f"the class {obj.name}"
    phrase = _WRAPPER_PHRASES.get(type(obj).__name__)
    if phrase is not None:
        return phrase
    if isinstance(obj, torch.Tensor):
        return "a tensor"
    if isinstance(obj, np.ndarray):
        return "a NumPy array"
    return f"a value of type {type(obj).__name__}"


def get_attribute(obj: Any, name: str) -> Any:
    """``obj.name`` if the whitelist has it for ``obj``'s type, else AttributeError."""
    if isinstance(obj, Namespace):
        if name in obj.members:
            return obj.members[name]
        raise AttributeError(f"{obj.name}.{name} is not available in this sandbox")
    props, methods = _attribute_tables(obj)
    if name in props:
        return props[name](obj)
    if name in methods:
        return BoundMethod(obj, name, methods[name])
    # Only names some whitelisted type has get this far (the static check refuses the rest), so
    # this is a learner's slip such as w.grad.zero_() before any backward: a runtime error.
    raise AttributeError(
        f"'{type(obj).__name__}' object has no attribute '{name}' (in this sandbox)"
    )


WRITABLE_TENSOR_ATTRIBUTES = frozenset({"grad", "requires_grad"})


def set_attribute(obj: Any, name: str, value: Any) -> None:
    """``obj.name = value``: only ``x.grad`` and ``x.requires_grad`` (or writing back the same
    object after an in-place ``model.weight -= ...``)."""
    if isinstance(obj, torch.Tensor) and name in WRITABLE_TENSOR_ATTRIBUTES:
        if name == "grad" and not (value is None or isinstance(value, torch.Tensor)):
            raise TypeError("x.grad can only be set to None or a tensor")
        if name == "requires_grad" and not isinstance(value, bool):
            raise TypeError("x.requires_grad can only be set to True or False")
        setattr(obj, name, value)
        return
    if not isinstance(obj, Namespace):
        props, _ = _attribute_tables(obj)
        if name in props and props[name](obj) is value:
            return
    raise SandboxRefused(f"setting .{name} on {type_phrase(obj)} is not allowed")


def _device(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    """``torch.device("cpu")``; ``torch.device("cuda")`` is made as in PyTorch, and fails only
    where it is used (``.to(device)``: "Torch not compiled with CUDA enabled")."""
    if kwargs or not 1 <= len(args) <= 2 or not isinstance(args[0], str):
        raise TypeError("torch.device() takes a device name such as 'cpu' here")
    if len(args[0]) > 20:
        raise RuntimeError(f"Invalid device string: '{args[0][:20]}...'")
    return torch.device(*args)


def _parameter(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    check_kwargs("nn.Parameter", kwargs)
    if not args or not isinstance(args[0], torch.Tensor):
        raise TypeError("nn.Parameter() takes a tensor")
    return nn.Parameter(*args, **kwargs)


def _set_grow(name: str) -> MethodImpl:
    def impl(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> Any:
        if kwargs:
            raise TypeError(f"set.{name}() takes no keyword arguments")
        added = [args[0]] if name == "add" and args else [x for a in args for x in guard.bounded(a)]
        guard.check_seq_len(len(obj) + len(added))
        return getattr(obj, name)(*([args[0]] if name == "add" else added and [added]))

    return impl


SET_METHODS: dict[str, MethodImpl] = {
    "add": _set_grow("add"),
    "update": _set_grow("update"),
    **{name: _plain(name) for name in ("remove", "discard", "pop", "clear", "copy")},
    **{
        name: _searching(name)
        for name in ("union", "intersection", "difference", "issubset", "issuperset")
    },
}

# Library objects a program may index (``axs[0, 1]`` of plt.subplots): their own __getitem__.
SUBSCRIPTABLE_TYPES: list[type] = []


def register_subscriptable(kind: type) -> None:
    SUBSCRIPTABLE_TYPES.append(kind)


_NP_SCALARS = frozenset([*_NP_DTYPES.values(), np.bool_])


def call_np_scalar(guard: Guard, kind: type, args: Args, kwargs: Kwargs) -> Any:
    """``np.float32(2.5)``, ``np.int64(x)``: a NumPy scalar (or an array, for array data)."""
    if kwargs or len(args) > 1:
        raise TypeError(f"{kind.__name__}() takes at most one argument here")
    if args:
        guard.check_elements(data_elements(guard, args[0], "an array"), "array")
    return kind(*args)


def is_np_scalar_type(value: Any) -> bool:
    return isinstance(value, type) and value in _NP_SCALARS


# Library objects a program may call (a transform from torchvision.transforms): by isinstance,
# each with the function that calls it (``impl(guard, obj, args, kwargs)``).
CALLABLE_TYPES: list[tuple[type, MethodImpl]] = []


def register_callable(kind: type, impl: MethodImpl) -> None:
    CALLABLE_TYPES.append((kind, impl))


# The built-in exceptions a program may raise and catch, by name.
EXCEPTION_TYPES: dict[str, type[BaseException]] = {
    kind.__name__: kind
    for kind in (
        BaseException, Exception, ArithmeticError, AssertionError, AttributeError, EOFError,
        FileNotFoundError, ImportError, IndexError, KeyError, LookupError, ModuleNotFoundError,
        NameError, NotImplementedError, OSError, OverflowError, PermissionError, RecursionError,
        RuntimeError, StopIteration, TypeError, UnboundLocalError, ValueError, ZeroDivisionError,
    )
}  # fmt: skip


def _exception(kind: type[BaseException]) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        if kwargs:
            raise TypeError(f"{kind.__name__}() takes no keyword arguments")
        if len(args) > 10:
            raise TypeError(f"{kind.__name__}() takes at most 10 arguments here")
        return kind(*args)

    return SafeFunction(kind.__name__, impl, kind)


def _interpreted(name: str) -> SafeFunction:
    """A builtin the interpreter runs itself (it needs the running frame or calls back)."""

    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        raise TypeError(f"{name}() cannot be called from here")

    return SafeFunction(name, impl)


def _decorator(name: str) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        raise SandboxRefused(f"{name} is supported as a decorator (@{name}) only")

    return SafeFunction(name, impl)


# -- Python builtins -------------------------------------------------------------------------------


def _no_kwargs(name: str, kwargs: Kwargs) -> None:
    if kwargs:
        raise SandboxRefused(f"{name}() takes no keyword arguments in this sandbox")


def _print(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    sep = kwargs.pop("sep", " ")
    end = kwargs.pop("end", "\n")
    _no_kwargs("print", kwargs)
    sep = " " if sep is None else sep
    end = "\n" if end is None else end
    if not isinstance(sep, str) or not isinstance(end, str):
        raise TypeError("sep and end must be strings")
    room = guard.limits.max_stdout_chars - guard.stdout_chars + 1
    parts: list[str] = []
    for arg in args:
        text, _ = format_value(arg, budget=room)
        parts.append(text)
        room -= len(text) + len(sep)
        if room <= 0:
            break
    guard.write(sep.join(parts) + end)


def _str(guard: Guard, args: Args, kwargs: Kwargs) -> str:
    _no_kwargs("str", kwargs)
    if not args:
        return ""
    text, cut = format_value(args[0], budget=guard.limits.max_string_chars + 1)
    if cut:
        guard.check_str_len(guard.limits.max_string_chars + 1)
    return text


def _repr(guard: Guard, args: Args, kwargs: Kwargs) -> str:
    _no_kwargs("repr", kwargs)
    text, cut = format_value(args[0] if args else None, True, guard.limits.max_string_chars + 1)
    if cut:
        guard.check_str_len(guard.limits.max_string_chars + 1)
    return text


def _len(guard: Guard, args: Args, kwargs: Kwargs) -> int:
    _no_kwargs("len", kwargs)
    if len(args) != 1:
        raise TypeError("len() takes exactly one argument")
    return len(args[0])


def _range(guard: Guard, args: Args, kwargs: Kwargs) -> range:
    _no_kwargs("range", kwargs)
    return range(*args)


def _sum(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    start = kwargs.pop("start", args[1] if len(args) > 1 else 0)
    _no_kwargs("sum", kwargs)
    if not args:
        raise TypeError("sum() takes a list to add up")
    total = start
    for item in guard.bounded(args[0]):
        total = guard.check_result(binary(guard, "Add", total, item))
    return total


def _round(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    _no_kwargs("round", kwargs)
    if len(args) > 1:
        # round(5, -10**9) computes 10**(10**9): bound ndigits whatever whole-number type it has
        digits = size_int(args[1])
        if digits is not None:
            if abs(digits) > 100:
                raise SandboxRefused("round() takes at most 100 digits here")
            args = (args[0], digits, *args[2:])
    return round(*args)


def _to_list(name: str, kind: type) -> Impl:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        _no_kwargs(name, kwargs)
        return kind(guard.bounded(args[0])) if args else kind()

    return impl


def _dict(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    pairs = guard.bounded(args[0]) if args else []
    return dict(pairs, **kwargs)


def _lazy(name: str, fn: Callable[..., Any]) -> Impl:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        if name == "zip":  # zip(a, b, strict=True): Python's ValueError for unequal lengths
            if set(kwargs) - {"strict"}:
                raise TypeError("zip() takes at most 1 keyword argument, strict=")
        elif name != "enumerate":
            _no_kwargs(name, kwargs)
        elif set(kwargs) - {"start"}:
            raise SandboxRefused("enumerate() takes only start=")
        for arg in args[:1] if name == "enumerate" else args:
            check_iterable(arg)
        return fn(*args, **kwargs)

    return impl


def _simple(name: str, fn: Callable[..., Any]) -> Impl:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        _no_kwargs(name, kwargs)
        return fn(*args)

    return impl


def _any_all(name: str, fn: Callable[..., Any]) -> Impl:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        _no_kwargs(name, kwargs)
        return fn(guard.bounded(args[0]) if args else [])

    return impl


BUILTINS: dict[str, Any] = {
    "print": SafeFunction("print", _print),
    "len": SafeFunction("len", _len),
    "range": SafeFunction("range", _range),
    "abs": SafeFunction("abs", _simple("abs", abs)),
    "round": SafeFunction("round", _round),
    "float": SafeFunction("float", _simple("float", float), float),
    "int": SafeFunction("int", _simple("int", int), int),
    "bool": SafeFunction("bool", _simple("bool", bool), bool),
    "str": SafeFunction("str", _str, str),
    "repr": SafeFunction("repr", _repr),
    "sum": SafeFunction("sum", _sum),
    "list": SafeFunction("list", _to_list("list", list), list),
    "tuple": SafeFunction("tuple", _to_list("tuple", tuple), tuple),
    "dict": SafeFunction("dict", _dict, dict),
    "set": SafeFunction("set", _to_list("set", set), set),
    "enumerate": SafeFunction("enumerate", _lazy("enumerate", enumerate)),
    "zip": SafeFunction("zip", _lazy("zip", zip)),
    "reversed": SafeFunction("reversed", _lazy("reversed", reversed)),
    "any": SafeFunction("any", _any_all("any", any)),
    "all": SafeFunction("all", _any_all("all", all)),
    **{
        name: _interpreted(name)
        for name in _names("super isinstance type map filter iter next min max sorted")
    },
    **{name: _decorator(name) for name in _names("staticmethod classmethod property")},
    **{name: _exception(kind) for name, kind in EXCEPTION_TYPES.items()},
}
OBJECT = BaseClass("object", object)
BUILTINS["object"] = OBJECT

# Names that reach the interpreter, the OS or the object model: refused by name.
FORBIDDEN_NAMES = frozenset(
    _names(
        """eval exec compile getattr setattr delattr hasattr globals locals vars dir input
    breakpoint memoryview bytearray bytes help exit quit id hash issubclass callable format chr
    ord ascii bin hex oct pow divmod license copyright credits reload importlib os sys
    subprocess builtins __import__ __builtins__ frozenset slice complex aiter anext"""
    )
)


# -- the namespaces a program starts with ----------------------------------------------------------


def build_namespaces() -> dict[str, Namespace]:
    """torch, np/numpy, nn, F and optim as the program sees them."""
    functional = Namespace(
        "torch.nn.functional",
        {
            **{n: _wrap(f"F.{n}", getattr(torch_f, n)) for n in _F_NAMES},
            "conv2d": _wrap("F.conv2d", torch_f.conv2d, rule_conv),
            "cross_entropy": SafeFunction("F.cross_entropy", _cross_entropy),
        },
    )
    nn_members: dict[str, Any] = {
        "Linear": SafeFunction("nn.Linear", _linear, nn.Linear),
        "Sequential": SafeFunction("nn.Sequential", _sequential, nn.Sequential),
        "functional": functional,
    }
    for cls in MODULE_CLASSES - {nn.Linear, nn.Sequential}:
        nn_members[cls.__name__] = _module_class(cls.__name__, cls)
    nn_members["Module"] = BaseClass("torch.nn.Module", nn.Module)
    nn_members["Parameter"] = SafeFunction("nn.Parameter", _parameter)
    nn_space = Namespace("torch.nn", nn_members)
    optim = Namespace(
        "torch.optim",
        {cls.__name__: _optimizer(cls.__name__, cls) for cls in OPTIMIZER_CLASSES},
    )
    cuda = Namespace(
        "torch.cuda",
        {
            "is_available": SafeFunction("torch.cuda.is_available", lambda g, a, k: False),
            "device_count": SafeFunction("torch.cuda.device_count", lambda g, a, k: 0),
        },
    )
    torch_space = Namespace(
        "torch",
        {
            **_torch_members(),
            "nn": nn_space,
            "optim": optim,
            "cuda": cuda,
            "device": SafeFunction("torch.device", _device),
            "Tensor": BaseClass("torch.Tensor", torch.Tensor),
        },
    )
    numpy_space = Namespace("numpy", _numpy_members())
    return {
        "torch": torch_space,
        "np": numpy_space,
        "numpy": numpy_space,
        "nn": nn_space,
        "F": functional,
        "optim": optim,
    }


NAMESPACES = build_namespaces()


_ATTRIBUTE_NAMES: list[frozenset[str]] = []


def all_attributes() -> frozenset[str]:
    """Every attribute name any whitelisted type or module has (computed once, after every
    library registered its namespaces and types): anything else is refused before running."""
    if _ATTRIBUTE_NAMES:
        return _ATTRIBUTE_NAMES[0]
    from app.sandbox.modules import MODULES  # registers the lib_* namespaces and types

    names: set[str] = set()
    spaces = [*NAMESPACES.values(), *MODULES.values()]
    seen: set[int] = set()
    while spaces:
        space = spaces.pop()
        if id(space) in seen:
            continue
        seen.add(id(space))
        names.update(space.members)
        spaces.extend(m for m in space.members.values() if isinstance(m, Namespace))
    for table in (
        TENSOR_PROPS,
        TENSOR_METHODS,
        NDARRAY_PROPS,
        NDARRAY_METHODS,
        NODE_PROPS,
        MODULE_PROPS,
        MODULE_METHODS,
        OPTIMIZER_METHODS,
        OPTIMIZER_PROPS,
        SET_METHODS,
        LIST_METHODS,
        DICT_METHODS,
        STR_METHODS,
        TUPLE_METHODS,
        GENERATOR_METHODS,
        GENERATOR_PROPS,
    ):
        names.update(table)
    for _kind, props, methods in TYPE_TABLES:
        names.update(props)
        names.update(methods)
    names.update({"name", "numel", "values", "indices", "item", "is_floating_point", "type"})
    names.update({"index", "training"})
    _ATTRIBUTE_NAMES.append(frozenset(names))
    return _ATTRIBUTE_NAMES[0]


# What ``with`` accepts: torch's grad modes; libraries add theirs (an open file, a writer).
CONTEXT_MANAGERS: list[type] = [torch.no_grad, torch.enable_grad]
