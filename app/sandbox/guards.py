"""Checks that keep a learner program inside its limits, done before anything big is allocated.

Every size a program controls is estimated from shapes and lengths first (a creator's size
arguments, the broadcast shape of an elementwise op, a matmul's result, the length of a repeated
list), so ``torch.ones(100000, 100000)`` is refused without allocating. A size may be given as any
whole number (int, bool, NumPy integer, one-element integer tensor or 0-d array): ``as_size``
turns it into the Python int that is both checked and handed to the library. Results are checked
again afterwards, and live tensor/array memory is tracked through weak references to the memory
blocks themselves, so it counts wherever the program keeps them (see ``MemoryTracker``).
"""

from __future__ import annotations

import gc
import itertools
import math
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import numpy as np
import torch

from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused, over_limit

Shape = tuple[int, ...]

CONTAINERS = (list, tuple, dict, set, frozenset)
# The number PyTorch gives AccumulateGrad nodes (leaves) instead of a creation order.
_LEAF_NODE = 2**64 - 1
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
    root = _array_root(obj)
    return int(root.__array_interface__["data"][0]), int(root.nbytes)


def _array_root(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


_SAVED_NAMES: dict[type, tuple[str, ...]] = {}


def _saved_names(node: Any) -> tuple[str, ...]:
    """The ``_saved_*`` attributes (what it keeps for backward) of an autograd node's type."""
    kind = type(node)
    names = _SAVED_NAMES.get(kind)
    if names is None:
        names = tuple(name for name in dir(node) if name.startswith("_saved_"))
        _SAVED_NAMES[kind] = names
    return names


class MemoryTracker:
    """Bytes of all live tensors and arrays the program has touched, counted once per block.

    What is watched is the memory block itself: a tensor's ``UntypedStorage`` (PyTorch keeps one
    Python object per storage for as long as the storage lives) or an array's base array. So a
    block stays counted while anything holds it, wherever that is: a variable, a dict or nested
    list, a view, ``.grad``, an optimizer's state or the autograd graph (which keeps the tensors it
    saved for backward, see ``Guard.track``), and stops counting when it is freed.
    """

    def __init__(self) -> None:
        self.total = 0
        self._entries: dict[int, list[Any]] = {}  # start -> [nbytes, {id: weakref}]

    def add(self, obj: torch.Tensor | np.ndarray) -> None:
        """Count ``obj``'s memory block until the block is freed."""
        holder: Any
        if isinstance(obj, torch.Tensor):
            holder = obj.untyped_storage()
            start, nbytes = holder.data_ptr(), holder.nbytes()
        else:
            holder = _array_root(obj)
            start, nbytes = int(holder.__array_interface__["data"][0]), int(holder.nbytes)
        entry = self._entries.get(start)
        if entry is not None and nbytes <= entry[0] and id(holder) in entry[1]:
            return  # counted already: the common case, checked first
        if start == 0 or nbytes == 0:
            return
        if entry is None:
            entry = [nbytes, {}]
            self._entries[start] = entry
            self.total += nbytes
        elif nbytes > entry[0]:
            self.total += nbytes - entry[0]
            entry[0] = nbytes
        refs: dict[int, weakref.ref[Any]] = entry[1]
        key = id(holder)
        if key not in refs:
            refs[key] = weakref.ref(holder, self._forget(start, key))

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


def _no_interpreter(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    raise RuntimeError("this guard has no interpreter to call back into")


class Guard:
    """Limits, clock, counters and captured output of one program run."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.deadline = self.started + limits.max_seconds
        self.memory = MemoryTracker()
        # Newest autograd node already searched for saved tensors (nodes are numbered in order).
        self._graph_mark = -1
        # Non-leaf tensors that asked for their .grad (retain_grad), by id.
        self._retaining: dict[int, weakref.ref[torch.Tensor]] = {}
        self.statements = 0
        self.stdout: list[str] = []
        self.stdout_chars = 0
        self.stdout_dropped = False
        # Per-program state of the libraries a program imported (its in-memory files, figures,
        # TensorBoard log), by key: see ``extra``. ``outputs`` collects what they hand back.
        self.extras: dict[str, Any] = {}
        # Notices a library adds while the program runs ("num_workers=2 ran in-process").
        self.notices: list[str] = []
        # Where the program is: the line of the statement running and the steps recorded so far
        # (a figure drawn there keeps both), kept up to date by the interpreter.
        self.line = 1
        self.step = 0
        # Calls any value the program may call (a learner function or class, a SafeFunction, a
        # module), through the interpreter: set by it, used by libraries that call back (map,
        # sorted's key, transforms.Lambda, a LambdaLR's lambda).
        self.call: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any] = _no_interpreter

    def extra(self, key: str, factory: Callable[[], Any]) -> Any:
        """This program's state for library ``key``, made by ``factory`` on first use."""
        value = self.extras.get(key)
        if value is None:
            value = self.extras[key] = factory()
        return value

    def notice(self, text: str) -> None:
        """A notice for the answer, once however often the program triggers it."""
        if text not in self.notices:
            self.notices.append(text)

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

    def check_size(self, shape: Any, what: str = "tensor") -> None:
        """A converted shape (see ``as_shape``); one the library will refuse is let through."""
        count = shape_elements(shape)
        if count is not None:
            self.check_elements(count, what)

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
        """Count the memory of a tensor/array, its grad and what its autograd graph saved, and
        enforce ``max_total_bytes``."""
        self._count(obj)
        self.check_memory()

    def _count(self, obj: Any) -> None:
        """``track`` without the final check, for counting many tensors before one check."""
        if isinstance(obj, torch.Tensor):
            self.check_elements(obj.numel())
            self.memory.add(obj)
            node = obj.grad_fn  # None for a leaf
            grad = obj.grad if node is None or obj.retains_grad else None
            if grad is not None:
                self.memory.add(grad)
                if grad.grad_fn is not None:  # made by backward(create_graph=True)
                    self._track_saved(grad.grad_fn)
            if node is not None:
                self._track_saved(node)
        elif isinstance(obj, np.ndarray):
            if obj.dtype.kind not in ARRAY_KINDS:
                raise TypeError(f"arrays of dtype {obj.dtype} are not supported in this sandbox")
            self.check_elements(obj.size, "array")
            self.memory.add(obj)

    def _track_saved(self, root: Any) -> None:
        """Count the tensors new autograd nodes saved for backward.

        PyTorch makes some of them inside one call where no variable ever holds them (the
        log-probabilities of ``F.cross_entropy``), and the graph keeps them as long as its result
        lives. Nodes are numbered in the order they are made, so only nodes newer than the newest
        one already searched are visited: each node once, right after the call that made it.
        """
        mark = self._graph_mark
        if root._sequence_nr() <= mark:
            return
        stack = [root]
        seen = {id(root)}
        newest = mark
        visited = 0
        while stack:
            node = stack.pop()
            visited += 1
            if visited % 1024 == 0:
                self.check_deadline()
            newest = max(newest, node._sequence_nr())
            for name in _saved_names(node):
                try:
                    value = getattr(node, name)
                except RuntimeError:  # already freed by a backward pass
                    continue
                for item in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(item, torch.Tensor):
                        self.memory.add(item)
            for child, _ in node.next_functions:
                if child is None or id(child) in seen:
                    continue
                number = child._sequence_nr()
                if number <= mark or number == _LEAF_NODE:
                    continue
                seen.add(id(child))
                stack.append(child)
        self._graph_mark = newest

    def retain_grad(self, tensor: torch.Tensor) -> None:
        """Remember a non-leaf tensor whose .grad a later backward pass will fill."""
        key = id(tensor)

        def forget(_: weakref.ref[torch.Tensor]) -> None:
            self._retaining.pop(key, None)

        self._retaining[key] = weakref.ref(tensor, forget)

    def track_grads(self, root: torch.Tensor, inputs: Any = None) -> None:
        """After ``root.backward()``: count the .grad PyTorch made for each leaf of root's graph
        (or of ``inputs``) and for tensors that retain their grad. The walk visits each node of
        the graph once, no more than the backward pass itself did."""
        if root.grad_fn is None:
            self._count(root)
        else:
            stack = [root.grad_fn]
            seen = {id(root.grad_fn)}
            visited = 0
            while stack:
                node = stack.pop()
                visited += 1
                if visited % 1024 == 0:
                    self.check_deadline()
                variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf
                if isinstance(variable, torch.Tensor):
                    self._count(variable)
                for child, _ in node.next_functions:
                    if child is not None and id(child) not in seen:
                        seen.add(id(child))
                        stack.append(child)
        for tensor in inputs if isinstance(inputs, list | tuple) else (inputs,):
            self._count(tensor)
        for ref in list(self._retaining.values()):
            tensor = ref()
            if tensor is not None and tensor.grad is not None:
                self._count(tensor.grad)
        self.check_memory()

    def track_module(self, module: torch.nn.Module) -> None:
        """Count a layer's parameters, buffers and their grads."""
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            self._count(tensor)
        self.check_memory()

    def track_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Count an optimizer's state (Adam's averages, SGD's momentum), made by ``step()``."""
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    self.memory.add(value)
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
            self.track_module(obj)
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
    type(reversed([])),
    type(iter("")),
    type(iter({})),
    type(iter(set())),
    type(iter({}.values())),
    type(iter({}.items())),
)


# Iterables the libraries hand out (a DataLoader, its iterator, an open file): see register.
_REGISTERED_ITERABLES: list[type] = []


def register_iterable(kind: type) -> None:
    """Let programs loop over instances of ``kind`` (whose iteration runs no program code
    outside the interpreter's checks)."""
    global ITERABLE_TYPES
    _REGISTERED_ITERABLES.append(kind)
    ITERABLE_TYPES = (*ITERABLE_TYPES, kind)


def check_iterable(obj: Any) -> None:
    """Refuse a value a program may not loop over, without starting to loop (making an iterator
    of a DataLoader draws from the RNG)."""
    if not isinstance(obj, ITERABLE_TYPES) and not _learner_iterable(obj):
        raise TypeError(f"'{type(obj).__name__}' object is not iterable (in this sandbox)")


def iter_checked(obj: Any) -> Iterator[Any]:
    """``iter(obj)`` for the kinds of values a program may loop over (and learner objects that
    define ``__iter__`` or ``__getitem__``, whose methods run under the interpreter)."""
    if not isinstance(obj, ITERABLE_TYPES) and not _learner_iterable(obj):
        raise TypeError(f"'{type(obj).__name__}' object is not iterable (in this sandbox)")
    return iter(cast(Iterable[Any], obj))


def _learner_iterable(obj: Any) -> bool:
    learner = getattr(type(obj), "_sandbox_class", None)
    return learner is not None and learner.iterable


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


def size_int(value: Any) -> int | None:
    """``value`` as a Python int when it is a whole number, else None.

    Whole numbers are what PyTorch and NumPy accept as a size: int, bool (0 or 1), a NumPy
    integer or bool, a one-element integer (or bool) tensor and a 0-d integer array.
    """
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and not (value.is_floating_point() or value.is_complex()):
            return int(value.item())
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biu":
        return int(value)
    return None


def _refused_as_size(value: Any) -> bool:
    """Values PyTorch and NumPy refuse as a size themselves, before allocating anything.

    These go to the library unchanged so the learner sees its own message ("must be tuple of
    ints, not float"); the sandbox's tests check that each is refused.
    """
    if value is None or isinstance(value, float | str | np.floating):
        return True
    # A tensor or array size_int did not take: floating point, or more than one element.
    return isinstance(value, torch.Tensor | np.ndarray)


def as_size(value: Any, what: str) -> Any:
    """One size argument as the Python int to check and to pass on (see ``size_int``).

    A value the library refuses itself is returned unchanged; any other non-number is refused
    here, since only a checked int may reach an allocation.
    """
    number = size_int(value)
    if number is not None:
        return number
    if _refused_as_size(value):
        return value
    raise TypeError(f"{what} must be a whole number, not {type(value).__name__}")


def as_shape(raw: Any, what: str, arrays: bool = False) -> Any:
    """A shape argument with every dimension converted by ``as_size``.

    A list, tuple or torch.Size becomes a tuple; a single number stays one size. With
    ``arrays`` a 1-d integer array counts as the list of dimensions, as NumPy reads it.
    """
    if isinstance(raw, list | tuple):
        return tuple(as_size(d, what) for d in raw)
    if arrays and isinstance(raw, np.ndarray) and raw.ndim == 1 and raw.dtype.kind in "biu":
        return tuple(int(d) for d in raw.tolist())
    return as_size(raw, what)


def shape_elements(shape: Any) -> int | None:
    """Elements of a converted shape (a tuple of sizes or one size); None when a dimension is
    not a whole number (the library will refuse it)."""
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not all(isinstance(d, int) for d in dims):
        return None
    return math.prod(max(d, 0) for d in dims)


def varargs_shape(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> tuple[Any, Any]:
    """The converted size of ``f(2, 3)``, ``f((2, 3))`` or ``f(size=[2, 3])`` and the args to pass.

    Returns ``(shape, args)``; a ``size=`` keyword is converted in ``kwargs`` in place.
    """
    if "size" in kwargs:
        kwargs["size"] = shape = as_shape(kwargs["size"], what)
        return shape, args
    if len(args) == 1 and isinstance(args[0], list | tuple):
        shape = as_shape(args[0], what)
        return shape, (shape,)
    shape = tuple(as_size(d, what) for d in args)
    return shape, shape


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


def as_number(value: Any) -> Any:
    """An arange end or step as a number: a one-element tensor becomes a Python number, a 0-d
    array its NumPy scalar (which keeps its dtype); anything else is left unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def arange_count(start: Any, end: Any, step: Any) -> int:
    """Elements of ``arange(start, end, step)``, computed without allocating.

    Exact for whole numbers; 0 for values the library refuses itself (a zero step, nan, a
    tensor of several elements); over any limit when the range is wider than a float can say.
    """
    if all(isinstance(v, int | np.integer) for v in (start, end, step)):
        a, b, s = int(start), int(end), int(step)
        return max(-((a - b) // s), 0) if s else 0
    try:
        a_f, b_f, s_f = float(start), float(end), float(step)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return 0  # let the library raise its own error
    if s_f == 0 or not all(math.isfinite(v) for v in (a_f, b_f, s_f)):
        return 0  # PyTorch and NumPy refuse these ranges themselves
    count = (b_f - a_f) / s_f
    if not math.isfinite(count):
        return 2**63
    return max(math.ceil(count), 0)
