"""Checkpoint files from outside the app: open them safely, describe them, evaluate them.

Every file is untrusted. Before torch sees the bytes, ``open_checkpoint`` checks that they are
the zip archive ``torch.save`` writes (never the legacy format, whose storages are allocated
from sizes the file itself declares), that the archive's entries, unpacked size and pickle are
within bounds, and that every entry's CRC holds, so the sizes it declares are the true ones.
Only then does ``torch.load(..., weights_only=True)`` unpickle it: that loader builds tensors,
plain containers and numbers and refuses every other global, so a pickle that would call
``os.system`` is refused before anything in it runs. The loaded structure is then walked with
bounds on nesting and items before anything else touches it.

No HTTP here: ``app.web.routes.checkpoints`` serves these functions, and a notebook can call
them directly.
"""

from __future__ import annotations

import _compat_pickle  # the Python 2 -> 3 module names that pickle's protocol 2 writes
import io
import math
import pickle
import pickletools
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

import torch
from pydantic import BaseModel
from torch import nn

from app.jobs.tasks import ConfigError, Task, UnknownTask, get_task

Format = Literal["state_dict", "checkpoint"]

# The task a file without a "task" key is evaluated as.
DEFAULT_TASK = "digits-cnn"
# Where a checkpoint keeps the model's state_dict and the optimizer's: the app's own spelling
# first, then the notes' ({'Model': ..., 'Optim': ...}), then PyTorch's tutorial's.
MODEL_KEYS = ("model", "Model", "model_state_dict", "state_dict")
OPTIMIZER_KEYS = ("optimizer", "Optim", "optimizer_state_dict", "optim")

ZIP_MAGIC = b"PK\x03\x04"  # a zip's first local file header: what torch.load looks for too
# torch.save's legacy format opens with a pickled magic number (0x1950a86a20f9469cfc6c).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
END_OF_DIRECTORY = b"PK\x05\x06"
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_END = b"PK\x06\x06"
CENTRAL_ENTRY = b"PK\x01\x02"
CHUNK = 1024 * 1024  # entries are CRC-checked in pieces this size, never held whole
SHOWN = 20  # names listed in one message before "and N more"


@dataclass(frozen=True)
class CheckpointLimits:
    """Bounds on an uploaded checkpoint, each checked before the work it guards.

    The defaults are the settings' (``app.config.Settings``), for use outside the app.
    """

    # The file itself: a digits-cnn checkpoint is about 15 kB; 20 MiB holds some five million
    # float32 parameters.
    max_checkpoint_bytes: int = 20 * 1024 * 1024
    # The archive's entries unpacked: torch.save stores them uncompressed, so this only bites
    # a deflated archive that inflates far beyond its size (a zip bomb).
    max_checkpoint_unpacked_bytes: int = 64 * 1024 * 1024
    # Entries in the archive: one per tensor storage plus a handful of torch's own.
    max_checkpoint_entries: int = 10_000
    # The pickle that describes the structure (data.pkl): about 150 bytes per tensor.
    max_checkpoint_pickle_bytes: int = 2 * 1024 * 1024
    # The loaded structure: containers inside containers, and values counted over all of them.
    max_checkpoint_depth: int = 32
    max_checkpoint_items: int = 100_000


class CheckpointError(Exception):
    """The file cannot be used as a checkpoint; the message says why and what to try (422)."""

    def __init__(self, message: str, *, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit

    def extra(self) -> dict[str, Any]:
        """Fields the JSON error carries besides ``detail``."""
        return {"limit": self.limit} if self.limit else {}


class CheckpointRefused(CheckpointError):
    """The file asks the unpickler for something that could run code; nothing in it ran."""

    def __init__(self, message: str, global_name: str | None = None) -> None:
        super().__init__(message)
        self.global_name = global_name

    def extra(self) -> dict[str, Any]:
        return {"refused": self.global_name}


@dataclass(frozen=True)
class Mismatch:
    """A key both sides have, with different shapes."""

    key: str
    file: list[int]
    model: list[int]


class ArchitectureMismatch(CheckpointError):
    """The state_dict's keys or shapes are not the model's; lists every difference."""

    def __init__(
        self,
        task: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[Mismatch],
    ) -> None:
        self.task = task
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        parts = []
        if missing:
            parts.append(f"missing keys {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listed(unexpected)}")
        if mismatched:
            shapes = [
                f"{m.key}: file {_shape(m.file)}, model {_shape(m.model)}" for m in mismatched
            ]
            parts.append(f"mismatched shapes {_listed(shapes)}")
        hint = (
            " The layers are the same but their sizes differ: send the config it was trained "
            "with (e.g. its channels)."
            if mismatched and not (missing or unexpected)
            else " It was saved from another architecture: choose the task it was trained on."
        )
        super().__init__(f"The state_dict does not fit {task}'s model: {'; '.join(parts)}.{hint}")

    def extra(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [
                {"key": m.key, "file": m.file, "model": m.model} for m in self.mismatched
            ],
        }


@dataclass
class Opened:
    """A checkpoint file, loaded and checked: the model's tensors and what came with them."""

    format: Format
    model: dict[str, torch.Tensor]  # the model's state_dict, in the file's order
    bytes: int
    epoch: int | None = None
    task: str | None = None
    config: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None  # described by ``optimizer_summary``
    other_keys: dict[str, str] = field(default_factory=dict)


# -- opening: the bytes, the zip, torch.load, the structure -----------------------------------


def open_checkpoint(data: bytes, limits: CheckpointLimits) -> Opened:
    """The checkpoint in ``data``, or a ``CheckpointError`` saying why it is refused."""
    _check(
        "The file",
        len(data),
        limits.max_checkpoint_bytes,
        "max_checkpoint_bytes",
        " bytes",
    )
    if not data.startswith(ZIP_MAGIC):
        raise _not_a_zip(data)
    check_zip(data, limits)
    loaded = safe_load(data)
    walk(loaded, limits)
    return classify(loaded, len(data))


def _check(what: str, got: int, limit: int, setting: str, unit: str = "") -> None:
    if got > limit:
        raise CheckpointError(
            f"{what} is {got}{unit}, over the limit of {limit}{unit} (setting {setting}).",
            limit=setting,
        )


def _not_a_zip(data: bytes) -> CheckpointError:
    """Why bytes that are not a zip archive are refused, as precisely as the bytes allow."""
    if not data:
        return CheckpointError(
            "The file is empty (0 bytes): send a .pth file written by torch.save."
        )
    if data.startswith(b"\x80"):  # a pickle's PROTO opcode: a legacy file or a bare pickle
        unsafe = unsafe_globals(data)
        if unsafe:
            return _refused(unsafe[0], "the file is a bare pickle, not torch.save's zip format")
    if data.startswith(LEGACY_MAGIC):
        return CheckpointError(
            "The file is in PyTorch's legacy format (PyTorch before 1.6, or torch.save(..., "
            "_use_new_zipfile_serialization=False)). It is refused: that format allocates "
            "each tensor's memory from a size the file itself declares, so a small file can "
            "ask for any amount. Re-save it with a recent PyTorch: "
            "torch.save(torch.load(path, weights_only=True), path)."
        )
    if data.startswith(b"\x80"):
        return CheckpointError(
            "The file is a bare pickle (pickle.dump), not the zip archive torch.save writes: "
            "save it with torch.save(model.state_dict(), path)."
        )
    if data.startswith(b"PK"):
        return CheckpointError(
            "The file is a zip archive with no file in it first (torch.save's archives start "
            "with one): it is empty or damaged. Save it again with torch.save."
        )
    head = data[:60]
    if _looks_like_text(data[:512]):
        text = head.decode("utf-8", "replace").splitlines()[0] if head.strip() else ""
        return CheckpointError(
            f"The file is text (it starts {text!r}), not a .pth file: torch.save writes a zip "
            "archive of tensors. Send the file torch.save(model.state_dict(), path) wrote."
        )
    return CheckpointError(
        "The file is not a zip archive, which is what torch.save writes (it starts with bytes "
        f"{data[:8].hex(' ')}). Send the file torch.save(model.state_dict(), path) wrote."
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def directory_entries(data: bytes, stop_after: int) -> int | None:
    """The entries in the zip's central directory, counted the way ``zipfile`` walks it, but
    stopping once past ``stop_after``; None when there is no directory to walk.

    Run before ``zipfile`` builds an object per entry: 20 MiB of tiny entries would be 200,000
    objects and seconds of work, and the count in the end record may lie.
    """
    # The end record: 22 bytes, last in the file unless a comment (up to 65,535 bytes) follows.
    if data[-22:-18] == END_OF_DIRECTORY and data[-2:] == b"\0\0":
        end = len(data) - 22
    else:
        end = data.rfind(END_OF_DIRECTORY, max(0, len(data) - 22 - 65_535))
    if end < 0 or end + 22 > len(data):
        return None
    (size,) = struct.unpack_from("<I", data, end + 12)
    directory_end = end
    # Zip64 (torch.save writes it): the locator just before the end record, and before it the
    # zip64 end record holding the directory's real size. zipfile reads them from there too.
    locator, record = end - 20, end - 20 - 56
    if (
        record >= 0
        and data[locator : locator + 4] == ZIP64_LOCATOR
        and data[record : record + 4] == ZIP64_END
    ):
        directory_end = record
        (size,) = struct.unpack_from("<Q", data, record + 40)
    position = directory_end - size
    if position < 0:
        return None
    count = 0
    while position < directory_end:
        if position + 46 > len(data) or data[position : position + 4] != CENTRAL_ENTRY:
            return None
        name, extra, comment = struct.unpack_from("<HHH", data, position + 28)
        position += 46 + name + extra + comment
        count += 1
        if count > stop_after:
            break
    return count


def check_zip(data: bytes, limits: CheckpointLimits) -> None:
    """Refuse an archive that is damaged, too big unpacked, or not what torch.save writes."""
    entries = directory_entries(data, limits.max_checkpoint_entries)
    if entries is None:
        raise CheckpointError(
            "The file starts like a zip archive but its directory (the index at its end) is "
            "missing or unreadable: it is truncated or damaged. Download or save it again."
        )
    if entries > limits.max_checkpoint_entries:
        raise CheckpointError(
            f"The archive holds more than {limits.max_checkpoint_entries} entries, over the "
            "limit (setting max_checkpoint_entries).",
            limit="max_checkpoint_entries",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            _check_entries(infos, limits)
            for info in infos:
                # Reading every entry checks its CRC: the sizes checked above are the true ones,
                # and torch's own reader (which trusts them) reads no more than that.
                with archive.open(info) as stream:
                    while stream.read(CHUNK):
                        pass
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        OSError,
        ValueError,
        RuntimeError,
        struct.error,
        zlib.error,
    ) as error:
        raise CheckpointError(
            f"The file is a damaged zip archive ({error}): it may have been cut short. "
            "Download or save it again."
        ) from None


def _check_entries(infos: list[zipfile.ZipInfo], limits: CheckpointLimits) -> None:
    _check(
        "The archive's entry count",
        len(infos),
        limits.max_checkpoint_entries,
        "max_checkpoint_entries",
    )
    names = [info.filename for info in infos]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CheckpointError(
                f"The archive lists {name!r} twice; torch.save never does. It was crafted or "
                "damaged."
            )
        seen.add(name)
    for info in infos:
        if info.flag_bits & 0x1:
            raise CheckpointError(f"The archive's entry {info.filename!r} is encrypted.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(
                f"The archive's entry {info.filename!r} uses compression method "
                f"{info.compress_type}; a checkpoint's entries are stored (what torch.save "
                "writes) or deflated."
            )
    _check(
        "The archive unpacked",
        sum(info.file_size for info in infos),
        limits.max_checkpoint_unpacked_bytes,
        "max_checkpoint_unpacked_bytes",
        " bytes",
    )
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        raise CheckpointError(
            "The file is a TorchScript archive (torch.jit.save), which holds code to run; this "
            "app opens only torch.save files of tensors. Save model.state_dict() with "
            "torch.save."
        )
    pickles = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
    if not pickles:
        raise CheckpointError(
            "The file is a zip archive, but not one torch.save wrote: it has no "
            f"<folder>/data.pkl (it holds {_listed(names)}). Send the file "
            "torch.save(model.state_dict(), path) wrote."
        )
    if len(pickles) > 1:
        raise CheckpointError(
            "The archive holds several data.pkl files "
            f"{_listed([i.filename for i in pickles])}; torch.save writes one."
        )
    _check(
        "The archive's data.pkl",
        pickles[0].file_size,
        limits.max_checkpoint_pickle_bytes,
        "max_checkpoint_pickle_bytes",
        " bytes",
    )


def safe_load(data: bytes) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, containers and numbers, nothing else.

    The one place a checkpoint is unpickled. ``weights_only=True`` is passed explicitly, so no
    environment variable (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) can turn it off.
    """
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise _refusal(str(error)) from None
    except Exception as error:  # untrusted bytes: whatever torch's reader trips on is the file's
        raise CheckpointError(
            f"torch.load could not read the file: {_first_line(error)}. It may be damaged "
            "or crafted; save it again with torch.save."
        ) from None


GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")


def _refusal(message: str) -> CheckpointRefused:
    """The refusal for torch's UnpicklingError, naming the global the file asked for."""
    match = GLOBAL_IN_MESSAGE.search(message)
    if match:
        return _refused(python3_name(match.group(1)), None)
    return CheckpointRefused(
        "refused: torch.load(weights_only=True) would not unpickle the file "
        f"({_weights_only_reason(message)}), so nothing in it ran. A checkpoint holds only "
        "tensors and plain values: save model.state_dict() with torch.save."
    )


def _refused(name: str, how: str | None) -> CheckpointRefused:
    """``name``: the global (module.name) the pickle would have called."""
    where = f" ({how})" if how else ""
    if name.rsplit(".", 1)[-1][:1].isupper():  # a class: a pickled object, not a function call
        asks = f"asks to build a `{name}` object"
        hint = (
            " It looks like a whole pickled object (torch.save(model) saves the model itself): "
            "save model.state_dict() instead, as the notes advise."
        )
    else:
        asks, hint = f"asks to run `{name}`", ""
    return CheckpointRefused(
        f"refused: the file {asks} when it is unpickled{where}. Checkpoints are opened with "
        "torch.load(..., weights_only=True), which builds only tensors and plain values, so "
        f"nothing in it ran.{hint}",
        name,
    )


def python3_name(full: str) -> str:
    """``module.name`` as Python 3 spells it: pickle's protocol 2 writes Python 2 names
    (``commands.Popen`` for ``subprocess.Popen``), and torch's message drops ``builtins.``."""
    module, _, name = full.rpartition(".")
    if not module:
        return f"builtins.{name}"
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _weights_only_reason(message: str) -> str:
    """torch's own reason, without its advice to load the file unsafely."""
    for line in message.splitlines():
        line = line.strip()
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip()
        and not line.strip().startswith(("Weights only load failed", "Check the documentation"))
    ]
    return lines[0] if lines else message.strip()[:200]


# Globals a torch.save pickle names: torch's own rebuild functions and storages, and
# OrderedDict. Anything else in a bare pickle would run code when a plain pickle.load opens it.
SAFE_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set")
PICKLE_OPS_SCANNED = 200_000


def unsafe_globals(data: bytes) -> list[str]:
    """The globals a pickle would import and call, read without running it (pickletools).

    Used on a bare pickle only (torch.load is never given one), to say what it would have run.
    Reads the pickles one after another (a legacy torch file is several) up to a bound.
    """
    found: list[str] = []
    strings: list[str] = []  # the strings pushed so far: STACK_GLOBAL takes the last two
    memo: dict[int, str | None] = {}
    last_string: str | None = None  # the value just pushed, when it was a string
    stream = io.BytesIO(data)
    ops = 0
    try:
        while stream.tell() < len(data) and ops < PICKLE_OPS_SCANNED:
            for opcode, arg, _pos in pickletools.genops(stream):
                ops += 1
                if ops >= PICKLE_OPS_SCANNED:
                    break
                name = opcode.name
                pushed: str | None = None
                if name in ("GLOBAL", "INST") and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif ("UNICODE" in name or "STRING" in name) and isinstance(arg, str | bytes):
                    pushed = arg if isinstance(arg, str) else arg.decode("latin-1")
                elif name == "MEMOIZE":
                    memo[len(memo)] = last_string
                    pushed = last_string
                elif name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int):
                    memo[arg] = last_string
                    pushed = last_string
                elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                    pushed = memo.get(arg)
                if pushed is not None and pushed is not last_string:
                    strings.append(pushed)
                last_string = pushed
    except Exception:
        pass  # a damaged pickle: what was read so far is what it would have run first
    names = [python3_name(name) for name in found]
    return [name for name in names if not name.startswith(SAFE_GLOBAL_PREFIXES)]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first[:300]


def walk(value: Any, limits: CheckpointLimits) -> None:
    """Refuse a structure nested deeper or holding more items than the limits (no recursion:
    a crafted file can nest lists a million deep, or share one list so that it counts twice at
    every level)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    items = 1
    while stack:
        current, depth = stack.pop()
        if isinstance(current, Mapping):
            size = 2 * len(current)
        elif isinstance(current, list | tuple | set | frozenset):
            size = len(current)
        else:
            continue
        if size == 0:
            continue
        if depth >= limits.max_checkpoint_depth:
            raise CheckpointError(
                f"The file's structure nests containers more than {limits.max_checkpoint_depth} "
                "deep, over the limit (setting max_checkpoint_depth). A checkpoint is a dict of "
                "a few dicts of tensors.",
                limit="max_checkpoint_depth",
            )
        items += size  # counted before the children are listed, so a huge one is never copied
        if items > limits.max_checkpoint_items:
            raise CheckpointError(
                f"The file's structure holds more than {limits.max_checkpoint_items} values, "
                "over the limit (setting max_checkpoint_items).",
                limit="max_checkpoint_items",
            )
        children = (
            [part for pair in current.items() for part in pair]
            if isinstance(current, Mapping)
            else list(current)
        )
        stack.extend((child, depth + 1) for child in children)


# -- what the file holds ----------------------------------------------------------------------


def classify(loaded: Any, size: int) -> Opened:
    """A state_dict (name -> tensor) or a checkpoint (a dict with the model's state_dict)."""
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"The file holds {describe(loaded)}, not a state_dict (a dict of name -> tensor, "
            "what model.state_dict() gives) or a checkpoint (a dict with a 'model' key holding "
            "one)."
        )
    model_key = next((k for k in MODEL_KEYS if isinstance(loaded.get(k), Mapping)), None)
    if model_key is None:
        problem = _not_a_state_dict(loaded)
        if problem is None:
            return Opened("state_dict", dict(loaded), size)
        keys = [_key(k) for k in loaded]
        raise CheckpointError(
            f"The file holds a dict, but neither a state_dict ({problem}) nor a checkpoint "
            f"(no 'model' or 'Model' key holding a state_dict; its keys are {_listed(keys)})."
        )
    state = loaded[model_key]
    problem = _not_a_state_dict(state)
    if problem is not None:
        raise CheckpointError(
            f"The checkpoint's {model_key!r} should be a state_dict (name -> tensor), but "
            f"{problem}."
        )
    opened = Opened("checkpoint", dict(state), size)
    used = {model_key}
    optimizer_key = next((k for k in OPTIMIZER_KEYS if k in loaded), None)
    if optimizer_key is not None:
        opened.optimizer = optimizer_summary(loaded[optimizer_key])
        if opened.optimizer is not None:
            used.add(optimizer_key)
    epoch = loaded.get("epoch")
    if _is_int(epoch):
        opened.epoch = int(epoch)
        used.add("epoch")
    task = loaded.get("task")
    if isinstance(task, str):
        opened.task = task
        used.add("task")
    config = loaded.get("config")
    if isinstance(config, Mapping):
        opened.config = plain(config)
        used.add("config")
    opened.other_keys = {
        _key(key): describe(value) for key, value in loaded.items() if key not in used
    }
    return opened


def _not_a_state_dict(value: Mapping[Any, Any]) -> str | None:
    """What keeps ``value`` from being a state_dict, or None when it is one."""
    for key, item in value.items():
        if not isinstance(key, str):
            return f"its key {_key(key)} is {describe(key)}, not a name"
        if not isinstance(item, torch.Tensor):
            return f"key {key!r} holds {describe(item)}, not a tensor"
    return None


def tensor_info(tensor: torch.Tensor) -> dict[str, Any]:
    return {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "numel": tensor.numel(),
    }


def optimizer_summary(value: Any) -> dict[str, Any] | None:
    """An optimizer's state_dict, described: each group's hyperparameters and parameter ids,
    and each parameter's state (momentum buffers and the like). None when ``value`` is not one.
    """
    if not isinstance(value, Mapping):
        return None
    groups, state = value.get("param_groups"), value.get("state")
    if not isinstance(groups, list) or not isinstance(state, Mapping):
        return None
    described_groups = []
    for group in groups:
        if not isinstance(group, Mapping):
            return None
        params = group.get("params")
        if not isinstance(params, list) or not all(_is_int(p) for p in params):
            return None
        hyper = {str(k): plain(v) for k, v in group.items() if k != "params" and _is_hyper(v)}
        described_groups.append({**hyper, "params": [int(p) for p in params]})
    described_state: list[dict[str, Any]] = []
    for param, entry in state.items():
        if not _is_int(param) or not isinstance(entry, Mapping):
            return None
        described_state.append(
            {
                "param": int(param),
                "buffers": [
                    {"name": str(name), **tensor_info(buffer)}
                    for name, buffer in entry.items()
                    if isinstance(buffer, torch.Tensor)
                ],
                "scalars": {
                    str(name): plain(item)
                    for name, item in entry.items()
                    if not isinstance(item, torch.Tensor)
                },
            }
        )
    described_state.sort(key=lambda s: s["param"])
    return {"param_groups": described_groups, "state": described_state}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.is_complex()
    return value is None or isinstance(value, bool | int | float | str)


def _is_hyper(value: Any) -> bool:
    """A scalar, or a short list of them (Adam's betas, the group's param_names)."""
    if isinstance(value, list | tuple):
        return all(_is_scalar(v) for v in value)
    return _is_scalar(value)


def plain(value: Any) -> Any:
    """``value`` as JSON: numbers, strings, lists and dicts; non-finite floats become null and
    anything else a short description. Only for walked (depth-bounded) structures."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 and not value.is_complex():
            return plain(value.item())
        return describe(value)
    if isinstance(value, Mapping):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return describe(value)


def describe(value: Any) -> str:
    """A short description of a value for a learner: its type and, when small, the value."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"a Tensor ({dtype}, shape {list(value.shape)})"
    if isinstance(value, bool | int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"str {shown!r}"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} of {_count(len(value), 'key')}"
    if isinstance(value, list | tuple | set | frozenset):
        return f"a {type(value).__name__} of {_count(len(value), 'item')}"
    return f"a {type(value).__name__}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _key(key: Any) -> str:
    return key if isinstance(key, str) else describe(key)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    more = f", and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return f"[{shown}{more}]"


def _shape(shape: list[int]) -> str:
    return "x".join(str(n) for n in shape) if shape else "scalar"


def inspect_checkpoint(data: bytes, limits: CheckpointLimits) -> dict[str, Any]:
    """What ``POST /api/checkpoints/inspect`` answers: the file's tensors and what came with
    them (epoch, task, config, optimizer state, any other keys)."""
    return summary(open_checkpoint(data, limits))


def summary(opened: Opened) -> dict[str, Any]:
    tensors = [{"key": key, **tensor_info(tensor)} for key, tensor in opened.model.items()]
    return {
        "format": opened.format,
        "epoch": opened.epoch,
        "tensors": tensors,
        # Every tensor of the model's state_dict: parameters, and buffers where it has any.
        "total_parameters": sum(t["numel"] for t in tensors),
        "task": opened.task,
        "config": opened.config,
        "optimizer": opened.optimizer,
        "other_keys": opened.other_keys,
        "bytes": opened.bytes,
    }


# -- loading into a task's model and evaluating -------------------------------------------------


def choose_task(
    opened: Opened, task: str | None, config: dict[str, Any] | None
) -> tuple[Task, BaseModel]:
    """The task (the request's, else the file's, else digits-cnn) and its validated config
    (the request's, else the file's when it is the same task's, else the task's defaults)."""
    name = task or opened.task or DEFAULT_TASK
    try:
        spec = get_task(name)
    except UnknownTask as error:
        if task is None and opened.task is not None:
            raise UnknownTask(
                f"The checkpoint's task {name!r} is not one this app trains ({error}); send the "
                "form field task to choose one.",
                "task",
            ) from None
        raise
    if config is None and opened.task in (None, spec.name):
        try:
            return spec, spec.validate(opened.config)
        except ConfigError as error:
            raise ConfigError(
                f"The checkpoint's config does not fit {name}: {error}. Send the form field "
                "config to choose one.",
                error.field,
            ) from None
    return spec, spec.validate(config)


def compare(
    state: Mapping[str, torch.Tensor], model: nn.Module
) -> tuple[list[str], list[str], list[Mismatch]]:
    """The keys the model needs and the file lacks, the file's keys the model has no place for,
    and the shapes that differ: all of them (torch's own ``load_state_dict`` error stops at the
    first kind it meets)."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        Mismatch(key, list(state[key].shape), list(tensor.shape))
        for key, tensor in expected.items()
        if key in state and state[key].shape != tensor.shape
    ]
    return missing, unexpected, mismatched


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], task: str) -> nn.Module:
    """``model.load_state_dict(state)`` (strict) once every key and shape fits; then
    ``model.eval()``."""
    missing, unexpected, mismatched = compare(state, model)
    if missing or unexpected or mismatched:
        raise ArchitectureMismatch(task, missing, unexpected, mismatched)
    try:
        # A plain dict: the file's own _metadata (layer versions) is not trusted with anything.
        model.load_state_dict(dict(state), strict=True)
    except (RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"load_state_dict refused the tensors: {_first_line(error)}"
        ) from None
    return model.eval()


def evaluate_checkpoint(
    data: bytes,
    limits: CheckpointLimits,
    task: str | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``POST /api/checkpoints/evaluate`` answers: the file loaded into the task's model
    (``build_model``, strict ``load_state_dict``, ``eval()``) and scored on its held-out data."""
    opened = open_checkpoint(data, limits)
    spec, cfg = choose_task(opened, task, config)
    build, score = spec.build_model, spec.evaluate
    if build is None or score is None:
        raise ConfigError(f"{spec.name} checkpoints cannot be evaluated here.", "task")
    model = load_into(build(cfg), opened.model, spec.name)
    with torch.no_grad():
        result = score(model, cfg)
    accuracy = result.get("accuracy")
    return {
        "task": spec.name,
        "config": cfg.model_dump(mode="json"),
        "format": opened.format,
        "epoch": opened.epoch,
        "loss": plain(float(result["loss"])),  # a diverged model's NaN loss becomes null
        "accuracy": None if accuracy is None else plain(float(accuracy)),
        "n": int(result["n"]),
        "predicted": [int(p) for p in result.get("predicted", [])],
        "labels": [int(label) for label in result.get("labels", [])],
        "result": plain(result),
    }
