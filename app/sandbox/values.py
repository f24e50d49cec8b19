"""Learner values as JSON (the ``Value`` of the HTTP contract) and as bounded text for ``print``.

JSON numbers cannot be NaN or infinite, so non-finite floats are encoded as the strings
``"nan"``, ``"inf"`` and ``"-inf"`` wherever a number may appear (tensor values, grads, numbers).
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import weakref
from typing import Any

import numpy as np
import torch

from app.sandbox.guards import CONTAINERS, storage_range
from app.sandbox.limits import SandboxLimits

# How much of a container or string one Value shows; the rest is cut with "truncated": true.
MAX_ITEMS_SHOWN = 100
MAX_DEPTH_SHOWN = 6
MAX_TEXT_SHOWN = 2_000
# Values (nested items, tensors) one variable may show in total.
MAX_NODES_PER_VARIABLE = 2_000


class RecordingBudgetExceeded(Exception):
    """The serializer went past its total budget of numbers (``max_recorded_numbers``)."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def json_text(obj: Any) -> str:
    """``obj`` as the compact JSON every answer of the sandbox is made of.

    ASCII only, with ``<``, ``>`` and ``&`` escaped as well (as a page's embedded JSON needs):
    so the length of this text is exactly the answer's bytes, for the API and inside a page.
    """
    text = _ENCODER.encode(obj)
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


# Objects whose Value can only change when the variable is bound to another object; tuples of
# them count too (up to MAX_ITEMS_SHOWN items, past which checking costs more than serializing).
_IMMUTABLE = (str, int, float, complex, bytes, type(None), np.generic, torch.dtype, torch.Size,
              range, slice)  # fmt: skip


def is_immutable(obj: Any, depth: int = 0) -> bool:
    """True when ``obj`` cannot change in place, so the same object always has the same Value."""
    if isinstance(obj, _IMMUTABLE):
        return True
    if type(obj) is tuple and len(obj) <= MAX_ITEMS_SHOWN and depth < 3:
        return all(is_immutable(item, depth + 1) for item in obj)
    return False


_NP_DTYPE_TYPES = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64)


def clean_number(value: Any) -> Any:
    """A JSON-safe number: non-finite floats become "nan", "inf" or "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def clean_nested(values: Any) -> Any:
    """``clean_number`` through the nested lists ``tolist()`` returns."""
    if isinstance(values, list):
        return [clean_nested(v) for v in values]
    return clean_number(values)


def dtype_name(dtype: torch.dtype | np.dtype[Any] | type) -> str:
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return str(np.dtype(dtype))


def tensor_values(tensor: torch.Tensor, limit: int) -> Any:
    """Nested list (or a plain number for a 0-d tensor), None past ``limit`` elements."""
    if tensor.numel() > limit:
        return None
    t = tensor.detach().cpu()
    # Only floats can hold nan or inf: walking the nested lists is most of the cost otherwise.
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        return clean_nested(t.tolist())
    if t.is_complex():
        return clean_nested(t.tolist())
    return t.tolist()


def array_values(a: np.ndarray) -> Any:
    """An array's values as nested lists, non-finite floats as strings."""
    if a.dtype.kind in "biu" or (a.dtype.kind == "f" and bool(np.isfinite(a).all())):
        return a.tolist()
    return clean_nested(a.tolist())


class _Block:
    """One memory block seen so far: its range, its token, and the live objects over it."""

    __slots__ = ("start", "end", "name", "refs")

    def __init__(self, start: int, end: int, name: str) -> None:
        self.start = start
        self.end = end
        self.name = name
        self.refs: dict[int, weakref.ref[Any]] = {}  # id -> ref, gone when the object is

    def add(self, obj: Any) -> None:
        key = id(obj)
        if key not in self.refs:
            refs = self.refs
            self.refs[key] = weakref.ref(obj, lambda _: refs.pop(key, None))


class StorageTokens:
    """Short stable names ("s1", "s2", ...) for memory blocks, shared by objects that overlap.

    A step serializes every tensor the program holds, so a token must not cost a walk over every
    block: an object whose block is known by its start address (views, ``.numpy()``,
    ``from_numpy``) is answered at once; only a new block is compared with the others.
    """

    def __init__(self) -> None:
        self._blocks: list[_Block] = []
        self._by_start: dict[int, _Block] = {}
        self._empty: dict[int, tuple[weakref.ref[Any], str]] = {}
        self._count = 0

    def _new(self) -> str:
        self._count += 1
        return f"s{self._count}"

    def token(self, obj: torch.Tensor | np.ndarray) -> str:
        start, nbytes = storage_range(obj)
        if start == 0 or nbytes == 0:
            known = self._empty.get(id(obj))
            if known is not None and known[0]() is obj:
                return known[1]
            name = self._new()
            self._empty[id(obj)] = (weakref.ref(obj), name)
            return name
        end = start + nbytes
        block = self._by_start.get(start)
        if block is not None and block.refs and block.start <= start and end <= block.end:
            block.add(obj)
            return block.name
        # A block whose objects are all gone is free memory: a new object there is new.
        self._blocks = [b for b in self._blocks if b.refs]
        self._by_start = {k: b for k, b in self._by_start.items() if b.refs}
        for block in self._blocks:
            if start < block.end and block.start < end:
                block.add(obj)
                block.start, block.end = min(block.start, start), max(block.end, end)
                self._by_start[start] = block
                return block.name
        block = _Block(start, end, self._new())
        block.add(obj)
        self._blocks.append(block)
        self._by_start[start] = block
        return block.name


class Serializer:
    """Turns learner values into ``Value`` dicts, counting the numbers it emits."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.tokens = StorageTokens()
        self.numbers = 0
        self.budget = limits.max_recorded_numbers
        self._nodes_left = MAX_NODES_PER_VARIABLE

    def variables(self, env: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every variable's Value; raises RecordingBudgetExceeded past the total budget."""
        return {name: self.variable(value) for name, value in env.items()}

    def variable(self, obj: Any) -> dict[str, Any]:
        """One variable's Value (at most MAX_NODES_PER_VARIABLE nodes of it)."""
        self._nodes_left = MAX_NODES_PER_VARIABLE
        return self.value(obj)

    def _count(self, numbers: int) -> None:
        """Count what is serialized: a number each, a character each for text."""
        self.numbers += numbers
        if self.numbers > self.budget:
            raise RecordingBudgetExceeded

    def value(self, obj: Any, depth: int = 0, path: tuple[int, ...] = ()) -> dict[str, Any]:
        self._count(1)
        self._nodes_left -= 1
        if isinstance(obj, torch.Tensor):
            return self.tensor(obj)
        if isinstance(obj, np.ndarray):
            return self.ndarray(obj)
        if obj is None:
            return {"kind": "none"}
        if isinstance(obj, bool | np.bool_):
            return {"kind": "bool", "value": bool(obj)}
        if isinstance(obj, int | float | np.integer | np.floating):
            number = obj.item() if isinstance(obj, np.generic) else obj
            return {
                "kind": "number",
                "value": clean_number(number),
                "type": "int" if isinstance(number, int) else "float",
            }
        if isinstance(obj, str):
            shown = obj[:MAX_TEXT_SHOWN]
            self._count(len(shown))  # a long string is many values, not one
            return {"kind": "str", "value": shown, "truncated": len(obj) > MAX_TEXT_SHOWN}
        if isinstance(obj, torch.dtype) or (isinstance(obj, type) and obj in _NP_DTYPE_TYPES):
            return {"kind": "dtype", "value": dtype_name(obj)}
        if isinstance(obj, torch.Size):
            return {"kind": "size", "value": list(obj)}
        if isinstance(obj, torch.autograd.graph.Node):
            return {"kind": "grad_fn", "name": type(obj).__name__}
        learner = getattr(type(obj), "_sandbox_class", None)
        if learner is not None and not isinstance(obj, torch.nn.Module):
            # Never the learner's own __repr__: showing a step must not run the program's code.
            text = f"<__main__.{type(obj).__qualname__} object>"
            self._count(len(text))
            return {"kind": "other", "repr": text}
        if isinstance(obj, torch.nn.Module):
            text = module_text(obj)[:MAX_TEXT_SHOWN]
            self._count(len(text))
            return {
                "kind": "module",
                "repr": text,
                "parameters": {
                    name: self.tensor(p) for name, p in list(obj.named_parameters())[:32]
                },
            }
        if isinstance(obj, CONTAINERS) and not _is_structseq(obj):
            return self.container(obj, depth, path)
        text = short_repr(obj)
        self._count(len(text))
        return {"kind": "other", "repr": text}

    def tensor(self, t: torch.Tensor) -> dict[str, Any]:
        # Not cached between steps: NumPy can change a shared tensor without bumping _version.
        grad = t.grad if t.is_leaf or t.retains_grad else None
        return self._tensor(t, grad)

    def _tensor(self, t: torch.Tensor, grad: torch.Tensor | None) -> dict[str, Any]:
        limit = self.limits.max_display_elements
        values = tensor_values(t, limit)
        grad_values = tensor_values(grad, limit) if grad is not None else None
        self._count(
            (t.numel() if values is not None else 0)
            + (grad.numel() if grad_values is not None and grad is not None else 0)
        )
        return {
            "kind": "tensor",
            "shape": list(t.shape),
            "dtype": dtype_name(t.dtype),
            "stride": list(t.stride()),
            "values": values,
            "requires_grad": t.requires_grad,
            "is_leaf": t.is_leaf,
            "grad_fn": type(t.grad_fn).__name__ if t.grad_fn is not None else None,
            "grad": grad_values,
            "storage": self.tokens.token(t),
            "version": t._version,
        }

    def ndarray(self, a: np.ndarray) -> dict[str, Any]:
        shown = a.size <= self.limits.max_display_elements
        if shown:
            self._count(a.size)
        return {
            "kind": "ndarray",
            "shape": list(a.shape),
            "dtype": str(a.dtype),
            "stride": [s // a.itemsize for s in a.strides] if a.itemsize else list(a.strides),
            "values": array_values(a) if shown else None,
            "storage": self.tokens.token(a),
        }

    def container(self, obj: Any, depth: int, path: tuple[int, ...]) -> dict[str, Any]:
        kinds: dict[type, str] = {dict: "dict", tuple: "tuple", set: "set", frozenset: "set"}
        kind = kinds.get(type(obj), "list")
        if depth >= MAX_DEPTH_SHOWN or id(obj) in path or self._nodes_left <= 0:
            return {"kind": "other", "repr": "[...]" if kind == "list" else "(...)"}
        inner = (*path, id(obj))
        result: dict[str, Any] = {"kind": kind, "length": len(obj)}
        shown = min(len(obj), MAX_ITEMS_SHOWN, max(self._nodes_left, 0))
        if isinstance(obj, dict):
            pairs = list(itertools.islice(obj.items(), shown))
            result["items"] = [
                {"key": self.value(k, depth + 1, inner), "value": self.value(v, depth + 1, inner)}
                for k, v in pairs
            ]
        else:
            items = list(itertools.islice(obj, shown))
            result["items"] = [self.value(v, depth + 1, inner) for v in items]
        result["truncated"] = len(obj) > shown
        return result


def _is_structseq(obj: Any) -> bool:
    return type(obj).__module__ == "torch.return_types"


def short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= MAX_TEXT_SHOWN else text[:MAX_TEXT_SHOWN] + "..."


class _Text:
    """Accumulates text up to a character budget, then ignores the rest."""

    def __init__(self, budget: int) -> None:
        self.parts: list[str] = []
        self.room = budget
        self.full = False

    def add(self, text: str) -> None:
        if self.full:
            return
        if len(text) > self.room:
            text = text[: self.room]
            self.full = True
        self.parts.append(text)
        self.room -= len(text)


def module_text(module: torch.nn.Module, depth: int = 0) -> str:
    """``repr(module)`` as PyTorch writes it, without running a learner class's ``__repr__``."""
    learner = getattr(type(module), "_sandbox_class", None) is not None
    children = list(module._modules.items())
    if not learner and (not children or depth > 8):
        return repr(module)
    extra = "" if learner else module.extra_repr()
    lines = extra.split("\n") if extra else []
    for name, child in children[:64]:
        text = "None" if child is None else module_text(child, depth + 1)
        lines.append(f"({name}): " + text.replace("\n", "\n  "))
    body = type(module).__qualname__ + "("
    if lines:
        body += "\n  " + "\n  ".join(lines) + "\n"
    return body + ")"


def format_value(obj: Any, as_repr: bool = False, budget: int = 100_000) -> tuple[str, bool]:
    """``str(obj)`` (or ``repr``) cut at ``budget`` characters; returns (text, was_cut).

    Containers are printed here rather than by Python so that shared or nested lists cannot make
    printing run away; cycles show as ``[...]``. Tensors and arrays use their library's own
    (summarising) repr.
    """
    out = _Text(budget)
    _format(obj, as_repr, out, 0, ())
    return "".join(out.parts), out.full


def _format(obj: Any, as_repr: bool, out: _Text, depth: int, path: tuple[int, ...]) -> None:
    if out.full:
        return
    if isinstance(obj, str):
        out.add(repr(obj) if as_repr else obj)
        return
    if not isinstance(obj, CONTAINERS) or _is_structseq(obj) or isinstance(obj, torch.Size):
        out.add(repr(obj) if as_repr else str(obj))
        return
    if id(obj) in path or depth >= 20:
        out.add("[...]" if isinstance(obj, list) else "(...)")
        return
    inner = (*path, id(obj))
    if type(obj) is collections.OrderedDict:  # a state_dict: printed as Python 3.11 prints it
        if not obj:
            out.add("OrderedDict()")
            return
        out.add("OrderedDict(")
        _format(list(obj.items()), True, out, depth + 1, inner)
        out.add(")")
        return
    if isinstance(obj, dict):
        out.add("{")
        for i, (key, value) in enumerate(obj.items()):
            if out.full:
                return
            out.add(", " if i else "")
            _format(key, True, out, depth + 1, inner)
            out.add(": ")
            _format(value, True, out, depth + 1, inner)
        out.add("}")
        return
    if isinstance(obj, set | frozenset) and not obj:
        out.add("set()")
        return
    brackets: dict[type, tuple[str, str]] = {tuple: ("(", ")"), list: ("[", "]")}
    opening, closing = brackets.get(type(obj), ("{", "}"))
    out.add(opening)
    for i, item in enumerate(obj):
        if out.full:
            return
        out.add(", " if i else "")
        _format(item, True, out, depth + 1, inner)
    if isinstance(obj, tuple) and len(obj) == 1:
        out.add(",")
    out.add(closing)
