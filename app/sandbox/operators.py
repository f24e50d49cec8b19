"""Python operators (``+``, ``@``, ``**``, ``x[i]``, ``==``) with their size checks done first."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from app.sandbox.guards import Guard, broadcast_shape, matmul_shape, shape_of, size_int
from app.sandbox.limits import SandboxRefused

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mult": operator.mul,
    "Div": operator.truediv,
    "FloorDiv": operator.floordiv,
    "Mod": operator.mod,
    "Pow": operator.pow,
    "MatMult": operator.matmul,
    "LShift": operator.lshift,
    "RShift": operator.rshift,
    "BitAnd": operator.and_,
    "BitOr": operator.or_,
    "BitXor": operator.xor,
}
INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.iadd,
    "Sub": operator.isub,
    "Mult": operator.imul,
    "Div": operator.itruediv,
    "FloorDiv": operator.ifloordiv,
    "Mod": operator.imod,
    "Pow": operator.ipow,
    "MatMult": operator.imatmul,
    "LShift": operator.ilshift,
    "RShift": operator.irshift,
    "BitAnd": operator.iand,
    "BitOr": operator.ior,
    "BitXor": operator.ixor,
}
COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "Eq": operator.eq,
    "NotEq": operator.ne,
    "Lt": operator.lt,
    "LtE": operator.le,
    "Gt": operator.gt,
    "GtE": operator.ge,
    "Is": operator.is_,
    "IsNot": operator.is_not,
    "In": lambda a, b: a in b,
    "NotIn": lambda a, b: a not in b,
}

_ARRAYS = (torch.Tensor, np.ndarray)
_SEQUENCES = (str, list, tuple)
# Index entries that select many positions at once (advanced indexing).
_INDEX_SEQUENCES = (torch.Tensor, np.ndarray, list, tuple, range)


def _repeat_count(value: Any) -> int | None:
    """How many times ``seq * value`` repeats a list or string: Python takes any whole number
    (``[0] * torch.tensor(10**9)``, ``"a" * np.int64(10**9)``); NumPy arrays broadcast instead."""
    if isinstance(value, bool):
        return None  # at most one copy
    if isinstance(value, int | np.integer | torch.Tensor):
        return size_int(value)
    return None


def precheck_binary(guard: Guard, op: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be over a limit, before computing it."""
    if isinstance(left, int) and isinstance(right, int):  # bools too: True << 10**9 is an int
        left, right = int(left), int(right)
        if op == "Pow" and right > 0 and abs(left) > 1:
            guard.check_int_bits(left.bit_length() * right)
        elif op == "Mult":
            guard.check_int_bits(left.bit_length() + right.bit_length())
        elif op == "LShift" and right > 0:
            guard.check_int_bits(left.bit_length() + right)
        return
    if op == "Mod" and isinstance(left, str):
        raise SandboxRefused("%-formatting of strings is not supported: use an f-string")
    if op == "Mult":
        seq, count = (left, right) if isinstance(left, _SEQUENCES) else (right, left)
        times = _repeat_count(count) if isinstance(seq, _SEQUENCES) else None
        if times is not None:
            length = len(seq) * max(times, 0)
            if isinstance(seq, str):
                guard.check_str_len(length)
            else:
                guard.check_seq_len(length)
            return
    if op == "Add" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        if isinstance(left, str) and isinstance(right, str):
            guard.check_str_len(len(left) + len(right))
        else:
            guard.check_seq_len(len(left) + len(right))
        return
    if isinstance(left, _ARRAYS) or isinstance(right, _ARRAYS):
        check_array_operands(guard, op, left, right)


def check_array_operands(guard: Guard, op: str, left: Any, right: Any) -> None:
    """Broadcast (or matmul) shape of a tensor/array operation, checked against the limit."""
    if isinstance(left, str | bytes) or isinstance(right, str | bytes):
        raise SandboxRefused("tensors and arrays cannot be combined with text here")
    a, b = shape_of(left), shape_of(right)
    if a is None or b is None:
        return
    result = matmul_shape(a, b) if op == "MatMult" else broadcast_shape([a, b])
    if result is not None:
        guard.check_shape(result, "matmul result" if op == "MatMult" else "tensor")


def binary(guard: Guard, op: str, left: Any, right: Any, inplace: bool = False) -> Any:
    """``left <op> right`` (or ``left <op>= right``) after the size checks."""
    if inplace and isinstance(left, list) and op in ("Add", "BitOr"):
        # list += iterable extends in C: take the items under our own bound first
        right = guard.bounded(right)
        guard.check_seq_len(len(left) + len(right))
        guard.check_added(left, right)
    precheck_binary(guard, op, left, right)
    result = (INPLACE if inplace else BINARY)[op](left, right)
    return guard.check_result(result)


def compare(guard: Guard, op: str, left: Any, right: Any) -> Any:
    """``left <op> right``; containers are size-checked first (Python compares them in C)."""
    if op in ("Is", "IsNot"):
        return COMPARE[op](left, right)
    if isinstance(left, _ARRAYS) or isinstance(right, _ARRAYS):
        check_array_operands(guard, "Eq", left, right)
    guard.check_container(left)
    guard.check_container(right)
    return guard.check_result(COMPARE[op](left, right))


def check_index(guard: Guard, obj: Any, index: Any) -> None:
    """Bound the size of ``x[index]`` when the index holds tensors, arrays or lists.

    Basic indexing (ints, slices, None, ...) makes a view no bigger than ``x``; advanced
    indexing makes (broadcast index shape) x (dimensions left over) elements.
    """
    if not isinstance(obj, _ARRAYS):
        return
    items = index if isinstance(index, tuple) else (index,)
    advanced = [i for i in items if isinstance(i, _INDEX_SEQUENCES)]
    if not advanced:
        return
    shape = list(obj.shape)
    consumed = sum(
        (i.ndim if _is_bool_array(i) else 1)
        for i in items
        if i is not None and i is not Ellipsis and not isinstance(i, bool)
    )
    rest = 1
    dim = 0
    index_shapes: list[tuple[int, ...]] = []
    for item in items:
        if item is None or isinstance(item, bool):
            continue
        if item is Ellipsis:
            for _ in range(max(len(shape) - consumed, 0)):
                rest *= shape[dim] if dim < len(shape) else 1
                dim += 1
            continue
        if _is_bool_array(item):
            count = 1
            for _ in range(item.ndim):
                count *= shape[dim] if dim < len(shape) else 1
                dim += 1
            index_shapes.append((count,))
            continue
        if isinstance(item, _INDEX_SEQUENCES):
            item_shape = shape_of(item)
            if item_shape is None:
                return
            index_shapes.append(item_shape)
        elif isinstance(item, slice):
            rest *= shape[dim] if dim < len(shape) else 1
        dim += 1
    for size in shape[dim:]:
        rest *= size
    picked = broadcast_shape(index_shapes)
    if picked is None:
        return
    count = rest
    for size in picked:
        count *= size
    guard.check_elements(count)


def _is_bool_array(item: Any) -> bool:
    if isinstance(item, torch.Tensor):
        return item.dtype == torch.bool
    if isinstance(item, np.ndarray):
        return item.dtype == np.bool_
    return False
