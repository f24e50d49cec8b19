"""``from torch.utils.tensorboard import SummaryWriter``: real TensorBoard event files, in memory.

The writer is PyTorch's own ``SummaryWriter`` (summaries built by ``torch.utils.tensorboard``,
records framed by TensorBoard's own ``RecordWriter``); only the event file underneath differs.
TensorBoard's ``EventFileWriter`` makes a directory, opens a file on disk and starts a thread, so
``SummaryWriter`` here gets a ``FileWriter`` whose event writer appends each record to a file of the
program's in-memory files (``lib_files``), counted against ``max_files`` and ``max_file_bytes``.
Nothing touches the disk, no thread starts, and every event is in the file as soon as it is added.
At the end of the run the event files are handed back as one ``tensorboard.zip`` that
``tensorboard --logdir`` reads once unzipped.
"""

from __future__ import annotations

import io
import itertools
import posixpath
import time
import zipfile
from datetime import datetime
from typing import Any

import numpy as np
import torch
from tensorboard.compat.proto import event_pb2
from tensorboard.summary.writer.record_writer import RecordWriter
from torch.utils.tensorboard.summary import scalar
from torch.utils.tensorboard.writer import FileWriter, SummaryWriter

from app.sandbox import lib_files
from app.sandbox.guards import Guard
from app.sandbox.library import (
    CONTEXT_MANAGERS,
    NAMESPACES,
    Namespace,
    SafeFunction,
    register_type,
    type_phrase,
)
from app.sandbox.limits import SandboxRefused, over_limit
from app.sandbox.modules import MODULES, register, register_outputs

Args = tuple[Any, ...]
Kwargs = dict[str, Any]

# What the event file names say where plain TensorBoard puts the host name and process id.
HOST = "sandbox"
# Histogram bins and PR-curve thresholds one call may ask for.
MAX_BINS = 10_000
# Characters of a tag (TensorBoard shows them as titles).
MAX_TAG_CHARS = 1_000
_FILE_NUMBERS = itertools.count()


class _Sink:
    """The file-like object TensorBoard's RecordWriter writes to: one of the program's files."""

    def __init__(self, files: lib_files.ProgramFiles, stored: lib_files.StoredFile) -> None:
        self._files = files
        self._stored = stored
        self.closed = False

    def write(self, data: bytes) -> None:
        self._files.append(self._stored, data)

    def flush(self) -> None:
        """Every record is in the file as soon as it is written."""

    def close(self) -> None:
        self.closed = True


class _MemoryEventWriter:
    """TensorBoard's EventFileWriter, writing the same event file into the program's files."""

    def __init__(self, files: lib_files.ProgramFiles, logdir: str, suffix: str) -> None:
        self._logdir = logdir
        name = f"events.out.tfevents.{int(time.time()):010d}.{HOST}.1.{next(_FILE_NUMBERS)}"
        stored = files.create(posixpath.join(logdir, name + suffix), kind="tensorboard")
        self._records = RecordWriter(_Sink(files, stored))
        # The first event of every event file, as EventFileWriter writes it.
        self.add_event(
            event_pb2.Event(
                wall_time=time.time(),
                file_version="brain.Event:2",
                source_metadata=event_pb2.SourceMetadata(
                    writer="tensorboard.summary.writer.event_file_writer"
                ),
            )
        )

    def get_logdir(self) -> str:
        return self._logdir

    def add_event(self, event: Any) -> None:
        if not isinstance(event, event_pb2.Event):
            raise TypeError(f"Expected an event_pb2.Event proto,  but got {type(event)}")
        self._records.write(event.SerializeToString())

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        self._records.close()

    def reopen(self) -> None:
        """Nothing to reopen: a closed SummaryWriter makes a new event file when used again."""


class _MemoryFileWriter(FileWriter):
    """torch's FileWriter (add_event, add_summary...) on an in-memory event file."""

    def __init__(self, files: lib_files.ProgramFiles, log_dir: str, suffix: str) -> None:
        self.event_writer = _MemoryEventWriter(files, log_dir, suffix)


class SandboxSummaryWriter(SummaryWriter):
    """PyTorch's SummaryWriter whose event files are the program's in-memory files."""

    def __init__(self, files: lib_files.ProgramFiles, log_dir: str, **options: Any) -> None:
        self._files = files
        super().__init__(log_dir=log_dir, **options)

    def __repr__(self) -> str:
        return f"<torch.utils.tensorboard.writer.SummaryWriter object at {id(self):#x}>"

    def _get_file_writer(self) -> Any:
        """As SummaryWriter's own, with the in-memory FileWriter."""
        if self.all_writers is None or self.file_writer is None:
            writer = _MemoryFileWriter(self._files, self.log_dir, self.filename_suffix)
            self.file_writer = writer  # type: ignore[assignment]
            self.all_writers = {writer.get_logdir(): writer}  # type: ignore[assignment]
            if self.purge_step is not None:
                writer.add_event(
                    event_pb2.Event(step=self.purge_step, file_version="brain.Event:2")
                )
                writer.add_event(
                    event_pb2.Event(
                        step=self.purge_step,
                        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
                    )
                )
                self.purge_step = None
        return self.file_writer

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: dict[str, Any],
        global_step: Any = None,
        walltime: Any = None,
    ) -> None:
        """As SummaryWriter's own: one run (a sub-directory) per tag, in-memory FileWriters."""
        walltime = time.time() if walltime is None else walltime
        logdir = self._get_file_writer().get_logdir()
        writers: dict[str, Any] = self.all_writers  # type: ignore[assignment]
        for tag, scalar_value in tag_scalar_dict.items():
            run = logdir + "/" + main_tag.replace("/", "_") + "_" + tag
            writer = writers.get(run)
            if writer is None:
                writer = writers[run] = _MemoryFileWriter(self._files, run, self.filename_suffix)
            writer.add_summary(scalar(main_tag, scalar_value), global_step, walltime)


# -- checking arguments ----------------------------------------------------------------------------


def _tag(value: Any, what: str = "tag") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > MAX_TAG_CHARS:
        raise SandboxRefused(f"a {what} longer than {MAX_TAG_CHARS} characters is not allowed")
    return value


def _step(value: Any, what: str = "global_step") -> Any:
    """A step or walltime as a plain number (a one-element tensor or array becomes one)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    raise TypeError(f"{what} must be a number, not {type_phrase(value)}")


def _values(value: Any, what: str) -> Any:
    """Data to summarise: a tensor, an array, a number or a list of numbers."""
    if isinstance(value, torch.Tensor | np.ndarray | bool | int | float | np.generic):
        return value
    if isinstance(value, list | tuple):
        return np.asarray(value, dtype=float)
    raise TypeError(f"{what} must be a tensor, an array or a number, not {type_phrase(value)}")


_bind = lib_files.bind_arguments


def _count(value: Any, name: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer")
    if value > limit:
        raise SandboxRefused(f"{name} over {limit} is not allowed in this sandbox")
    return value


def _image_pixels(guard: Guard, image: Any, dataformats: Any, batched: bool) -> None:
    """Refuse an image bigger than ``max_figure_pixels`` before TensorBoard encodes it."""
    if not isinstance(dataformats, str):
        raise TypeError("dataformats must be a string such as 'CHW'")
    shape = tuple(image.shape) if isinstance(image, torch.Tensor | np.ndarray) else None
    if shape is None or len(shape) != len(dataformats):
        return  # TensorBoard raises its own error for the mismatch
    sizes = dict(zip(dataformats.upper(), shape, strict=True))
    pixels = sizes.get("H", 1) * sizes.get("W", 1) * (sizes.get("N", 1) if batched else 1)
    if pixels > guard.limits.max_figure_pixels:
        raise over_limit(f"an image of {pixels} pixels", guard.limits, "max_figure_pixels")


# -- the writer's methods --------------------------------------------------------------------------

Method = Any


def _add_scalar(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> None:
    given = _bind(
        "add_scalar",
        args,
        kwargs,
        ["tag", "scalar_value", "global_step", "walltime", "new_style", "double_precision"],
        {"global_step": None, "walltime": None, "new_style": False, "double_precision": False},
    )
    w.add_scalar(
        _tag(given["tag"]),
        _values(given["scalar_value"], "scalar_value"),
        _step(given["global_step"]),
        _step(given["walltime"], "walltime"),
        new_style=bool(given["new_style"]),
        double_precision=bool(given["double_precision"]),
    )


def _add_scalars(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> None:
    given = _bind(
        "add_scalars",
        args,
        kwargs,
        ["main_tag", "tag_scalar_dict", "global_step", "walltime"],
        {"global_step": None, "walltime": None},
    )
    table = given["tag_scalar_dict"]
    if not isinstance(table, dict):
        raise TypeError("tag_scalar_dict must be a dict of tag: value")
    guard.check_seq_len(len(table))
    values = {_tag(k): _values(v, "a scalar value") for k, v in table.items()}
    w.add_scalars(
        _tag(given["main_tag"], "main_tag"),
        values,
        _step(given["global_step"]),
        _step(given["walltime"], "walltime"),
    )


def _add_histogram(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> None:
    given = _bind(
        "add_histogram",
        args,
        kwargs,
        ["tag", "values", "global_step", "bins", "walltime", "max_bins"],
        {"global_step": None, "bins": "tensorflow", "walltime": None, "max_bins": None},
    )
    bins = given["bins"]
    if isinstance(bins, str):
        if bins != "tensorflow":
            raise SandboxRefused("add_histogram(): bins may be 'tensorflow' or a number here")
    else:
        _count(bins, "bins", MAX_BINS)
    if given["max_bins"] is not None:
        _count(given["max_bins"], "max_bins", MAX_BINS)
    w.add_histogram(
        _tag(given["tag"]),
        _values(given["values"], "values"),
        _step(given["global_step"]),
        bins,
        _step(given["walltime"], "walltime"),
        given["max_bins"],
    )


def _add_image(batched: bool) -> Method:
    name = "add_images" if batched else "add_image"

    def impl(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> None:
        given = _bind(
            name,
            args,
            kwargs,
            ["tag", "img_tensor", "global_step", "walltime", "dataformats"],
            {"global_step": None, "walltime": None, "dataformats": "NCHW" if batched else "CHW"},
        )
        image = _values(given["img_tensor"], "img_tensor")
        _image_pixels(guard, image, given["dataformats"], batched)
        getattr(w, name)(
            _tag(given["tag"]),
            image,
            _step(given["global_step"]),
            _step(given["walltime"], "walltime"),
            dataformats=given["dataformats"],
        )

    return impl


def _add_text(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> None:
    given = _bind(
        "add_text",
        args,
        kwargs,
        ["tag", "text_string", "global_step", "walltime"],
        {"global_step": None, "walltime": None},
    )
    text = given["text_string"]
    if not isinstance(text, str):
        raise TypeError("text_string must be a string")
    w.add_text(
        _tag(given["tag"]), text, _step(given["global_step"]), _step(given["walltime"], "walltime")
    )


def _add_pr_curve(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> None:
    given = _bind(
        "add_pr_curve",
        args,
        kwargs,
        ["tag", "labels", "predictions", "global_step", "num_thresholds", "weights", "walltime"],
        {"global_step": None, "num_thresholds": 127, "weights": None, "walltime": None},
    )
    weights = given["weights"]
    w.add_pr_curve(
        _tag(given["tag"]),
        _values(given["labels"], "labels"),
        _values(given["predictions"], "predictions"),
        _step(given["global_step"]),
        _count(given["num_thresholds"], "num_thresholds", MAX_BINS),
        None if weights is None else _values(weights, "weights"),
        _step(given["walltime"], "walltime"),
    )


def _add_graph(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> None:
    """Tracing a model with torch.jit is not done here: the script runs on without the graph."""
    guard.notice(
        "writer.add_graph() was skipped: this sandbox does not trace models, so the TensorBoard "
        "log has no graph (scalars, histograms and images are kept)"
    )


def _no_arguments(name: str) -> Method:
    def impl(guard: Guard, w: SandboxSummaryWriter, args: Args, kwargs: Kwargs) -> Any:
        if args or kwargs:
            raise TypeError(f"{name}() takes no arguments")
        return getattr(w, name)()

    return impl


register_type(
    SandboxSummaryWriter,
    {"log_dir": lambda w: w.log_dir},
    {
        "add_scalar": _add_scalar,
        "add_scalars": _add_scalars,
        "add_histogram": _add_histogram,
        "add_image": _add_image(batched=False),
        "add_images": _add_image(batched=True),
        "add_text": _add_text,
        "add_pr_curve": _add_pr_curve,
        "add_graph": _add_graph,
        "flush": _no_arguments("flush"),
        "close": _no_arguments("close"),
        "get_logdir": _no_arguments("get_logdir"),
    },
)
CONTEXT_MANAGERS.append(SandboxSummaryWriter)


def default_log_dir(comment: str = "") -> str:
    """``runs/<Mon>DD_HH-MM-SS_sandbox<comment>``, as PyTorch names it with the host name."""
    return posixpath.join("runs", datetime.now().strftime("%b%d_%H-%M-%S") + "_" + HOST + comment)


def _summary_writer(guard: Guard, args: Args, kwargs: Kwargs) -> SandboxSummaryWriter:
    given = _bind(
        "SummaryWriter",
        args,
        kwargs,
        ["log_dir", "comment", "purge_step", "max_queue", "flush_secs", "filename_suffix"],
        {
            "log_dir": None,
            "comment": "",
            "purge_step": None,
            "max_queue": 10,
            "flush_secs": 120,
            "filename_suffix": "",
        },
    )
    comment, suffix = given["comment"], given["filename_suffix"]
    if not isinstance(comment, str) or not isinstance(suffix, str):
        raise TypeError("SummaryWriter(): comment and filename_suffix must be strings")
    if "/" in suffix:
        raise ValueError("SummaryWriter(): filename_suffix cannot hold a '/'")
    log_dir = given["log_dir"] or default_log_dir(comment)
    if not isinstance(log_dir, str):
        raise TypeError(f"SummaryWriter(): log_dir must be a string, not {type_phrase(log_dir)}")
    lib_files.normalise(posixpath.join(log_dir, "events.out.tfevents" + suffix))
    purge_step = _step(given["purge_step"], "purge_step")
    for key in ("max_queue", "flush_secs"):
        if not isinstance(given[key], int | float) or isinstance(given[key], bool):
            raise TypeError(f"SummaryWriter(): {key} must be a number")
    return SandboxSummaryWriter(
        lib_files.program_files(guard),
        log_dir,
        comment=comment,
        purge_step=purge_step,
        max_queue=given["max_queue"],
        flush_secs=given["flush_secs"],
        filename_suffix=suffix,
    )


TENSORBOARD = Namespace(
    "torch.utils.tensorboard",
    {"SummaryWriter": SafeFunction("torch.utils.tensorboard.SummaryWriter", _summary_writer)},
)

# torch.utils comes from lib_data (imported first); made here only if it has not made it.
if "torch.utils" not in MODULES:
    register("torch.utils", Namespace("torch.utils", {}))
NAMESPACES["torch"].members.setdefault("utils", MODULES["torch.utils"])
MODULES["torch.utils"].members["tensorboard"] = TENSORBOARD
register("torch.utils.tensorboard", TENSORBOARD)


def tensorboard_zip(files: lib_files.ProgramFiles) -> bytes | None:
    """Every event file of the program, at its path under its log dir, in one zip."""
    logs = files.saved("tensorboard")
    if not logs:
        return None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in logs:
            archive.writestr(name, data)
    return buffer.getvalue()


def _outputs(guard: Guard) -> dict[str, list[dict[str, Any]]]:
    files = guard.extras.get("files")
    if not isinstance(files, lib_files.ProgramFiles):
        return {}
    data = tensorboard_zip(files)
    if data is None:
        return {}
    return {"files": [lib_files.file_item("tensorboard.zip", data, "tensorboard")]}


register_outputs(_outputs)
