"""Data for learner programs: ``torch.utils.data``, ``torch.optim.lr_scheduler``, scikit-learn's
toy data and scalers, and Python's ``math``, each checked before the real library runs.

The real classes do the work: a ``DataLoader`` is PyTorch's own (batching, shuffle from torch's
global RNG or the program's ``torch.Generator``, ``drop_last``, default collate), so a seeded
script gets the batches plain PyTorch gives. The sandbox only freezes what a program could lie
about (a learner ``__len__``, asked once and bounded by ``max_sequence_items``), counts each batch
before and after it is collated, and calls learner functions (a ``collate_fn``, a ``LambdaLR``'s
lambda) through ``guard.call``. scikit-learn is imported on first use (about 1.5 s, given back to
the program's clock); its data sets ship inside the wheel, are loaded once per process and handed
out as copies. ``collections.OrderedDict`` is here too: it names the layers of an
``nn.Sequential``.
"""

from __future__ import annotations

import abc
import collections
import inspect
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.optim import lr_scheduler
from torch.utils import data as torch_data
from torch.utils.data._utils.collate import default_collate, default_convert

from app.sandbox.guards import Guard, data_elements, register_iterable, size_int
from app.sandbox.library import (
    NAMESPACES,
    Args,
    BaseClass,
    Kwargs,
    MethodImpl,
    Namespace,
    SafeFunction,
    register_type,
    type_phrase,
)
from app.sandbox.limits import SandboxRefused, over_limit
from app.sandbox.modules import MODULES, register
from app.sandbox.operators import binary
from app.sandbox.values import format_value

# Items of a batch walked when it is counted (a batch is a few tensors, or a list of them).
_BATCH_WALK_ITEMS = 10_000


def bind(qualname: str, signature: inspect.Signature, args: Args, kwargs: Kwargs) -> Kwargs:
    """Arguments by name as ``signature`` binds them, defaults filled, or Python's TypeError."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{qualname}() {exc}") from None
    bound.apply_defaults()
    values: Kwargs = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)  # fit(X, **fit_params): the extra keywords by name
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            values[name] = value
    return values


def signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    """A callable's signature without ``self`` (a class's is its ``__init__``'s)."""
    return inspect.signature(fn)


def _short(value: Any) -> str:
    return format_value(value, True, 60)[0]


def _learner_object(obj: Any) -> bool:
    return getattr(type(obj), "_sandbox_class", None) is not None


def _whole(value: Any, what: str) -> int:
    """A whole-number argument as a Python int (a float or anything else is a TypeError)."""
    number = None if isinstance(value, float) else size_int(value)
    if number is None:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return number


def _real(value: Any, what: str) -> float:
    """A number argument as a float."""
    if isinstance(value, bool | int | float | np.integer | np.floating):
        return float(value)
    raise TypeError(f"{what} must be a number, not {type(value).__name__}")


def _warnings_to_notices(guard: Guard, caught: list[warnings.WarningMessage]) -> None:
    """What plain Python would print as a warning becomes a notice of the answer."""
    for warning in caught:
        guard.notice(f"{warning.category.__name__}: {warning.message}")


# -- torch.utils.data ------------------------------------------------------------------------------


def dataset_length(guard: Guard, dataset: Any, what: str) -> int:
    """``len(dataset)``, asked once and bounded: a learner ``__len__`` may return anything."""
    # Python's own len(): its checks and messages for a __len__ that returns '5', -1 or 2.5; a
    # learner __len__ over max_sequence_items is stopped by the interpreter before this returns.
    length = len(dataset)
    limit = guard.limits.max_sequence_items
    if length > limit:
        raise over_limit(f"{what}: a Dataset of {length} items", guard.limits, "max_sequence_items")
    return length


def check_dataset(dataset: Any, what: str) -> None:
    """A torch Dataset (a learner subclass, TensorDataset, Subset), a learner object with
    ``__getitem__``, or a list, tuple, tensor or array: what a DataLoader can index."""
    kinds = (torch_data.Dataset, list, tuple, torch.Tensor, np.ndarray)
    if isinstance(dataset, kinds) or _learner_object(dataset):
        return
    raise TypeError(
        f"{what} takes a Dataset (a subclass of torch.utils.data.Dataset, a TensorDataset or a "
        f"Subset), not {type_phrase(dataset)}"
    )


def _batch_elements(guard: Guard, samples: Any) -> int:
    """Elements the default collate will stack from these samples (numbers count one each)."""
    count = 0
    stack = [samples]
    visited = 0
    while stack:
        item = stack.pop()
        visited += 1
        if visited % 4096 == 0:
            guard.check_deadline()
        if isinstance(item, torch.Tensor):
            count += item.numel()
        elif isinstance(item, np.ndarray):
            count += int(item.size)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            count += 1
        if count > guard.limits.max_tensor_elements:
            break
    return count


def _track_batch(guard: Guard, batch: Any) -> None:
    """Count the tensors and arrays of one batch (a tensor, or lists/tuples/dicts of them)."""
    stack = [batch]
    visited = 0
    while stack and visited < _BATCH_WALK_ITEMS:
        item = stack.pop()
        visited += 1
        if isinstance(item, torch.Tensor | np.ndarray):
            guard.track(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _collate(guard: Guard, learner_fn: Any, batched: bool) -> Callable[[Any], Any]:
    """The collate function PyTorch calls: the learner's (through the interpreter) or the default,
    which stacks the samples only after their total size is checked."""

    def collate(samples: Any) -> Any:
        guard.check_deadline()
        if learner_fn is not None:
            return guard.call(learner_fn, (samples,), {})
        if not batched:
            return default_convert(samples)
        guard.check_elements(_batch_elements(guard, samples), "a batch")
        return default_collate(samples)

    return collate


class CheckedBatches:
    """A DataLoader's iterator: PyTorch's own, with the deadline checked between batches and
    every batch's tensors counted against ``max_total_bytes``."""

    __slots__ = ("_guard", "_inner")

    def __init__(self, guard: Guard, inner: Iterator[Any]) -> None:
        self._guard = guard
        self._inner = inner

    def __iter__(self) -> CheckedBatches:
        return self

    def __next__(self) -> Any:
        self._guard.check_deadline()
        batch = next(self._inner)
        _track_batch(self._guard, batch)
        return batch

    def __len__(self) -> int:
        return len(self._inner)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return "<torch.utils.data.dataloader._SingleProcessDataLoaderIter object>"


class SandboxDataLoader(torch_data.DataLoader):
    """A real ``torch.utils.data.DataLoader`` whose iterator checks each batch."""

    def __init__(self, guard: Guard, dataset: Any, **kwargs: Any) -> None:
        self._sandbox_guard = guard
        super().__init__(dataset, **kwargs)

    def __iter__(self) -> CheckedBatches:  # type: ignore[override]
        return CheckedBatches(self._sandbox_guard, super().__iter__())

    def __repr__(self) -> str:
        return "<torch.utils.data.dataloader.DataLoader object>"


_LOADER_SIGNATURE = signature_of(torch_data.DataLoader)
# Keywords PyTorch takes that the sandbox does not need: (their harmless value, what to do instead).
_LOADER_REFUSED = {
    "sampler": (None, "use shuffle=True, or a Subset of the dataset"),
    "batch_sampler": (None, "use batch_size= and shuffle="),
    "worker_init_fn": (None, "this sandbox has no worker processes"),
    "multiprocessing_context": (None, "this sandbox has no worker processes"),
    "timeout": (0, "this sandbox has no worker processes"),
}


def _data_loader(guard: Guard, args: Args, kwargs: Kwargs) -> SandboxDataLoader:
    values = bind("DataLoader.__init__", _LOADER_SIGNATURE, args, kwargs)
    for key, (harmless, instead) in _LOADER_REFUSED.items():
        if values.pop(key) != harmless:
            raise SandboxRefused(
                f"DataLoader({key}=...) is not available in this sandbox: {instead}"
            )
    generator = _generator_arg(values.pop("generator"), "DataLoader()")
    dataset = values.pop("dataset")
    check_dataset(dataset, "DataLoader()")
    length = dataset_length(guard, dataset, "DataLoader()")
    batch_size = values.pop("batch_size")
    if batch_size is not None:
        number = None if isinstance(batch_size, bool | float) else size_int(batch_size)
        if number is None or number <= 0:
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        batch_size = number
    shuffle = values.pop("shuffle")
    drop_last = values.pop("drop_last")
    for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(flag, bool | int | None):
            raise TypeError(f"DataLoader(): {name} must be True or False, not {type_phrase(flag)}")
    workers = _whole(values.pop("num_workers"), "num_workers")
    if workers < 0:
        raise ValueError(
            "num_workers option should be non-negative; use num_workers=0 to disable "
            "multiprocessing."
        )
    if workers == 0 and values["persistent_workers"]:
        raise ValueError("persistent_workers option needs num_workers > 0")
    if workers == 0 and values["prefetch_factor"] is not None:
        raise ValueError(
            "prefetch_factor option could only be specified in multiprocessing.let num_workers "
            "> 0 to enable multiprocessing, otherwise set prefetch_factor to None."
        )
    if workers > 0:
        guard.notice(
            f"DataLoader(num_workers={workers}) ran in-process: this sandbox has no worker "
            "processes"
        )
    # The sampler counts a range of the frozen length, so a learner __len__ is never asked again
    # (RandomSampler draws from the program's generator, or torch's global RNG, exactly as
    # shuffle=True does; the loader draws each iterator's base seed from the same one).
    indices = range(length)
    sampler: torch_data.Sampler[int] = (
        torch_data.RandomSampler(indices, generator=generator)
        if shuffle not in (False, None, 0)
        else torch_data.SequentialSampler(indices)
    )
    return SandboxDataLoader(
        guard,
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=bool(drop_last),
        collate_fn=_collate(guard, values.pop("collate_fn"), batch_size is not None),
        generator=generator,
    )


def _generator_arg(value: Any, what: str) -> torch.Generator | None:
    """A ``generator=`` argument: the program's own ``torch.Generator()``, or None (torch's global
    RNG, which ``torch.manual_seed`` seeds)."""
    if value is None or value is torch.default_generator:
        return None
    if not isinstance(value, torch.Generator):
        raise TypeError(f"{what}: generator= must be a torch.Generator, not {type_phrase(value)}")
    return value


def _tensor_dataset(guard: Guard, args: Args, kwargs: Kwargs) -> torch_data.TensorDataset:
    if kwargs:
        raise TypeError(
            f"TensorDataset.__init__() got an unexpected keyword argument '{next(iter(kwargs))}'"
        )
    for tensor in args:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"TensorDataset() takes tensors, not {type_phrase(tensor)}")
    return torch_data.TensorDataset(*args)


_SUBSET_SIGNATURE = signature_of(torch_data.Subset)


def _index_list(guard: Guard, indices: Any, what: str) -> list[int]:
    return [_whole(i, f"{what}: an index") for i in guard.bounded(indices)]


def _subset(guard: Guard, args: Args, kwargs: Kwargs) -> torch_data.Subset[Any]:
    values = bind("Subset.__init__", _SUBSET_SIGNATURE, args, kwargs)
    check_dataset(values["dataset"], "Subset()")
    return torch_data.Subset(values["dataset"], _index_list(guard, values["indices"], "Subset()"))


_SPLIT_SIGNATURE = signature_of(torch_data.random_split)


def _random_split(guard: Guard, args: Args, kwargs: Kwargs) -> list[torch_data.Subset[Any]]:
    """PyTorch's ``random_split``, on the length asked once (same fractions rule, same RNG)."""
    values = bind("random_split", _SPLIT_SIGNATURE, args, kwargs)
    generator = _generator_arg(values["generator"], "random_split()")
    dataset = values["dataset"]
    check_dataset(dataset, "random_split()")
    length = dataset_length(guard, dataset, "random_split()")
    lengths: list[Any] = guard.bounded(values["lengths"])
    for item in lengths:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise TypeError(f"random_split(): lengths must be numbers, not {type_phrase(item)}")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        subset_lengths: list[int] = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            subset_lengths.append(math.floor(length * frac))
        remainder = length - sum(subset_lengths)
        for i in range(remainder):  # one more for each split in turn until the remainder is 0
            subset_lengths[i % len(subset_lengths)] += 1
        lengths = subset_lengths
        for i, size in enumerate(lengths):
            if size == 0:
                guard.notice(
                    f"UserWarning: Length of split at index {i} is 0. This might result in an "
                    "empty dataset."
                )
    if sum(lengths) != length:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    if not all(isinstance(size, int) for size in lengths):
        raise TypeError("random_split(): lengths must be ints, or fractions that sum to 1")
    order = torch.randperm(length, generator=generator).tolist()
    subsets: list[torch_data.Subset[Any]] = []
    offset = 0
    for size in lengths:
        subsets.append(torch_data.Subset(dataset, order[offset : offset + size]))
        offset += size
    return subsets


def _loader_len(guard: Guard, obj: Any, args: Args, kwargs: Kwargs) -> int:
    return len(obj)


register_type(
    SandboxDataLoader,
    {
        "dataset": lambda loader: loader.dataset,
        "batch_size": lambda loader: loader.batch_size,
        "drop_last": lambda loader: loader.drop_last,
    },
    {},
)
register_type(CheckedBatches, {}, {})
register_type(torch_data.TensorDataset, {"tensors": lambda ds: ds.tensors}, {})
register_type(
    torch_data.Subset,
    {"dataset": lambda ds: ds.dataset, "indices": lambda ds: ds.indices},
    {},
)
for _kind in (SandboxDataLoader, CheckedBatches, torch_data.TensorDataset, torch_data.Subset):
    register_iterable(_kind)

DATA = Namespace(
    "torch.utils.data",
    {
        "Dataset": BaseClass("torch.utils.data.Dataset", torch_data.Dataset),
        "DataLoader": SafeFunction("torch.utils.data.DataLoader", _data_loader),
        "TensorDataset": SafeFunction("torch.utils.data.TensorDataset", _tensor_dataset),
        "Subset": SafeFunction("torch.utils.data.Subset", _subset),
        "random_split": SafeFunction("torch.utils.data.random_split", _random_split),
    },
)
UTILS = MODULES.get("torch.utils") or Namespace("torch.utils", {})
UTILS.members["data"] = DATA
NAMESPACES["torch"].members["utils"] = UTILS
register("torch.utils", UTILS)
register("torch.utils.data", DATA)


# -- torch.optim.lr_scheduler ----------------------------------------------------------------------


def _numel(value: torch.Tensor | np.ndarray) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else int(value.size)


def _lr_factor(guard: Guard, fn: Any) -> Callable[[int], float]:
    """A learner ``lr_lambda`` as the plain function LambdaLR calls (state_dict skips it)."""

    def factor(epoch: int) -> float:
        value = guard.call(fn, (epoch,), {})
        if isinstance(value, torch.Tensor | np.ndarray) and _numel(value) == 1:
            value = value.item()
        return _real(value, "the value lr_lambda returns")

    return factor


def _prepare_lambda(guard: Guard, values: Kwargs) -> None:
    fns = values["lr_lambda"]
    if isinstance(fns, list | tuple):
        values["lr_lambda"] = [_lr_factor(guard, fn) for fn in guard.bounded(fns, 1_000)]
    else:
        values["lr_lambda"] = _lr_factor(guard, fns)


def _numbers(whole: tuple[str, ...], real: tuple[str, ...]) -> Callable[[Guard, Kwargs], None]:
    """A scheduler's arguments checked as whole numbers and numbers (Python ints/floats only)."""

    def prepare(guard: Guard, values: Kwargs) -> None:
        for name in whole:
            values[name] = _whole(values[name], name)
        for name in real:
            value = values[name]
            if isinstance(value, list | tuple):
                values[name] = [_real(v, name) for v in guard.bounded(value, 1_000)]
            else:
                values[name] = _real(value, name)
        if "milestones" in values:
            values["milestones"] = [
                _whole(m, "milestones") for m in guard.bounded(values["milestones"], 10_000)
            ]
        for name in ("mode", "threshold_mode"):
            if name in values and not isinstance(values[name], str):
                raise TypeError(f"{name} must be a string, not {type(values[name]).__name__}")

    return prepare


_SCHEDULERS: dict[str, tuple[type[Any], Callable[[Guard, Kwargs], None]]] = {
    "StepLR": (lr_scheduler.StepLR, _numbers(("step_size", "last_epoch"), ("gamma",))),
    "MultiStepLR": (lr_scheduler.MultiStepLR, _numbers(("last_epoch",), ("gamma",))),
    "ExponentialLR": (lr_scheduler.ExponentialLR, _numbers(("last_epoch",), ("gamma",))),
    "CosineAnnealingLR": (
        lr_scheduler.CosineAnnealingLR,
        _numbers(("T_max", "last_epoch"), ("eta_min",)),
    ),
    "LambdaLR": (lr_scheduler.LambdaLR, _prepare_lambda),
    "MultiplicativeLR": (lr_scheduler.MultiplicativeLR, _prepare_lambda),
    "ReduceLROnPlateau": (
        lr_scheduler.ReduceLROnPlateau,
        _numbers(("patience", "cooldown"), ("factor", "threshold", "min_lr", "eps")),
    ),
}


def _scheduler(name: str, cls: type[Any], prepare: Callable[[Guard, Kwargs], None]) -> SafeFunction:
    signature = signature_of(cls)

    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        values = bind(f"{name}.__init__", signature, args, kwargs)
        optimizer = values["optimizer"]
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        prepare(guard, values)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scheduler = cls(**values)
        _warnings_to_notices(guard, caught)
        return scheduler

    return SafeFunction(f"torch.optim.lr_scheduler.{name}", impl)


def _scheduler_step(guard: Guard, scheduler: Any, args: Args, kwargs: Kwargs) -> None:
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        values = bind("ReduceLROnPlateau.step", inspect.Signature(
            [inspect.Parameter("metrics", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        ), args, kwargs)  # fmt: skip
        metric = values["metrics"]
        if isinstance(metric, torch.Tensor | np.ndarray) and _numel(metric) != 1:
            raise TypeError("ReduceLROnPlateau.step() takes one number (the loss, say)")
        step_args: tuple[Any, ...] = (float(metric),)
    else:
        if args or kwargs:
            raise SandboxRefused(
                "scheduler.step() takes no arguments here (step(epoch) is deprecated in PyTorch)"
            )
        step_args = ()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler.step(*step_args)
    _warnings_to_notices(guard, caught)


def _get_last_lr(guard: Guard, scheduler: Any, args: Args, kwargs: Kwargs) -> list[float]:
    if args or kwargs:
        raise TypeError("get_last_lr() takes no arguments")
    return [float(lr) for lr in scheduler.get_last_lr()]


_PLAIN = (type(None), bool, int, float, str)


def _plain_copy(value: Any) -> Any:
    """A scheduler's state as plain lists and dicts (a Counter becomes a dict)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items() if isinstance(k, _PLAIN)}
    if isinstance(value, list | tuple):
        return [_plain_copy(v) for v in value]
    return None


def _state_dict(guard: Guard, scheduler: Any, args: Args, kwargs: Kwargs) -> dict[str, Any]:
    if args or kwargs:
        raise TypeError("state_dict() takes no arguments")
    state = _plain_copy(scheduler.state_dict())
    assert isinstance(state, dict)
    return state


def _same_kind(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new)
    if isinstance(old, int | float) and isinstance(new, int | float):
        return True
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return len(old) == len(new) and all(map(_same_kind, old, new))
    if isinstance(old, dict) and isinstance(new, dict):
        return all(isinstance(k, int) and isinstance(v, int) for k, v in new.items())
    return old is None or type(old) is type(new)


def _load_state_dict(guard: Guard, scheduler: Any, args: Args, kwargs: Kwargs) -> None:
    """Load a state that ``state_dict()`` gave: the same keys, each value of the same kind."""
    if kwargs or len(args) != 1 or not isinstance(args[0], dict):
        raise TypeError("load_state_dict() takes the dict that state_dict() returned")
    guard.check_container(args[0])
    current = _plain_copy(scheduler.state_dict())
    for key, value in args[0].items():
        if key not in current or not _same_kind(current[key], value):
            raise SandboxRefused(
                f"load_state_dict(): {_short(key)} is not part of this scheduler's state_dict() "
                "(or has another kind of value)"
            )
    state = dict(args[0])
    if "lr_lambdas" in state:
        state["lr_lambdas"] = [None] * len(state["lr_lambdas"])
    scheduler.load_state_dict(state)
    if isinstance(scheduler, lr_scheduler.MultiStepLR):
        scheduler.milestones = Counter(scheduler.milestones)


_SCHEDULER_METHODS: dict[str, MethodImpl] = {
    "step": _scheduler_step,
    "get_last_lr": _get_last_lr,
    "state_dict": _state_dict,
    "load_state_dict": _load_state_dict,
}
for _name, (_cls, _prepare) in _SCHEDULERS.items():
    register_type(
        _cls,
        {
            "last_epoch": lambda s: s.last_epoch,
            "base_lrs": lambda s: [float(lr) for lr in getattr(s, "base_lrs", [])],
        },
        _SCHEDULER_METHODS,
    )

LR_SCHEDULER = Namespace(
    "torch.optim.lr_scheduler",
    {name: _scheduler(name, cls, prepare) for name, (cls, prepare) in _SCHEDULERS.items()},
)
NAMESPACES["optim"].members["lr_scheduler"] = LR_SCHEDULER
register("torch.optim.lr_scheduler", LR_SCHEDULER)


# -- scikit-learn ----------------------------------------------------------------------------------


# Virtual base classes (no abstract methods on purpose): scikit-learn's own classes are registered
# on them once it is imported, so the attribute tables exist before scikit-learn is loaded.
class SklearnBunch(abc.ABC):  # noqa: B024
    """``sklearn.utils.Bunch`` (registered on it when scikit-learn is first imported)."""


class SklearnScaler(abc.ABC):  # noqa: B024
    """``StandardScaler`` and ``MinMaxScaler`` (registered on them when first imported)."""


_SKLEARN: dict[str, Any] = {}


def sklearn_parts(guard: Guard | None = None) -> dict[str, Any]:
    """scikit-learn's modules, imported on first use; the import's time is not the learner's."""
    if not _SKLEARN:
        started = time.monotonic()
        import sklearn.datasets
        import sklearn.model_selection
        import sklearn.preprocessing
        import sklearn.utils

        SklearnBunch.register(sklearn.utils.Bunch)
        SklearnScaler.register(sklearn.preprocessing.StandardScaler)
        SklearnScaler.register(sklearn.preprocessing.MinMaxScaler)
        _SKLEARN.update(
            datasets=sklearn.datasets,
            preprocessing=sklearn.preprocessing,
            model_selection=sklearn.model_selection,
            Bunch=sklearn.utils.Bunch,
        )
        if guard is not None:
            guard.extend_deadline(time.monotonic() - started)
    return _SKLEARN


# The data sets that ship inside scikit-learn, by loader name, loaded once per process.
_TOY_DATA = ("load_iris", "load_wine", "load_breast_cancer", "load_digits", "load_diabetes")
_LOADED: dict[tuple[Any, ...], Any] = {}


def _hand_out(value: Any) -> Any:
    """A copy of one Bunch entry: arrays of numbers copied, arrays of names as lists of str."""
    if isinstance(value, np.ndarray):
        return value.copy() if value.dtype.kind in "biuf" else [str(v) for v in value.tolist()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return value


def _loader(name: str) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        parts = sklearn_parts(guard)
        real = getattr(parts["datasets"], name)
        values = bind(name, signature_of(real), args, kwargs)
        if values.pop("as_frame"):
            raise SandboxRefused(
                f"{name}(as_frame=True) needs pandas, which this sandbox does not offer: use the "
                "arrays (as_frame=False)"
            )
        return_x_y = values.pop("return_X_y")
        for option, value in values.items():  # n_class of load_digits, scaled of load_diabetes
            if not isinstance(value, bool | int):
                raise TypeError(f"{name}(): {option} must be an int or a bool")
        key = (name, *sorted(values.items()))
        if key not in _LOADED:
            started = time.monotonic()
            _LOADED[key] = real(**values)
            guard.extend_deadline(time.monotonic() - started)
        cached = _LOADED[key]
        if return_x_y:
            return cached.data.copy(), cached.target.copy()
        return parts["Bunch"](**{k: _hand_out(v) for k, v in cached.items()})

    return SafeFunction(f"sklearn.datasets.{name}", impl)


def _bunch_entry(key: str) -> Callable[[Any], Any]:
    def read(bunch: Any) -> Any:
        if key not in bunch:
            raise AttributeError(key)
        return bunch[key]

    return read


def _bunch_view(name: str) -> MethodImpl:
    def impl(guard: Guard, bunch: Any, args: Args, kwargs: Kwargs) -> Any:
        if args or kwargs:
            raise TypeError(f"{name}() takes no arguments")
        return getattr(bunch, name)()

    return impl


register_type(
    SklearnBunch,
    {
        key: _bunch_entry(key)
        for key in ["data", "target", "feature_names", "target_names", "DESCR", "frame", "images"]
    },
    {name: _bunch_view(name) for name in ("keys", "values", "items")},
)


def _check_array_like(guard: Guard, value: Any, what: str, required: bool = True) -> None:
    """An array argument: a tensor, array, or nested lists of numbers of bounded size."""
    if value is None and not required:
        return
    if isinstance(value, torch.Tensor | np.ndarray):
        return
    if isinstance(value, list | tuple):
        guard.check_container(value)
        guard.check_elements(data_elements(guard, value, "an array"), "array")
        return
    raise TypeError(
        f"{what} takes an array, a tensor or a list of numbers, not {type_phrase(value)}"
    )


def _bounded_arguments(guard: Guard, values: Kwargs) -> None:
    """Lists among a generator's arguments (weights, centers, cluster_std) bounded like data."""
    for value in values.values():
        if isinstance(value, list | tuple):
            _check_array_like(guard, value, "this argument")


def _size_argument(values: Kwargs, name: str, qualname: str) -> int:
    """An int argument converted in ``values``; 0 for what scikit-learn will refuse itself."""
    value = values[name]
    if value is None or isinstance(value, bool | float | str):
        return 0
    number = size_int(value)
    if number is None:
        raise TypeError(f"{qualname}(): {name} must be an int, not {type(value).__name__}")
    values[name] = number
    return max(number, 0)


def _random_state(values: Kwargs, qualname: str) -> None:
    value = values.get("random_state")
    if value is not None:
        number = None if isinstance(value, float) else size_int(value)
        if number is None:
            raise SandboxRefused(f"{qualname}(): random_state must be an int (or None) here")
        values["random_state"] = number


def _samples_list(guard: Guard, values: Kwargs, qualname: str) -> int:
    """make_blobs/make_moons/make_circles: n_samples an int, or a list of ints per group."""
    value = values["n_samples"]
    if isinstance(value, list | tuple | np.ndarray):
        counts = [_whole(v, f"{qualname}(): n_samples") for v in guard.bounded(value, 10_000)]
        values["n_samples"] = tuple(counts) if isinstance(value, tuple) else counts
        return sum(max(c, 0) for c in counts)
    return _size_argument(values, "n_samples", qualname)


def _elements_regression(guard: Guard, values: Kwargs, qualname: str) -> int:
    samples = _size_argument(values, "n_samples", qualname)
    features = _size_argument(values, "n_features", qualname)
    targets = _size_argument(values, "n_targets", qualname)
    _size_argument(values, "n_informative", qualname)
    return samples * features + samples * targets + features * targets


def _elements_classification(guard: Guard, values: Kwargs, qualname: str) -> int:
    samples = _size_argument(values, "n_samples", qualname)
    features = _size_argument(values, "n_features", qualname)
    informative = _size_argument(values, "n_informative", qualname)
    redundant = _size_argument(values, "n_redundant", qualname)
    _size_argument(values, "n_repeated", qualname)
    clusters = _size_argument(values, "n_classes", qualname) * _size_argument(
        values, "n_clusters_per_class", qualname
    )
    # one random covariance (informative x informative) per cluster, and the redundant mixing
    return samples * (features + 1) + clusters * informative * informative + informative * redundant


def _elements_blobs(guard: Guard, values: Kwargs, qualname: str) -> int:
    samples = _samples_list(guard, values, qualname)
    features = _size_argument(values, "n_features", qualname)
    centers = values["centers"]
    if isinstance(centers, list | tuple | np.ndarray | torch.Tensor):
        shape = np.shape(centers) if not isinstance(centers, torch.Tensor) else centers.shape
        groups = int(shape[0]) if len(shape) else 0
        features = int(shape[1]) if len(shape) > 1 else features
    elif centers is None:
        groups = 3 if isinstance(values["n_samples"], int) else 0
    else:
        groups = _size_argument(values, "centers", qualname)
    return samples * (features + 1) + groups * features


def _elements_two(guard: Guard, values: Kwargs, qualname: str) -> int:
    return _samples_list(guard, values, qualname) * 3  # X has 2 columns, and y


_GENERATORS: dict[str, Callable[[Guard, Kwargs, str], int]] = {
    "make_regression": _elements_regression,
    "make_classification": _elements_classification,
    "make_blobs": _elements_blobs,
    "make_moons": _elements_two,
    "make_circles": _elements_two,
}


def _generator(name: str, elements: Callable[[Guard, Kwargs, str], int]) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        real = getattr(sklearn_parts(guard)["datasets"], name)
        values = bind(name, signature_of(real), args, kwargs)
        _bounded_arguments(guard, values)
        guard.check_elements(elements(guard, values, name), "the generated data")
        _random_state(values, name)
        return real(**values)

    return SafeFunction(f"sklearn.datasets.{name}", impl)


def _scaler(name: str) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        cls = getattr(sklearn_parts(guard)["preprocessing"], name)
        values = bind(name, signature_of(cls), args, kwargs)
        if "feature_range" in values:
            _check_array_like(guard, values["feature_range"], f"{name}(feature_range=...)")
        return cls(**values)

    return SafeFunction(f"sklearn.preprocessing.{name}", impl)


def _estimator_method(name: str) -> MethodImpl:
    """``scaler.fit(X)`` & co.: every array argument bounded; ``fit`` returns the scaler."""

    def impl(guard: Guard, estimator: Any, args: Args, kwargs: Kwargs) -> Any:
        method = getattr(estimator, name)
        qualname = f"{type(estimator).__name__}.{name}"
        values = bind(qualname, signature_of(method), args, kwargs)
        for key, value in values.items():
            if key in ("X", "y", "sample_weight"):
                _check_array_like(guard, value, f"{qualname}()", required=key == "X")
            elif key == "copy" and not isinstance(value, bool | None):
                raise TypeError(f"{qualname}(): copy must be True, False or None")
        return method(**values)

    return impl


_SCALER_PROPS = [
    "mean_", "scale_", "var_", "n_features_in_", "n_samples_seen_", "data_min_", "data_max_",
    "data_range_", "min_", "feature_range", "with_mean", "with_std"
]  # fmt: skip
register_type(
    SklearnScaler,
    {name: (lambda attr: lambda s: getattr(s, attr))(name) for name in _SCALER_PROPS},
    {
        name: _estimator_method(name)
        for name in ("fit", "transform", "fit_transform", "inverse_transform", "partial_fit")
    },
)


def _train_test_split(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    real = sklearn_parts(guard)["model_selection"].train_test_split
    guard.check_seq_len(len(args))
    for array in args:
        _check_array_like(guard, array, "train_test_split()")
    allowed = {"test_size", "train_size", "random_state", "shuffle", "stratify"}
    for key in kwargs:
        if key not in allowed:
            raise TypeError(f"train_test_split() got an unexpected keyword argument '{key}'")
    if kwargs.get("stratify") is not None:
        _check_array_like(guard, kwargs["stratify"], "train_test_split(stratify=...)")
    _random_state(kwargs, "train_test_split")
    return real(*args, **kwargs)


SKLEARN_DATASETS = Namespace(
    "sklearn.datasets",
    {
        **{name: _loader(name) for name in _TOY_DATA},
        **{name: _generator(name, elements) for name, elements in _GENERATORS.items()},
    },
)
SKLEARN_PREPROCESSING = Namespace(
    "sklearn.preprocessing",
    {name: _scaler(name) for name in ("StandardScaler", "MinMaxScaler")},
)
SKLEARN_MODEL_SELECTION = Namespace(
    "sklearn.model_selection",
    {
        "train_test_split": SafeFunction(
            "sklearn.model_selection.train_test_split", _train_test_split
        )
    },
)
SKLEARN = Namespace(
    "sklearn",
    {
        "datasets": SKLEARN_DATASETS,
        "preprocessing": SKLEARN_PREPROCESSING,
        "model_selection": SKLEARN_MODEL_SELECTION,
    },
)
register("sklearn", SKLEARN)
register("sklearn.datasets", SKLEARN_DATASETS)
register("sklearn.preprocessing", SKLEARN_PREPROCESSING)
register("sklearn.model_selection", SKLEARN_MODEL_SELECTION)


# -- math ------------------------------------------------------------------------------------------

_MATH_PLAIN = [
    "sqrt", "exp", "log", "log2", "log10", "log1p", "expm1", "sin", "cos", "tan", "asin", "acos",
    "atan", "atan2", "sinh", "cosh", "tanh", "floor", "ceil", "trunc", "fabs", "isclose",
    "isnan", "isinf", "isfinite", "pow", "hypot", "radians", "degrees", "gcd", "copysign",
    "isqrt", "fmod", "modf", "erf"
]  # fmt: skip
_LN2 = math.log(2)


def _math_call(name: str) -> SafeFunction:
    """A ``math`` function whose result is never bigger than its arguments: called as it is, so
    the learner gets Python's own results and messages."""
    fn = getattr(math, name)

    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        return fn(*args, **kwargs)

    return SafeFunction(f"math.{name}", impl)


def _log2_bits(n: int) -> float:
    """log2(n!) for an int n >= 0, without computing n!."""
    if n < 2:
        return 1.0
    if n < 10**300:
        return math.lgamma(n + 1) / _LN2
    return n * math.log2(n)


def _as_ints(args: Args) -> list[int] | None:
    """Whole-number arguments as ints (Python's math takes what has ``__index__``), or None."""
    numbers = [None if isinstance(a, float) else size_int(a) for a in args]
    return None if any(n is None for n in numbers) else [n for n in numbers if n is not None]


def _factorial(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    ints = _as_ints(args)
    if ints is not None and len(ints) == 1 and not kwargs and ints[0] >= 0:
        guard.check_int_bits(int(_log2_bits(ints[0])) + 1)
        return math.factorial(ints[0])
    return math.factorial(*args, **kwargs)


def _comb_perm(name: str) -> SafeFunction:
    fn = getattr(math, name)

    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        full = (*args, args[0]) if name == "perm" and len(args) == 1 else args
        ints = _as_ints(full)
        if ints is not None and len(ints) == 2 and not kwargs and 0 <= ints[1] <= ints[0]:
            n, k = ints
            if name == "comb":
                k = min(k, n - k)
            bits = k * math.log2(n) if n > 1 and k > 0 else 1.0
            if n < 10**300:
                exact = _log2_bits(n) - _log2_bits(n - k)
                if name == "comb":
                    exact -= _log2_bits(k)
                bits = min(bits, exact)
            guard.check_int_bits(int(bits) + 1)
            return fn(n, ints[1])
        return fn(*args, **kwargs)

    return SafeFunction(f"math.{name}", impl)


def _math_prod(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    """``math.prod``: multiplied one item at a time, each product checked (ints can grow)."""
    if len(args) != 1:
        raise TypeError(f"prod() takes exactly 1 positional argument ({len(args)} given)")
    for key in kwargs:
        if key != "start":
            raise TypeError(f"'{key}' is an invalid keyword argument for prod()")
    total = kwargs.get("start", 1)
    for item in guard.bounded(args[0]):
        total = guard.check_result(binary(guard, "Mult", total, item))
    return total


def _math_lcm(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    if kwargs:
        raise TypeError("lcm() takes no keyword arguments")
    total = math.lcm()
    for item in args:
        total = math.lcm(total, item)
        guard.check_result(total)
    return total


def _math_iterable(name: str) -> SafeFunction:
    """``fsum`` and ``dist``: their iterables materialised under ``max_sequence_items``."""
    fn = getattr(math, name)

    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        return fn(*(guard.bounded(a) for a in args), **kwargs)

    return SafeFunction(f"math.{name}", impl)


MATH = Namespace(
    "math",
    {
        **{name: _math_call(name) for name in _MATH_PLAIN},
        "factorial": SafeFunction("math.factorial", _factorial),
        "comb": _comb_perm("comb"),
        "perm": _comb_perm("perm"),
        "prod": SafeFunction("math.prod", _math_prod),
        "lcm": SafeFunction("math.lcm", _math_lcm),
        "fsum": _math_iterable("fsum"),
        "dist": _math_iterable("dist"),
        "pi": math.pi,
        "e": math.e,
        "tau": math.tau,
        "inf": math.inf,
        "nan": math.nan,
    },
)
register("math", MATH)


# -- collections -----------------------------------------------------------------------------------


def _ordered_dict(guard: Guard, args: Args, kwargs: Kwargs) -> collections.OrderedDict[Any, Any]:
    """``OrderedDict(pairs)`` / ``OrderedDict(name=value, ...)``: what names the layers of an
    ``nn.Sequential``, and what a state_dict is."""
    if len(args) > 1:
        raise TypeError(f"expected at most 1 arguments, got {len(args)}")
    given = args[0] if args else []
    pairs = guard.bounded(given.items() if isinstance(given, dict) else given)
    guard.check_seq_len(len(pairs) + len(kwargs))
    result: collections.OrderedDict[Any, Any] = collections.OrderedDict(pairs)
    result.update(kwargs)
    return result


COLLECTIONS = Namespace(
    "collections",
    {
        "OrderedDict": SafeFunction(
            "collections.OrderedDict", _ordered_dict, collections.OrderedDict
        ),
    },
)
register("collections", COLLECTIONS)
