"""SummaryWriter for learner programs: real event files, in memory, handed back as a zip."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard.summary import histogram as histogram_summary

import app.sandbox.modules  # noqa: F401  (registers every library)
from app.sandbox import lib_tensorboard
from app.sandbox.guards import Guard
from app.sandbox.library import CONTEXT_MANAGERS, NAMESPACES, get_attribute
from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused
from app.sandbox.modules import MODULES, collect_outputs

WRITER = MODULES["torch.utils.tensorboard"].members["SummaryWriter"]


def writer(guard: Guard, *args: Any, **kwargs: Any) -> Any:
    return WRITER.impl(guard, args, kwargs)


def method(guard: Guard, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    bound = get_attribute(obj, name)
    return bound.impl(guard, bound.obj, args, kwargs)


def unzip_log(guard: Guard, into: Path) -> list[str]:
    """The tensorboard.zip of the run, unpacked into ``into``; the names it holds."""
    items = [f for f in collect_outputs(guard).get("files", []) if f["kind"] == "tensorboard"]
    assert [f["name"] for f in items] == ["tensorboard.zip"]
    data = base64.b64decode(items[0]["base64"])
    assert items[0]["bytes"] == len(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(into)
        return archive.namelist()


def accumulate(path: Path) -> EventAccumulator:
    events = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    events.Reload()
    return events


@pytest.fixture()
def guard() -> Guard:
    return Guard(SandboxLimits())


def test_summary_writer_is_importable_from_torch_utils_tensorboard() -> None:
    assert MODULES["torch.utils"].members["tensorboard"] is MODULES["torch.utils.tensorboard"]
    assert NAMESPACES["torch"].members["utils"] is MODULES["torch.utils"]
    assert lib_tensorboard.SandboxSummaryWriter in CONTEXT_MANAGERS


def test_scalars_read_back_with_tensorboards_own_reader(
    guard: Guard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    w = writer(guard)
    log_dir = get_attribute(w, "log_dir")
    assert re.fullmatch(r"runs/[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_sandbox", log_dir)
    losses = [1.0 / (i + 1) for i in range(10)]
    for i, loss in enumerate(losses):
        method(guard, w, "add_scalar", "training loss", torch.tensor(loss), i)
    method(guard, w, "add_scalars", "run", {"train": 0.5, "test": 0.25}, 3)
    method(guard, w, "close")
    assert not (tmp_path / "runs").exists()  # nothing was written to the disk
    out = tmp_path / "out"
    names = unzip_log(guard, out)
    assert all(name.startswith(log_dir + "/") for name in names)
    events = accumulate(out / log_dir)
    scalars = events.Scalars("training loss")
    assert [s.step for s in scalars] == list(range(10))
    np.testing.assert_allclose([s.value for s in scalars], losses, rtol=1e-6)
    for tag, value in [("train", 0.5), ("test", 0.25)]:
        run = accumulate(out / log_dir / f"run_{tag}")
        assert [(s.step, s.value) for s in run.Scalars("run")] == [(3, value)]


def test_histograms_and_images_are_logged(guard: Guard, tmp_path: Path) -> None:
    w = writer(guard, "runs/exp1", comment="ignored")
    torch.manual_seed(0)
    values = torch.randn(1_000, requires_grad=True)
    method(guard, w, "add_histogram", "weights", values, 2)
    method(guard, w, "add_histogram", "weights10", values, 2, bins=10)
    method(guard, w, "add_image", "digit", torch.rand(1, 8, 6))
    method(guard, w, "add_text", "note", "hello", 0)
    method(guard, w, "add_graph", object(), None)
    assert any("add_graph" in notice for notice in guard.notices)
    method(guard, w, "flush")
    unzip_log(guard, tmp_path)
    events = accumulate(tmp_path / "runs" / "exp1")
    histogram = events.Histograms("weights")[0]
    assert histogram.step == 2
    assert histogram.histogram_value.num == 1_000
    assert histogram.histogram_value.sum == pytest.approx(float(values.detach().sum()), rel=1e-5)
    ten = events.Histograms("weights10")[0].histogram_value
    plain = histogram_summary("weights10", values, bins=10).value[0].histo  # PyTorch's own summary
    assert list(ten.bucket) == list(plain.bucket)
    assert list(ten.bucket_limit) == list(plain.bucket_limit)
    assert sum(ten.bucket) == 1_000
    image = events.Images("digit")[0]
    assert (image.width, image.height) == (6, 8)


def test_the_writer_is_a_context_manager_and_reopens_a_new_event_file(
    guard: Guard, tmp_path: Path
) -> None:
    with writer(guard, log_dir="logs") as w:
        method(guard, w, "add_scalar", "a", 1.0, 0)
    method(guard, w, "add_scalar", "a", 2.0, 1)  # after close: a new event file, as in PyTorch
    method(guard, w, "close")
    names = unzip_log(guard, tmp_path)
    assert len(names) == 2 and all("events.out.tfevents." in n for n in names)
    values = [(s.step, s.value) for s in accumulate(tmp_path / "logs").Scalars("a")]
    assert sorted(values) == [(0, 1.0), (1, 2.0)]


def test_event_files_count_against_the_file_limits() -> None:
    guard = Guard(SandboxLimits(max_file_bytes=2_000))
    w = writer(guard)
    with pytest.raises(SandboxLimitExceeded, match="max_file_bytes"):
        for i in range(1_000):
            method(guard, w, "add_scalar", "loss", float(i), i)
    guard = Guard(SandboxLimits(max_files=2))
    writer(guard, "a")
    writer(guard, "b")
    with pytest.raises(SandboxLimitExceeded, match="max_files"):
        writer(guard, "c")


def test_bad_arguments_fail_before_the_work(guard: Guard) -> None:
    w = writer(guard, "runs/x")
    with pytest.raises(SandboxRefused, match="bins"):
        method(guard, w, "add_histogram", "h", torch.randn(10), bins="auto")
    with pytest.raises(SandboxRefused, match="bins over"):
        method(guard, w, "add_histogram", "h", torch.randn(10), bins=10**7)
    with pytest.raises(TypeError, match="tag must be a string"):
        method(guard, w, "add_scalar", 5, 1.0)
    with pytest.raises(TypeError, match="scalar_value must be"):
        method(guard, w, "add_scalar", "t", NAMESPACES["torch"])
    with pytest.raises(PermissionError):
        writer(guard, "/etc/logs")
    small = Guard(SandboxLimits(max_figure_pixels=100))
    with pytest.raises(SandboxLimitExceeded, match="max_figure_pixels"):
        method(small, writer(small), "add_image", "big", torch.rand(3, 20, 20))


def test_no_outputs_without_a_writer(guard: Guard) -> None:
    assert "files" not in collect_outputs(guard)


def test_a_learner_script_logs_a_run_tensorboard_reads(tmp_path: Path) -> None:
    from app.sandbox.interpreter import run_answer

    script = "\n".join(
        [
            "from torch.utils.tensorboard import SummaryWriter",
            "writer = SummaryWriter('runs/mnist')",
            "for epoch in range(3):",
            "    writer.add_scalar('loss', 1.0 / (epoch + 1), epoch)",
            "writer.close()",
        ]
    )
    answer = run_answer(script, SandboxLimits()).as_dict()
    assert answer["error"] is None
    (item,) = [f for f in answer["files"] if f["kind"] == "tensorboard"]
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(item["base64"]))) as archive:
        archive.extractall(tmp_path)
    scalars = accumulate(tmp_path / "runs" / "mnist").Scalars("loss")
    assert [(s.step, round(s.value, 6)) for s in scalars] == [(0, 1.0), (1, 0.5), (2, 0.333333)]
