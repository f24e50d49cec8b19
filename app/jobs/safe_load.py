"""The safe-``torch.load`` gate: bytes from outside the app become a loaded value only once
every check has passed. It knows nothing of tasks or models; ``app.jobs.checkpoints`` says what a
loaded checkpoint holds and evaluates it.

Every file is untrusted. Before torch sees the bytes, ``open_untrusted`` checks that they are
the zip archive ``torch.save`` writes (never the legacy format, whose storages are allocated
from sizes the file itself declares), that the archive's entries, unpacked size and pickle are
within bounds, and that every entry's CRC holds, so the sizes it declares are the true ones.
Only then does ``torch.load(..., weights_only=True)`` unpickle it: that loader builds tensors,
plain containers and numbers and refuses every other global, so a pickle that would call
``os.system`` is refused before anything in it runs. The loaded structure is then walked with
bounds on nesting and items before anything else touches it.
"""

from __future__ import annotations

import _compat_pickle  # the Python 2 -> 3 module names that pickle's protocol 2 writes
import io
import pickle
import pickletools
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

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


# -- opening: the bytes, the zip, torch.load, the structure -----------------------------------


def open_untrusted(data: bytes, limits: CheckpointLimits) -> Any:
    """What ``torch.save`` wrote into ``data``, loaded only once every check below has passed
    and walked within the limits; or a ``CheckpointError`` saying why it is refused."""
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
    return loaded


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
            f"<folder>/data.pkl (it holds {listed(names)}). Send the file "
            "torch.save(model.state_dict(), path) wrote."
        )
    if len(pickles) > 1:
        raise CheckpointError(
            "The archive holds several data.pkl files "
            f"{listed([i.filename for i in pickles])}; torch.save writes one."
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
            f"torch.load could not read the file: {first_line(error)}. It may be damaged "
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


def first_line(error: BaseException) -> str:
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


def listed(names: list[str]) -> str:
    """``names`` for a message: the first ``SHOWN`` of them, then how many more."""
    shown = ", ".join(names[:SHOWN])
    more = f", and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return f"[{shown}{more}]"
