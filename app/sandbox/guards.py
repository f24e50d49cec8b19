"""Checks that keep a learner program inside its limits, done before anything big is allocated.

Every size a program controls is estimated from shapes and lengths first (a creator's size
arguments, the broadcast shape of an elementwise op, a matmul's result, the length of a repeated
list), so ``torch.ones(100000, 100000)`` is refused without allocating. Results are checked again
afterwards, and live tensor/array memory is tracked through weak references.
"""

from __future__ import annotations

import gc
import math
import operator
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import numpy as np
import torch

from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused, over_limit

Shape = tuple[int, ...]

CONTAINERS = (list, tuple, dict, set, frozenset)
# numpy dtype kinds a program may hold: bool, signed/unsigned int, float.
ARRAY_KINDS = frozenset("biuf")
_END = object()


def storage_range(obj: torch.Tensor | np.ndarray) -> tuple[int, int]:
    """(start address, bytes) of the memory block behind a tensor or array.

    Two live objects whose ranges overlap share memory: a view, ``.numpy()`` of a tensor and
    ``torch.from_numpy`` of an array all land in their base's range.
    """
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    root = obj
    while isinstance(root.base, np.ndarray):
        root = root.base
    return int(root.__array_interface__["data"][0]), int(root.nbytes)


class MemoryTracker:
    """Bytes of all live tensors and arrays the program has touched, counted once per storage.

    Tensors kept by the autograd graph for backward stay alive (and counted) as long as the graph
    holds them, because PyTorch keeps their Python objects alive while C++ references them.
    """

    def __init__(self) -> None:
        self.total = 0
        self._entries: dict[int, list[Any]] = {}  # start -> [nbytes, {id: weakref}]

    def add(self, obj: torch.Tensor | np.ndarray) -> None:
        """Count ``obj``'s storage until the last tracked object using it is gone."""
        start, nbytes = storage_range(obj)
        if start == 0 or nbytes == 0:
            return
        entry = self._entries.get(start)
        if entry is None:
            entry = [nbytes, {}]
            self._entries[start] = entry
            self.total += nbytes
        elif nbytes > entry[0]:
            self.total += nbytes - entry[0]
            entry[0] = nbytes
        refs: dict[int, weakref.ref[Any]] = entry[1]
        key = id(obj)
        if key not in refs:
            refs[key] = weakref.ref(obj, self._forget(start, key))

    def _forget(self, start: int, key: int) -> Callable[[weakref.ref[Any]], None]:
        def callback(_: weakref.ref[Any]) -> None:
            entry = self._entries.get(start)
            if entry is None:
                return
            entry[1].pop(key, None)
            if not entry[1]:
                self.total -= entry[0]
                del self._entries[start]

        return callback


class Guard:
    """Limits, clock, counters and captured output of one program run."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.deadline = self.started + limits.max_seconds
        self.memory = MemoryTracker()
        self.statements = 0
        self.stdout: list[str] = []
        self.stdout_chars = 0
        self.stdout_dropped = False

    # -- time and counters -------------------------------------------------------------------------

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise SandboxLimitExceeded(
                f"the program ran longer than the limit of {self.limits.max_seconds} s "
                "(max_seconds)",
                limit="max_seconds",
            )

    def extend_deadline(self, seconds: float) -> None:
        """Give back time spent on one-off imports the learner did not cause."""
        self.deadline += seconds

    def count_statement(self) -> None:
        self.statements += 1
        if self.statements > self.limits.max_statements:
            raise over_limit(
                f"running more than {self.limits.max_statements} statements",
                self.limits,
                "max_statements",
            )
        self.check_deadline()

    def write(self, text: str) -> None:
        """Capture print output, dropping what goes past ``max_stdout_chars``."""
        room = self.limits.max_stdout_chars - self.stdout_chars
        if len(text) > room:
            text = text[: max(room, 0)]
            self.stdout_dropped = True
        self.stdout_chars += len(text)
        if text:
            self.stdout.append(text)

    def take_stdout(self) -> str:
        out = "".join(self.stdout)
        self.stdout.clear()
        return out

    # -- sizes -------------------------------------------------------------------------------------

    def check_elements(self, count: int, what: str = "tensor") -> None:
        if count > self.limits.max_tensor_elements:
            raise over_limit(f"{what} of {count} elements", self.limits, "max_tensor_elements")

    def check_shape(self, shape: Iterable[int], what: str = "tensor") -> None:
        self.check_elements(math.prod(max(int(d), 0) for d in shape), what)

    def check_int(self, value: int) -> None:
        bits = value.bit_length()
        if bits > self.limits.max_int_bits:
            raise over_limit(f"an integer of {bits} bits", self.limits, "max_int_bits")

    def check_int_bits(self, bits: int) -> None:
        if bits > self.limits.max_int_bits:
            raise over_limit(f"an integer of about {bits} bits", self.limits, "max_int_bits")

    def check_str_len(self, length: int) -> None:
        if length > self.limits.max_string_chars:
            raise over_limit(f"a string of {length} characters", self.limits, "max_string_chars")

    def check_seq_len(self, length: int) -> None:
        if length > self.limits.max_sequence_items:
            raise over_limit(
                f"a list or tuple of {length} items", self.limits, "max_sequence_items"
            )

    def check_container(self, obj: Any, forbidden: int | None = None) -> None:
        """Bound the nested size (shared parts counted each time) and depth of a container.

        Python compares, hashes and prints containers recursively in C, where no deadline can
        stop it: ``t = (t, t)`` in a loop doubles the nested size each time. Tuples, dicts and
        sets are checked when built (tuples never change after), lists before they are compared
        or searched, and ``forbidden`` (the id of a list being added to) catches cycles.
        """
        if not isinstance(obj, CONTAINERS):
            return
        if id(obj) == forbidden:
            raise SandboxRefused("a list, tuple or dict cannot contain itself")
        budget = self.limits.max_sequence_items
        max_depth = self.limits.max_nesting_depth
        memo: dict[int, int] = {}
        keep: list[Any] = []  # keeps ids in memo from being reused while we walk
        on_path = {id(obj)}
        # frame: [container, iterator over its container children, size so far]
        stack: list[list[Any]] = [self._frame(obj)]
        steps = 0
        while stack:
            frame = stack[-1]
            if frame[2] > budget:
                break
            child = next(frame[1], _END)
            steps += 1
            if steps % 1024 == 0:
                self.check_deadline()
            if child is _END:
                stack.pop()
                on_path.discard(id(frame[0]))
                memo[id(frame[0])] = frame[2]
                keep.append(frame[0])
                if stack:
                    stack[-1][2] += frame[2] - 1  # the child was already counted as one item
                continue
            cid = id(child)
            if cid in on_path or cid == forbidden:
                raise SandboxRefused("a list, tuple or dict cannot contain itself")
            if cid in memo:
                frame[2] += memo[cid] - 1
                continue
            if len(stack) >= max_depth:
                raise over_limit(
                    f"lists nested {len(stack) + 1} deep", self.limits, "max_nesting_depth"
                )
            on_path.add(cid)
            stack.append(self._frame(child))
        if memo.get(id(obj), budget + 1) > budget:
            raise over_limit(
                f"nested lists/tuples/dicts of more than {budget} items in total",
                self.limits,
                "max_sequence_items",
            )

    @staticmethod
    def _frame(obj: Any) -> list[Any]:
        """A container's own size (1 + items) and its container children to walk.

        The type scan runs at C speed, so flat lists cost almost nothing to check.
        """
        items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        types = set(map(type, items))
        if any(issubclass(t, CONTAINERS) for t in types):
            nested = iter([item for item in items if isinstance(item, CONTAINERS)])
        else:
            nested = iter(())
        return [obj, nested, 1 + len(items)]

    # -- memory ------------------------------------------------------------------------------------

    def track(self, obj: Any) -> None:
        """Count the memory of a tensor/array (and its grad) and enforce ``max_total_bytes``."""
        if isinstance(obj, torch.Tensor):
            self.check_elements(obj.numel())
            self.memory.add(obj)
            grad = obj.grad if obj.is_leaf else None
            if grad is not None:
                self.memory.add(grad)
        elif isinstance(obj, np.ndarray):
            if obj.dtype.kind not in ARRAY_KINDS:
                raise TypeError(f"arrays of dtype {obj.dtype} are not supported in this sandbox")
            self.check_elements(obj.size, "array")
            self.memory.add(obj)
        else:
            return
        self.check_memory()

    def check_memory(self) -> None:
        limit = self.limits.max_total_bytes
        if self.memory.total > limit:
            gc.collect()  # reference cycles may hold tensors that are already unreachable
            if self.memory.total > limit:
                raise over_limit(
                    f"tensors and arrays holding {self.memory.total} bytes",
                    self.limits,
                    "max_total_bytes",
                )

    def check_result(self, obj: Any) -> Any:
        """Check any value a call or operator produced; returns it unchanged."""
        if isinstance(obj, torch.Tensor | np.ndarray):
            self.track(obj)
        elif isinstance(obj, bool):
            pass
        elif isinstance(obj, int):
            self.check_int(obj)
        elif isinstance(obj, str):
            self.check_str_len(len(obj))
        elif isinstance(obj, list):
            # Lists are walked when compared or searched (see check_container), not on every
            # `ys = ys + [y]`, which would make building a list quadratic.
            self.check_seq_len(len(obj))
            self._track_items(obj)
        elif isinstance(obj, CONTAINERS):
            self.check_container(obj)
            if isinstance(obj, tuple):
                self._track_items(obj)
        elif isinstance(obj, torch.nn.Module):
            for param in obj.parameters():
                self.track(param)
        return obj

    def _track_items(self, items: list[Any] | tuple[Any, ...]) -> None:
        for item in items[:64]:
            if isinstance(item, torch.Tensor | np.ndarray):
                self.track(item)

    def check_added(self, container: Any, items: Iterable[Any]) -> None:
        """Items about to go into ``container``: each bounded, none containing the container."""
        for item in items:
            self.check_container(item, forbidden=id(container))

    # -- iteration ---------------------------------------------------------------------------------

    def bounded(self, iterable: Any, limit: int | None = None) -> list[Any]:
        """Materialise an iterable the program gave, refusing more than ``limit`` items."""
        limit = self.limits.max_sequence_items if limit is None else limit
        length = _known_len(iterable)
        if length is not None and length > limit:
            raise over_limit(f"a sequence of {length} items", self.limits, "max_sequence_items")
        items: list[Any] = []
        for item in iter_checked(iterable):
            items.append(item)
            if len(items) > limit:
                raise over_limit(
                    f"a sequence of more than {limit} items", self.limits, "max_sequence_items"
                )
            if len(items) % 1024 == 0:
                self.check_deadline()
        return items


def _known_len(obj: Any) -> int | None:
    if isinstance(obj, range | list | tuple | dict | str | set | frozenset | np.ndarray):
        try:
            return len(obj)
        except (OverflowError, TypeError):
            return None
    if isinstance(obj, torch.Tensor):
        return obj.shape[0] if obj.dim() else None
    return None


ITERABLE_TYPES: tuple[type, ...] = (
    range,
    list,
    tuple,
    dict,
    str,
    set,
    frozenset,
    torch.Tensor,
    np.ndarray,
    enumerate,
    zip,
    reversed,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
    type(iter([])),
    type(iter(())),
    type(iter(range(0))),
)


def iter_checked(obj: Any) -> Iterator[Any]:
    """``iter(obj)`` for the kinds of values a program may loop over."""
    if not isinstance(obj, ITERABLE_TYPES):
        raise TypeError(f"'{type(obj).__name__}' object is not iterable (in this sandbox)")
    return iter(cast(Iterable[Any], obj))


# -- shapes ----------------------------------------------------------------------------------------


def shape_of(value: Any) -> Shape | None:
    """Shape a value has as an operand of a tensor/array op; None when it is not array-like."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, np.ndarray):
        return tuple(value.shape)
    if isinstance(value, bool | int | float | np.generic):
        return ()
    if isinstance(value, list | tuple | range):
        dims: list[int] = []
        current: Any = value
        while isinstance(current, list | tuple) and len(dims) < 64:
            dims.append(len(current))
            if not current:
                return tuple(dims)
            current = current[0]
        if isinstance(current, torch.Tensor | np.ndarray):
            dims.extend(current.shape)
        elif isinstance(current, range):
            dims.append(range_len(current))
        return tuple(dims)
    return None


def range_len(r: range) -> int:
    """``len(r)``, which raises OverflowError past sys.maxsize."""
    try:
        return len(r)
    except OverflowError:
        return 2**63


def broadcast_shape(shapes: Iterable[Shape]) -> Shape | None:
    """NumPy/PyTorch broadcasting of shapes; None when they do not broadcast (the op will raise)."""
    result: list[int] = []
    for shape in shapes:
        for i, size in enumerate(reversed(shape)):
            if i == len(result):
                result.insert(0, size)
                continue
            j = len(result) - 1 - i
            if result[j] == size or size == 1:
                continue
            if result[j] == 1:
                result[j] = size
            else:
                return None
    return tuple(result)


def matmul_shape(a: Shape, b: Shape) -> Shape | None:
    """Result shape of ``a @ b`` by torch.matmul's rules, None when the shapes do not match."""
    if not a or not b:
        return None
    if len(a) == 1 and len(b) == 1:
        return () if a[0] == b[0] else None
    if len(a) == 1:
        a_batch: Shape = ()
        n, k = 1, a[0]
        squeeze_n = True
    else:
        a_batch, (n, k) = a[:-2], a[-2:]
        squeeze_n = False
    if len(b) == 1:
        b_batch: Shape = ()
        k2, m = b[0], 1
        squeeze_m = True
    else:
        b_batch, (k2, m) = b[:-2], b[-2:]
        squeeze_m = False
    if k != k2:
        return None
    batch = broadcast_shape([a_batch, b_batch])
    if batch is None:
        return None
    return batch + (() if squeeze_n else (n,)) + (() if squeeze_m else (m,))


def numel(shape: Shape) -> int:
    return math.prod(shape)


def size_from_args(args: tuple[Any, ...], kwargs: dict[str, Any], key: str = "size") -> Shape:
    """The size of ``torch.ones(2, 3)``, ``torch.ones((2, 3))`` or ``torch.ones(size=[2, 3])``."""
    if key in kwargs:
        raw: Any = kwargs[key]
    elif len(args) == 1 and isinstance(args[0], list | tuple):
        raw = args[0]
    else:
        raw = args
    if not isinstance(raw, list | tuple):
        raw = (raw,)
    try:
        return tuple(operator.index(d) for d in raw)
    except TypeError:
        raise TypeError(
            f"sizes must be whole numbers, got {', '.join(type(d).__name__ for d in raw)}"
        ) from None


def data_elements(guard: Guard, data: Any, what: str) -> int:
    """Elements a tensor/array built from ``data`` (nested lists of numbers) will have."""
    if isinstance(data, torch.Tensor | np.ndarray):
        return int(data.size if isinstance(data, np.ndarray) else data.numel())
    count = 0
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
            count += 1  # an empty list still costs a visit
            if count > guard.limits.max_tensor_elements:
                break
            continue
        if isinstance(item, str | bytes):
            raise TypeError(f"{what} cannot be built from text in this sandbox")
        if isinstance(item, range):
            count += range_len(item)
        elif isinstance(item, torch.Tensor):
            count += item.numel()
        elif isinstance(item, np.ndarray):
            count += item.size
        else:
            count += 1
        if count > guard.limits.max_tensor_elements:
            break
    return count


def arange_count(start: Any, end: Any, step: Any) -> int:
    """Elements of ``arange(start, end, step)``, computed without allocating."""
    try:
        a, b, s = float(start), float(end), float(step)
    except (TypeError, ValueError):
        return 0  # let the library raise its own error
    if s == 0 or not all(math.isfinite(v) for v in (a, b, s)):
        return 0  # PyTorch and NumPy refuse these ranges themselves
    return max(math.ceil((b - a) / s), 0)
