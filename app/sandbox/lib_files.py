"""Files without a filesystem: each program's own in-memory files, and the data files the app ships.

``torch.save(obj, "model.pth")``, ``open("notes.txt", "w")``, ``np.save`` and ``plt.savefig`` write
into the program's ``ProgramFiles`` (``guard.extra("files", ...)``), counted against
``max_files`` and ``max_file_bytes`` before anything is kept; ``torch.load``, ``open``,
``np.loadtxt``/``np.genfromtxt`` and ``np.load`` read them back, and also the read-only data files
under ``data/`` (``data/wine/wine.csv``, built from scikit-learn's wine table, and the lessons'
sample pictures as ``data/pictures/<name>.npy``). Nothing here touches the server's disk. At the
end of a run every file the program saved is handed back for download.

``torch.save`` is the real one, writing into memory; ``torch.load`` is the real one with
``weights_only=True`` always, PyTorch's own default, so a pickled whole model fails to load with
PyTorch's own message while a state_dict or a checkpoint dict loads.
"""

from __future__ import annotations

import base64
import errno
import functools
import importlib.util
import io
import math
import pickle
import posixpath
import re
import struct
import sys
import threading
import time
import types
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.lessons.images import SAMPLES, sample_image
from app.sandbox import guards
from app.sandbox.guards import Guard
from app.sandbox.library import (
    BUILTINS,
    CONTEXT_MANAGERS,
    NAMESPACES,
    SafeFunction,
    normalise_dtype,
    register_type,
)
from app.sandbox.limits import SandboxLimits, SandboxRefused, over_limit
from app.sandbox.modules import register_outputs

Args = tuple[Any, ...]
Kwargs = dict[str, Any]

# Longest path a program may name (Linux allows 4096; no learner needs more than this).
MAX_PATH_CHARS = 200
# The program's folder as absolute paths name it: "/sandbox/model.pth" is "model.pth".
WORKING_DIR = "/sandbox"

WINE_HEADER = (
    "Wine,Alcohol,Malic.acid,Ash,Acl,Mg,Phenols,Flavanoids,Nonflavanoid.phenols,Proanth,"
    "Color.int,Hue,OD,Proline"
)


def _number(value: float) -> str:
    """A table value as the original CSV writes it: shortest round-trip digits, no ".0"."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def wine_csv() -> str:
    """``data/wine/wine.csv`` as courses use it: a header, then per row the class (1, 2, 3) and
    the 13 features of scikit-learn's wine table (178 rows)."""
    lines = [WINE_HEADER]
    for row in _sklearn_table("wine_data.csv"):
        features, label = row[:-1], row[-1]
        lines.append(",".join([str(int(float(label)) + 1), *(_number(float(v)) for v in features)]))
    return "\n".join(lines) + "\n"


def _sklearn_table(name: str) -> list[list[str]]:
    """The rows of a CSV table bundled in scikit-learn's ``datasets/data`` (what its ``load_*``
    reads), read as text without importing scikit-learn (seconds a worker need not spend)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn's bundled data is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    rows = path.read_text().splitlines()[1:]  # the first line is "rows,columns,class names"
    return [row.split(",") for row in rows if row]


@functools.cache
def _wine_bytes() -> bytes:
    return wine_csv().encode()


def _picture_npy(name: str) -> Callable[[], bytes]:
    """``data/pictures/<name>.npy``: a sample picture of the lessons as an (H, W, 3) uint8 array
    (``np.load`` it, then ``transforms.ToPILImage()``), the pixels the Transforms page shows."""

    @functools.cache
    def build() -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(sample_image(name), dtype=np.uint8), allow_pickle=False)
        return buffer.getvalue()

    return build


# The read-only data files a program may read, by normalised path; each built once, on first use.
DATA_FILES: dict[str, Callable[[], bytes]] = {
    "data/wine/wine.csv": _wine_bytes,
    **{f"data/pictures/{name}.npy": _picture_npy(name) for name in SAMPLES},
}


# -- paths -----------------------------------------------------------------------------------------


def normalise(path: Any) -> str:
    """A path the program gave as the key of its files ("./data/x" -> "data/x"), or the error
    Python would raise for it."""
    if isinstance(path, bytes):
        path = path.decode("utf-8", "surrogateescape")
    if not isinstance(path, str):
        raise TypeError(f"expected str, bytes or os.PathLike object, not {type(path).__name__}")
    if "\x00" in path:
        raise ValueError("embedded null byte")
    if len(path) > MAX_PATH_CHARS:
        raise OSError(
            errno.ENAMETOOLONG,
            f"File name too long (at most {MAX_PATH_CHARS} characters in this sandbox)",
            path,
        )
    if not path:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    relative = path
    if path.startswith("/"):
        if path != WORKING_DIR and not path.startswith(WORKING_DIR + "/"):
            raise PermissionError(
                errno.EACCES,
                "Permission denied (a program's files are in memory, in its own folder: use a "
                "relative path such as 'model.pth')",
                path,
            )
        relative = path[len(WORKING_DIR) + 1 :] or "."
    normal = posixpath.normpath(relative)
    if normal == ".." or normal.startswith("../"):
        raise PermissionError(
            errno.EACCES,
            "Permission denied (a program's files stay inside its own folder)",
            path,
        )
    return normal


# -- the program's files ---------------------------------------------------------------------------


class StoredFile:
    """One file a program wrote: its bytes and what it is ("file", or "tensorboard" for event
    files, which are handed back zipped by ``lib_tensorboard``)."""

    __slots__ = ("data", "kind")

    def __init__(self, kind: str) -> None:
        self.data = bytearray()
        self.kind = kind


class ProgramFiles:
    """The in-memory files of one program run, with ``max_files`` and ``max_file_bytes`` checked
    before each byte is kept."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.stored: dict[str, StoredFile] = {}
        self.total = 0

    def _is_dir(self, key: str) -> bool:
        if key == ".":
            return True
        prefix = key + "/"
        return any(name.startswith(prefix) for name in (*self.stored, *DATA_FILES))

    def exists(self, key: str) -> bool:
        return key in self.stored or key in DATA_FILES

    def read(self, path: str) -> bytes:
        """The bytes of a program file or data file (``path`` as the program gave it)."""
        key = normalise(path)
        stored = self.stored.get(key)
        if stored is not None:
            return bytes(stored.data)
        source = DATA_FILES.get(key)
        if source is not None:
            return source()
        if self._is_dir(key):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    def create(self, path: str, kind: str = "file", truncate: bool = True) -> StoredFile:
        """The file at ``path`` to write into (made, or emptied when ``truncate``)."""
        key = normalise(path)
        if key in DATA_FILES:
            raise PermissionError(
                errno.EACCES,
                "Permission denied (the data files that come with the sandbox are read-only)",
                path,
            )
        if self._is_dir(key):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        parts = key.split("/")
        for end in range(1, len(parts)):
            if self.exists("/".join(parts[:end])):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
        stored = self.stored.get(key)
        if stored is None:
            count = len(self.stored) + 1
            if count > self.limits.max_files:
                raise over_limit(f"saving {count} files", self.limits, "max_files")
            stored = self.stored[key] = StoredFile(kind)
        elif truncate:
            self.total -= len(stored.data)
            stored.data.clear()
            stored.kind = kind
        return stored

    def reserve(self, nbytes: int, replacing: Any = None) -> None:
        """Refuse before ``nbytes`` more bytes would take the files over ``max_file_bytes``
        (``replacing``: a path whose current bytes the new ones replace)."""
        old = 0
        if isinstance(replacing, str):
            try:
                stored = self.stored.get(normalise(replacing))
            except (OSError, ValueError):
                stored = None
            old = len(stored.data) if stored is not None else 0
        total = self.total - old + nbytes
        if total > self.limits.max_file_bytes:
            raise over_limit(f"files of {total} bytes in all", self.limits, "max_file_bytes")

    def append(self, stored: StoredFile, data: bytes) -> None:
        self.reserve(len(data))
        stored.data.extend(data)
        self.total += len(data)

    def write(self, path: str, data: bytes, kind: str = "file") -> None:
        """Replace the file at ``path`` with ``data`` (counted before the old bytes go)."""
        self.reserve(len(data), replacing=path)
        self.append(self.create(path, kind), data)

    def saved(self, kind: str) -> list[tuple[str, bytes]]:
        """(path, bytes) of every file of ``kind`` the program saved, in the order made."""
        return [(key, bytes(f.data)) for key, f in self.stored.items() if f.kind == kind]


def program_files(guard: Guard) -> ProgramFiles:
    """The files of the program ``guard`` runs (made on first use)."""
    files: ProgramFiles = guard.extra("files", lambda: ProgramFiles(guard.limits))
    return files


# -- open() ----------------------------------------------------------------------------------------

_MODES = {
    "r": ("r", False),
    "rt": ("r", False),
    "rb": ("r", True),
    "w": ("w", False),
    "wt": ("w", False),
    "wb": ("w", True),
    "a": ("a", False),
    "at": ("a", False),
    "ab": ("a", True),
}
_PYTHON_MODE = re.compile(r"^(?=[^rwxa]*[rwxa][^rwxa]*$)(?!.*(.).*\1)[rwxabt+]+$")
_ENCODINGS = frozenset({"utf-8", "utf8", "UTF-8", "UTF8"})


class SandboxFile:
    """What ``open()`` returns: a file of the program's in-memory files, read like Python's own
    (text decoding and newlines by ``io.TextIOWrapper``) and written straight into the files."""

    def __init__(self, files: ProgramFiles, path: str, mode: str, newline: str | None) -> None:
        self.name = path
        self.mode = mode
        self.closed = False
        self._files = files
        kind, binary = _MODES[mode]
        self.binary = binary
        self.writing = kind != "r"
        self._reader: io.BufferedIOBase | io.TextIOBase | None = None
        self._stored: StoredFile | None = None
        if self.writing:
            self._stored = files.create(path, truncate=kind == "w")
        else:
            raw = io.BytesIO(files.read(path))
            self._reader = raw if binary else io.TextIOWrapper(raw, "utf-8", newline=newline)

    def __repr__(self) -> str:
        if not self.binary:
            return f"<_io.TextIOWrapper name={self.name!r} mode={self.mode!r} encoding='UTF-8'>"
        kind = "BufferedWriter" if self.writing else "BufferedReader"
        return f"<_io.{kind} name={self.name!r}>"

    @property
    def readable(self) -> bool:
        return self._reader is not None

    def _open_reader(self) -> Any:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if self._reader is None:
            raise io.UnsupportedOperation("not readable")
        return self._reader

    def read(self, size: int = -1) -> Any:
        return self._open_reader().read(size)

    def readline(self, size: int = -1) -> Any:
        return self._open_reader().readline(size)

    def readlines(self) -> list[Any]:
        return list(self._open_reader().readlines())

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if self._stored is None:
            raise io.UnsupportedOperation("not writable")
        if self.binary:
            if not isinstance(data, bytes | bytearray):
                raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")
            self._files.append(self._stored, bytes(data))
            return len(data)
        if not isinstance(data, str):
            raise TypeError(f"write() argument must be str, not {type(data).__name__}")
        self._files.append(self._stored, data.encode("utf-8"))
        return len(data)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> SandboxFile:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        self._open_reader()
        return self

    def __next__(self) -> Any:
        line = self._open_reader().readline()
        if not line:
            raise StopIteration
        return line


def _open(guard: Guard, args: Args, kwargs: Kwargs) -> SandboxFile:
    names = ["file", "mode", "buffering", "encoding", "errors", "newline"]
    if len(args) > len(names):
        raise TypeError(f"open() takes at most {len(names)} arguments ({len(args)} given)")
    given = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"'{key}' is an invalid keyword argument for open()")
        if key in given:
            raise TypeError(f"argument for open() given by name ('{key}') and position")
        given[key] = value
    if "file" not in given:
        raise TypeError("open() missing required argument 'file' (pos 1)")
    mode = given.get("mode", "r")
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    if mode not in _MODES:
        if _PYTHON_MODE.match(mode):
            raise SandboxRefused(
                f"open(): mode '{mode}' is not available in this sandbox; use 'r', 'rb', 'w', "
                "'wb' or 'a'"
            )
        raise ValueError(f"invalid mode: '{mode}'")
    encoding = given.get("encoding")
    if encoding is not None and encoding not in _ENCODINGS:
        raise SandboxRefused("open(): files in this sandbox are read and written as UTF-8")
    if given.get("errors") not in (None, "strict"):
        raise SandboxRefused("open(): only errors='strict' is available in this sandbox")
    if given.get("buffering", -1) != -1:
        raise SandboxRefused("open(): buffering is not available in this sandbox")
    newline = given.get("newline")
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError(f"illegal newline value: {newline!r}")
    files = program_files(guard)
    _data_ready(guard, given["file"])
    return SandboxFile(files, given["file"], mode, newline)


OPEN = SafeFunction("open", _open)
BUILTINS["open"] = OPEN  # the builtin, reading and writing this run's files only


def _file_method(name: str) -> Callable[[Guard, SandboxFile, Args, Kwargs], Any]:
    def impl(guard: Guard, f: SandboxFile, args: Args, kwargs: Kwargs) -> Any:
        if kwargs:
            raise TypeError(f"{name}() takes no keyword arguments")
        if name in ("read", "readline") and args and not isinstance(args[0], int | type(None)):
            raise TypeError(f"argument should be integer or None, not '{type(args[0]).__name__}'")
        if name in ("read", "readline") and args and args[0] is None:
            args = (-1,)
        result = getattr(f, name)(*args)
        if isinstance(result, list):
            guard.check_seq_len(len(result))
        return result

    return impl


def _writelines(guard: Guard, f: SandboxFile, args: Args, kwargs: Kwargs) -> None:
    if kwargs or len(args) != 1:
        raise TypeError("writelines() takes exactly one argument")
    for line in guard.bounded(args[0]):
        f.write(line)


def _flush(guard: Guard, f: SandboxFile, args: Args, kwargs: Kwargs) -> None:
    if f.closed:
        raise ValueError("I/O operation on closed file.")


register_type(
    SandboxFile,
    {"name": lambda f: f.name, "mode": lambda f: f.mode, "closed": lambda f: f.closed},
    {
        **{name: _file_method(name) for name in ("read", "readline", "readlines", "write")},
        "close": _file_method("close"),
        "writelines": _writelines,
        "flush": _flush,
    },
)
CONTEXT_MANAGERS.append(SandboxFile)
guards.register_iterable(SandboxFile)


def _data_ready(guard: Guard, path: Any) -> None:
    """Build a data file before the program reads it, on the clock of the sandbox, not the
    program's (the wine table comes from scikit-learn, imported on first use)."""
    if not isinstance(path, str):
        return
    try:
        key = normalise(path)
    except (OSError, ValueError):
        return
    source = DATA_FILES.get(key)
    if source is not None:
        started = time.monotonic()
        source()
        guard.extend_deadline(time.monotonic() - started)


def read_source(guard: Guard, f: Any, binary: bool, what: str) -> Any:
    """The whole content a reader (``torch.load``, ``np.loadtxt``) takes from a path or an open
    file: bytes when ``binary``, else text."""
    if isinstance(f, SandboxFile):
        if f.binary != binary and f.readable:
            wanted = "binary ('rb')" if binary else "text ('r')"
            raise TypeError(f"{what}: open the file in {wanted} mode")
        return f.read()
    if isinstance(f, bytes):
        f = f.decode("utf-8", "surrogateescape")
    if not isinstance(f, str):
        raise TypeError(
            f"{what}: expected a file name (str) or a file from open(), not {type(f).__name__}"
        )
    _data_ready(guard, f)
    data = program_files(guard).read(f)
    return data if binary else data.decode("utf-8")


def write_target(guard: Guard, f: Any, data: bytes, what: str) -> None:
    """Write ``data`` to a path (replacing the file) or to a file opened with 'wb'."""
    if isinstance(f, SandboxFile):
        if not f.binary:
            raise TypeError(f"{what}: open the file in binary mode ('wb')")
        f.write(data)
        return
    if not isinstance(f, str | bytes):
        raise TypeError(
            f"{what}: expected a file name (str) or a file from open(), not {type(f).__name__}"
        )
    program_files(guard).write(f if isinstance(f, str) else f.decode(), data)


# -- torch.save / torch.load -----------------------------------------------------------------------

# Modules whose classes and functions a saved object may refer to: what torch.save writes for
# tensors, modules, optimizers' state and NumPy arrays. A sandbox wrapper (a function, a module
# namespace, a file) is refused like an unpicklable lambda.
_SAVABLE_ROOTS = frozenset({"torch", "numpy", "collections", "builtins", "copyreg", "_codecs"})
_SAVE_LOCK = threading.Lock()


def _origin(obj: Any) -> str:
    if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        return str(getattr(obj, "__module__", None) or "")
    return type(obj).__module__


class _SavingPickler(pickle.Pickler):
    """The pickler torch.save uses here: it refuses what is not data, counts tensor bytes
    before they are written, and makes learner classes findable as ``__main__.<Name>``."""

    files: ProgramFiles
    target: Any
    placed: dict[str, Any]
    storages: set[int]
    pending: int

    def reducer_override(self, obj: Any) -> Any:
        learner_type = obj if isinstance(obj, type) else type(obj)
        if getattr(learner_type, "_sandbox_class", None) is not None:
            _place_in_main(learner_type, self.placed)
            return NotImplemented
        if _origin(obj).split(".")[0] not in _SAVABLE_ROOTS:
            raise pickle.PicklingError(
                f"Can't pickle {obj!r}: it is not data (torch.save takes tensors, dicts, lists, "
                "numbers, strings, modules and optimizer state dicts; save model.state_dict())"
            )
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in self.storages:
                self.storages.add(storage.data_ptr())
                self.pending += storage.nbytes()
                self.files.reserve(self.pending, replacing=self.target)
        return NotImplemented


def _place_in_main(cls: type, placed: dict[str, Any]) -> None:
    """Bind a learner class at ``__main__.<Name>`` (as plain Python has it) until the save ends."""
    name = cls.__qualname__
    main = sys.modules["__main__"]
    if name in placed or getattr(main, name, None) is cls:
        return
    placed[name] = main.__dict__.get(name, _ABSENT)
    setattr(main, name, cls)


_ABSENT = object()


def _restore_main(placed: dict[str, Any]) -> None:
    main = sys.modules["__main__"]
    for name, old in placed.items():
        if old is _ABSENT:
            main.__dict__.pop(name, None)
        else:
            setattr(main, name, old)


def _pickle_module(files: ProgramFiles, target: Any, placed: dict[str, Any]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module whose Pickler is ``_SavingPickler`` for this save."""

    class Pickler(_SavingPickler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.files = files
            self.target = target
            self.placed = placed
            self.storages = set()
            self.pending = 0

    module = types.ModuleType("pickle")
    module.Pickler = Pickler  # type: ignore[attr-defined]
    module.dump = pickle.dump  # type: ignore[attr-defined]
    return module


def bind_arguments(
    name: str, args: Args, kwargs: Kwargs, names: list[str], defaults: dict[str, Any]
) -> dict[str, Any]:
    """Python's binding of ``args``/``kwargs`` to ``names`` (with its TypeErrors), for the
    functions of ``lib_files`` and ``lib_tensorboard``."""
    if len(args) > len(names):
        raise TypeError(f"{name}() takes {len(names)} arguments but {len(args)} were given")
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"{name}() got an unexpected keyword argument '{key}'")
        if key in bound:
            raise TypeError(f"{name}() got multiple values for argument '{key}'")
        bound[key] = value
    for key in names:
        if key not in bound:
            if key not in defaults:
                raise TypeError(f"{name}() missing 1 required positional argument: '{key}'")
            bound[key] = defaults[key]
    return bound


def _torch_save(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    given = bind_arguments(
        "save",
        args,
        kwargs,
        ["obj", "f", "pickle_protocol"],
        {"pickle_protocol": 2},
    )
    protocol = given["pickle_protocol"]
    if type(protocol) is not int or not 2 <= protocol <= pickle.HIGHEST_PROTOCOL:
        raise ValueError(f"pickle protocol must be an int from 2 to {pickle.HIGHEST_PROTOCOL}")
    f = given["f"]
    if isinstance(f, str | bytes):
        normalise(f)  # a bad path fails before the work, as it does in PyTorch
    files = program_files(guard)
    buffer = io.BytesIO()
    placed: dict[str, Any] = {}
    with _SAVE_LOCK:
        try:
            torch.save(
                given["obj"],
                buffer,
                pickle_module=_pickle_module(files, f, placed),
                pickle_protocol=protocol,
            )
        finally:
            _restore_main(placed)
    data = buffer.getvalue()
    write_target(guard, f, data, "torch.save()")


def _check_zip(data: bytes) -> None:
    """A file torch.load may open: a zip of stored (uncompressed) records, as torch.save writes
    them, so what is read is never bigger than the file."""
    if not data.startswith(b"PK\x03\x04"):
        if data[:1] == b"\x80":
            raise SandboxRefused(
                "torch.load reads files in the format torch.save writes since PyTorch 1.6 "
                "(a zip archive); this one is in the legacy format"
            )
        raise pickle.UnpicklingError(f"invalid load key, {data[:1]!r}.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise RuntimeError(f"PytorchStreamReader failed reading zip archive: {exc}") from None
    unpacked = sum(entry.file_size for entry in entries)
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries) or unpacked > len(data):
        raise SandboxRefused(
            "torch.load reads the uncompressed archives torch.save writes; this file is compressed"
        )


_MAP_LOCATIONS = (str, torch.device, dict, type(None))


def _torch_load(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    given = bind_arguments(
        "load",
        args,
        kwargs,
        ["f", "map_location", "pickle_module", "weights_only", "mmap"],
        {"map_location": None, "pickle_module": None, "weights_only": None, "mmap": None},
    )
    if given["weights_only"] is False:
        raise SandboxRefused(
            "torch.load(weights_only=False) is not available in this sandbox: unpickling "
            "arbitrary objects could run any code on the server. Save and load the weights "
            "instead: torch.save(model.state_dict(), FILE), then "
            "model.load_state_dict(torch.load(FILE))"
        )
    if given["pickle_module"] is not None or given["mmap"]:
        raise SandboxRefused("torch.load() takes only f, map_location and weights_only here")
    location = given["map_location"]
    if not isinstance(location, _MAP_LOCATIONS) or (
        isinstance(location, dict)
        and not all(isinstance(k, str) and isinstance(v, str) for k, v in location.items())
    ):
        raise SandboxRefused(
            "torch.load(): map_location may be a device or a device name such as 'cpu'"
        )
    data = read_source(guard, given["f"], True, "torch.load()")
    _check_zip(data)
    result = torch.load(io.BytesIO(data), map_location=location, weights_only=True)
    _track_loaded(guard, result)
    return result


def _track_loaded(guard: Guard, value: Any) -> None:
    """Count the tensors and arrays a load made, wherever they sit in the result."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor | np.ndarray):
            guard.track(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


# -- NumPy text and .npy files ---------------------------------------------------------------------


def _estimate_numbers(text: str, delimiter: Any) -> int:
    """An upper bound of the numbers a table of ``text`` holds, counted without splitting it."""
    lines = text.count("\n") + 1
    head = text[:100_000].splitlines()[:20]
    if isinstance(delimiter, str) and delimiter:
        fields = max((line.count(delimiter) + 1 for line in head), default=1)
    else:
        fields = max((len(line.split()) for line in head), default=1)
    return lines * fields


def _text_table(name: str, fn: Callable[..., Any], names: list[str], defaults: Kwargs) -> Any:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        given = bind_arguments(name, args, kwargs, names, defaults)
        for key in ("delimiter", "comments"):
            value = given.get(key)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name}(): {key} must be a string or None")
        for key, value in given.items():
            if key in ("fname", "dtype", "delimiter", "comments", "usecols"):
                continue
            if value is not None and not isinstance(value, bool | int | float | str):
                raise TypeError(f"{name}(): {key} must be a number")
        usecols = given.get("usecols")
        if usecols is not None:
            columns = usecols if isinstance(usecols, list | tuple) else [usecols]
            guard.check_seq_len(len(columns))
            if not all(isinstance(c, int) for c in columns):
                raise TypeError(f"{name}(): usecols must be an integer or a list of integers")
        if given.get("dtype") not in (None, float):  # float: the default, not a program value
            given["dtype"] = normalise_dtype(given["dtype"])
        fname = given.pop("fname")
        if isinstance(fname, list | tuple):
            lines = guard.bounded(fname)
            if not all(isinstance(line, str) for line in lines):
                raise TypeError(f"{name}(): a list of lines must hold strings")
            text = "\n".join(lines)
        else:
            text = read_source(guard, fname, False, f"np.{name}()")
        guard.check_elements(_estimate_numbers(text, given.get("delimiter")), "array")
        result = fn(io.StringIO(text), **given)
        if isinstance(result, np.ndarray) and result.dtype.kind not in guards.ARRAY_KINDS:
            raise TypeError(
                f"np.{name}() made an array of dtype {result.dtype}; this sandbox keeps arrays "
                "of numbers (give dtype=float)"
            )
        return guard.check_result(result)

    return SafeFunction(f"np.{name}", impl)


_LOADTXT = _text_table(
    "loadtxt",
    np.loadtxt,
    ["fname", "dtype", "comments", "delimiter", "skiprows", "usecols", "unpack", "ndmin"],
    {
        "dtype": float,
        "comments": "#",
        "delimiter": None,
        "skiprows": 0,
        "usecols": None,
        "unpack": False,
        "ndmin": 0,
    },
)
_GENFROMTXT = _text_table(
    "genfromtxt",
    np.genfromtxt,
    [
        "fname",
        "dtype",
        "comments",
        "delimiter",
        "skip_header",
        "skip_footer",
        "usecols",
        "filling_values",
        "max_rows",
    ],
    {
        "dtype": float,
        "comments": "#",
        "delimiter": None,
        "skip_header": 0,
        "skip_footer": 0,
        "usecols": None,
        "filling_values": None,
        "max_rows": None,
    },
)


def _np_save(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    given = bind_arguments(
        "save", args, kwargs, ["file", "arr", "allow_pickle"], {"allow_pickle": True}
    )
    array = given["arr"]
    if not isinstance(array, np.ndarray):
        guard.check_elements(guards.data_elements(guard, array, "an array"), "array")
        array = np.asarray(array)
        guard.track(array)
    if array.dtype.kind not in guards.ARRAY_KINDS:
        raise TypeError(f"arrays of dtype {array.dtype} are not supported in this sandbox")
    target = given["file"]
    if isinstance(target, str) and not target.endswith(".npy"):
        target += ".npy"  # what NumPy does with a file name
    program_files(guard).reserve(array.nbytes, replacing=target)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_target(guard, target, buffer.getvalue(), "np.save()")


def _np_load(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
    given = bind_arguments(
        "load",
        args,
        kwargs,
        ["file", "mmap_mode", "allow_pickle"],
        {"mmap_mode": None, "allow_pickle": False},
    )
    if given["mmap_mode"] is not None:
        raise SandboxRefused("np.load(): mmap_mode is not available in this sandbox")
    data = read_source(guard, given["file"], True, "np.load()")
    if data.startswith(b"PK\x03\x04"):
        raise SandboxRefused("np.load() reads .npy files here (np.save), not .npz archives")
    if data.startswith(b"\x93NUMPY"):
        _check_npy_header(guard, data)
    # Pickled arrays never load: a program may have written any bytes into its file.
    result = np.load(io.BytesIO(data), allow_pickle=False)
    return guard.check_result(result)


def _check_npy_header(guard: Guard, data: bytes) -> None:
    """Check the shape a .npy header declares before NumPy allocates it."""
    buffer = io.BytesIO(data)
    npy = np.lib.format
    try:
        version = npy.read_magic(buffer)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read_header(buffer)
    except (ValueError, struct.error):
        return  # NumPy raises its own error for a damaged header
    count = math.prod(int(d) for d in shape)
    guard.check_elements(count, "array")
    expected, available = count * dtype.itemsize, len(data) - buffer.tell()
    if expected > available:
        raise ValueError(f"EOF: reading array data, expected {expected} bytes got {available}")


# -- registration and outputs ----------------------------------------------------------------------

NAMESPACES["torch"].members["save"] = SafeFunction("torch.save", _torch_save)
NAMESPACES["torch"].members["load"] = SafeFunction("torch.load", _torch_load)
NAMESPACES["np"].members.update(
    {
        "loadtxt": _LOADTXT,
        "genfromtxt": _GENFROMTXT,
        "save": SafeFunction("np.save", _np_save),
        "load": SafeFunction("np.load", _np_load),
    }
)


def file_item(name: str, data: bytes, kind: str) -> dict[str, Any]:
    """One entry of the answer's ``files``."""
    return {
        "name": name,
        "bytes": len(data),
        "base64": base64.b64encode(data).decode("ascii"),
        "kind": kind,
    }


def _outputs(guard: Guard) -> dict[str, list[dict[str, Any]]]:
    files = guard.extras.get("files")
    if not isinstance(files, ProgramFiles):
        return {}
    saved = [file_item(name, data, "file") for name, data in files.saved("file")]
    return {"files": saved} if saved else {}


register_outputs(_outputs)
