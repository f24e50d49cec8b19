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
import torch.utils.data as torch_data

from app.sandbox.guards import CONTAINERS, storage_range
from app.sandbox.limits import SandboxLimits

# How much of a container or string one Value shows; the rest is cut with "truncated": true.
MAX_ITEMS_SHOWN = 100
MAX_DEPTH_SHOWN = 6
MAX_TEXT_SHOWN = 2_000
# Values (nested items, tensors) one variable may show in total.
MAX_NODES_PER_VARIABLE = 2_000
# Object names (``ref``) one run hands out before starting over: at most this many ids kept.
MAX_REFS = 50_000
# Attributes of one learner object, parameters and layers of one module a Value shows.
MAX_ATTRIBUTES_SHOWN = 32
MAX_LAYERS_SHOWN = 64


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
        self._refs: dict[int, str] = {}
        # id(module) -> (what its layers, parameters and attributes were, its Value, numbers)
        self._containers: dict[int, tuple[tuple[Any, ...], dict[str, Any], int]] = {}
        self._modules: dict[int, tuple[tuple[Any, ...], dict[str, Any], int]] = {}

    def ref(self, obj: Any) -> str:
        """A short name for the object itself (``"o3"``), the same for every name bound to it:
        what a step's view marks as one object (Python Tutor's arrows).

        Keyed by ``id``: unique among the objects alive at one step, which is where a page
        compares them (no reference is kept, so recording never keeps an object alive).
        """
        refs = self._refs
        token = refs.get(id(obj))
        if token is None:
            if len(refs) >= MAX_REFS:
                refs.clear()
            token = refs[id(obj)] = f"o{len(refs) + 1}"
        return token

    def variables(self, env: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every variable's Value; raises RecordingBudgetExceeded past the total budget."""
        return {name: self.variable(value) for name, value in env.items()}

    def variable(self, obj: Any) -> dict[str, Any]:
        """One variable's Value (at most MAX_NODES_PER_VARIABLE nodes of it).

        A container of immutable items (a list of losses, a dict of rows) is the same Value
        while it holds the same item objects: kept, not walked again at every step.
        """
        self._nodes_left = MAX_NODES_PER_VARIABLE
        if type(obj) not in _PLAIN_CONTAINERS:
            return self.value(obj)
        key = _items_key(obj)
        if key is None:
            return self.value(obj)
        cached = self._containers.get(id(obj))
        if cached is not None and cached[0] == key and cached[1]["ref"] == self.ref(obj):
            self._count(cached[2])
            return cached[1]
        before = self.numbers
        value = self.value(obj)
        if len(self._containers) >= MAX_REFS:
            self._containers.clear()
        self._containers[id(obj)] = (key, value, self.numbers - before)
        return value

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
            result = {"kind": "object", "repr": text, "class": type(obj).__qualname__}
            result["ref"] = self.ref(obj)
            return {**result, **self.attributes(obj, depth, path)}
        if isinstance(obj, torch.nn.Module):
            return self.module(obj, learner is not None, depth, path)
        if isinstance(obj, torch.optim.Optimizer):
            return self.optimizer(obj)
        if isinstance(obj, torch_data.DataLoader):
            return self.loader(obj, depth, path)
        if isinstance(obj, torch_data.TensorDataset | torch_data.Subset):
            return self.dataset(obj, depth, path)
        if isinstance(obj, CONTAINERS) and not _is_structseq(obj):
            return {**self.container(obj, depth, path), "ref": self.ref(obj)}
        text = short_repr(obj)
        self._count(len(text))
        return {"kind": "other", "repr": text}

    def attributes(self, obj: Any, depth: int, path: tuple[int, ...]) -> dict[str, Any]:
        """A learner object's own attributes (its ``__dict__``, read without running its code),
        as ``{"attributes": {name: Value}}``, the first MAX_ATTRIBUTES_SHOWN of them."""
        try:
            own = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            return {}
        names = [n for n in own if not n.startswith("_") and n != "training"]
        if depth >= MAX_DEPTH_SHOWN or id(obj) in path:
            return {"attributes": {}, "attributes_truncated": bool(names)}
        inner = (*path, id(obj))
        shown = names[: min(MAX_ATTRIBUTES_SHOWN, max(self._nodes_left, 0))]
        values = {name: self.value(own[name], depth + 1, inner) for name in shown}
        return {"attributes": values, "attributes_truncated": len(names) > len(shown)}

    def module(
        self, obj: torch.nn.Module, learner: bool, depth: int, path: tuple[int, ...]
    ) -> dict[str, Any]:
        """An ``nn.Module``: PyTorch's repr, its parameters, and its layer tree (each layer's
        type, its own parameter count and whether they all require grad).

        A step serializes every variable, and a model between optimizer steps is unchanged: its
        costly part is kept while its layers, parameters and grads are the same objects at the
        same versions (a parameter changed in place bumps its ``_version``).
        """
        plain = _plain_attributes_key(obj) if learner else ()
        key = (_module_key(obj), bool(obj.training), plain)
        cached = self._modules.get(id(obj))
        if cached is not None and cached[0] == key and plain is not None:
            self._count(cached[2])
            return cached[1]
        before = self.numbers
        result: dict[str, Any] = {
            **self._module_part(obj),
            "ref": self.ref(obj),
            "training": bool(obj.training),
        }
        if learner:  # what the learner's own class keeps besides layers (self.hidden = 8)
            attributes = self.attributes(obj, depth, path)
            kept = {
                name: value
                for name, value in attributes.get("attributes", {}).items()
                if value.get("kind") not in ("module", "tensor")
            }
            if kept:
                result["attributes"] = kept
        if len(self._modules) >= MAX_REFS:
            self._modules.clear()
        self._modules[id(obj)] = (key, result, self.numbers - before)
        return result

    def _module_part(self, obj: torch.nn.Module) -> dict[str, Any]:
        """What a module's Value shows that only its layers and parameters decide."""
        text = module_text(obj)[:MAX_TEXT_SHOWN]
        self._count(len(text))
        layers = []
        for name, layer in itertools.islice(obj.named_modules(), MAX_LAYERS_SHOWN):
            own = list(layer._parameters.values())
            params = [p for p in own if p is not None]
            layers.append(
                {
                    "name": name,
                    "type": type(layer).__qualname__,
                    "parameters": sum(p.numel() for p in params),
                    "requires_grad": all(p.requires_grad for p in params) if params else None,
                }
            )
        self._count(4 * len(layers))
        params = list(itertools.islice(obj.named_parameters(), MAX_ATTRIBUTES_SHOWN))
        return {
            "kind": "module",
            "repr": text,
            "parameters": {name: self.tensor(p) for name, p in params},
            "class": type(obj).__qualname__,
            "layers": layers,
            "parameter_count": sum(p.numel() for p in obj.parameters()),
        }

    def optimizer(self, obj: torch.optim.Optimizer) -> dict[str, Any]:
        """An optimizer: its parameter groups (their settings and how many parameters each holds)
        and how many parameters have state yet (momentum buffers, Adam's moments)."""
        groups = []
        for group in obj.param_groups[:MAX_ATTRIBUTES_SHOWN]:
            settings: dict[str, Any] = {}
            for key, setting in group.items():
                if key == "params":
                    continue
                if isinstance(setting, bool) or setting is None:
                    settings[key] = setting
                elif isinstance(setting, int | float):
                    settings[key] = clean_number(setting)
                elif isinstance(setting, tuple) and all(
                    isinstance(v, int | float) for v in setting
                ):
                    settings[key] = [clean_number(v) for v in setting]
            groups.append(
                {
                    "parameters": len(group["params"]),
                    "elements": sum(p.numel() for p in group["params"]),
                    "settings": settings,
                }
            )
        state_keys = sorted({k for st in obj.state.values() for k in st})[:MAX_ATTRIBUTES_SHOWN]
        text = short_repr(obj)
        self._count(4 * len(groups) + len(state_keys) + len(text))
        return {
            "kind": "optimizer",
            "class": type(obj).__qualname__,
            "repr": text,
            "ref": self.ref(obj),
            "groups": groups,
            "state": {"parameters": len(obj.state), "keys": state_keys},
        }

    def dataset(self, obj: Any, depth: int, path: tuple[int, ...]) -> dict[str, Any]:
        """A TensorDataset or a Subset: its length and its first item, when no learner code
        has to run to know them (a Subset of a learner's Dataset shows its length only)."""
        result: dict[str, Any] = {
            "kind": "dataset",
            "class": library_name(obj),
            "repr": f"<{library_name(obj)}>",
            "ref": self.ref(obj),
            "length": None,
        }
        first = _first_item(obj)
        length = _builtin_length(obj)
        if length is not None:
            result["length"] = length
        if first is not None and depth < MAX_DEPTH_SHOWN:
            result["first"] = self.value(first, depth + 1, (*path, id(obj)))
        return result

    def loader(
        self, obj: torch_data.DataLoader[Any], depth: int, path: tuple[int, ...]
    ) -> dict[str, Any]:
        """A DataLoader: its batch size, shuffling and dataset (batches per epoch when the
        dataset's length is known without running learner code)."""
        length = _builtin_length(obj.dataset)
        batch = obj.batch_size
        batches = None
        if length is not None and batch:
            batches = length // batch if obj.drop_last else -(-length // batch)
        # The dataset as a name for it (its own variable shows it whole): its class, length, ref.
        data = obj.dataset
        dataset = {
            "kind": "dataset",
            "class": library_name(data),
            "repr": f"<{library_name(data)}>",
            "ref": self.ref(data),
            "length": length,
        }
        return {
            "kind": "dataloader",
            "class": library_name(obj),
            "repr": f"<DataLoader batch_size={batch}>",
            "ref": self.ref(obj),
            "batch_size": batch,
            "shuffle": isinstance(obj.sampler, torch_data.RandomSampler),
            "drop_last": bool(obj.drop_last),
            "batches": batches,
            "dataset": dataset,
        }

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


_PLAIN_CONTAINERS = (list, tuple, dict, set, frozenset)


def _items_key(obj: Any, depth: int = 0) -> tuple[Any, ...] | None:
    """The identity of every item (and key) of a container whose items are immutable or plain
    containers of such (a dict of lists of losses), so an equal key means the same Value; None
    when an item can change in place some other way (it must be walked)."""
    if len(obj) > MAX_ITEMS_SHOWN * 20 or depth > 3:
        return None
    items = itertools.chain.from_iterable(obj.items()) if isinstance(obj, dict) else obj
    parts: list[Any] = [type(obj), len(obj)]
    for item in items:
        if is_immutable(item):
            parts.append(id(item))
        elif type(item) in _PLAIN_CONTAINERS:
            inner = _items_key(item, depth + 1)
            if inner is None:
                return None
            parts.append((id(item), inner))
        else:
            return None
    return tuple(parts)


def _module_key(module: torch.nn.Module) -> tuple[Any, ...]:
    """What decides a module's layers and parameters as a Value: each layer and parameter object,
    the parameter's version (in-place updates bump it), requires_grad, and its grad's object and
    version."""
    parts: list[Any] = [
        # A library layer's settings show in its repr (Dropout(p=0.5)); a learner's never run.
        (name, id(layer), type(layer),
         "" if getattr(type(layer), "_sandbox_class", None) else layer.extra_repr())
        for name, layer in itertools.islice(module.named_modules(), MAX_LAYERS_SHOWN)
    ]  # fmt: skip
    for p in module.parameters():
        grad = p.grad
        parts.append(
            (id(p), p._version, p.requires_grad, p.shape, id(grad) if grad is not None else 0,
             grad._version if grad is not None else -1)
        )  # fmt: skip
    return tuple(parts)


def _plain_attributes_key(module: torch.nn.Module) -> tuple[Any, ...] | None:
    """The identity of a learner module's own plain attributes (``self.hidden = 8``), or None
    when one of them could change in place (a list): then its Value is made afresh each time."""
    parts: list[Any] = []
    for name, value in object.__getattribute__(module, "__dict__").items():
        if name.startswith("_") or name == "training" or isinstance(value, torch.Tensor):
            continue
        if not is_immutable(value):
            return None
        parts.append((name, id(value)))
    return tuple(parts)


def library_name(obj: Any) -> str:
    """The class a learner knows an object by: its own class for a learner's, otherwise the
    first PyTorch class it is (``DataLoader``, not the sandbox's subclass of it)."""
    kind = type(obj)
    if getattr(kind, "_sandbox_class", None) is not None:
        return kind.__qualname__
    for base in kind.__mro__:
        if base.__module__.startswith("torch"):
            return base.__qualname__
    return kind.__qualname__


def _builtin_length(dataset: Any) -> int | None:
    """A TensorDataset's or Subset's length, read without running learner code (None for a
    learner's own Dataset, whose ``__len__`` is the program's)."""
    if isinstance(dataset, torch_data.TensorDataset):
        return int(dataset.tensors[0].shape[0]) if dataset.tensors else 0
    if isinstance(dataset, torch_data.Subset):
        return len(dataset.indices)
    return None


def _first_item(dataset: Any, depth: int = 0) -> Any:
    """A TensorDataset's (or a Subset of one's) first item; None when learner code would run."""
    if isinstance(dataset, torch_data.TensorDataset):
        if not dataset.tensors or dataset.tensors[0].shape[0] == 0:
            return None
        return tuple(t[0] for t in dataset.tensors)
    if isinstance(dataset, torch_data.Subset) and depth < 8 and len(dataset.indices):
        inner = dataset.dataset
        if isinstance(inner, torch_data.TensorDataset):
            index = int(dataset.indices[0])
            if 0 <= index < (_builtin_length(inner) or 0):
                return tuple(t[index] for t in inner.tensors)
        if isinstance(inner, torch_data.Subset):
            return _first_item(
                torch_data.Subset(inner.dataset, [inner.indices[int(dataset.indices[0])]]),
                depth + 1,
            )
    return None


def _is_library_tuple(obj: Any) -> bool:
    """A named tuple PyTorch returns with its own repr, such as ``load_state_dict``'s
    ``<All keys matched successfully>``: printed as PyTorch prints it, not as a tuple."""
    kind = type(obj)
    return isinstance(obj, tuple) and kind is not tuple and kind.__module__.startswith("torch")


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
    if (
        not isinstance(obj, CONTAINERS)
        or _is_structseq(obj)
        or isinstance(obj, torch.Size)
        or _is_library_tuple(obj)
    ):
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
