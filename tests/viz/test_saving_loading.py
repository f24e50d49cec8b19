"""The Saving and loading figures: valid Plotly and strict JSON, and every loss drawn is the loss
a plain PyTorch run measures (its own data split, nn.Sequential, SGD with momentum, and a
checkpoint kept in memory), resumed with and without the optimizer's state."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.lessons import saving_loading as lesson
from app.viz import saving_loading as figures

CONFIG = lesson.EXAMPLE  # 4 epochs, lr 0.01, batches of 64, seed 0


def plain_losses() -> dict[str, list[float]]:
    """Four epochs, a checkpoint, four more with and without the optimizer's state, and eight
    epochs unbroken: each batch's loss, in plain PyTorch."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(CONFIG.seed))
    train = order[len(labels) // 5 :]
    gen = torch.Generator()
    loader = DataLoader(
        TensorDataset(images[train], labels[train]),
        batch_size=CONFIG.batch_size,
        shuffle=True,
        generator=gen,
    )

    def model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = nn.Sequential(
            nn.Conv2d(1, CONFIG.channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(CONFIG.channels * 16, 10),
        )  # fmt: skip
        return model, torch.optim.SGD(model.parameters(), lr=CONFIG.learning_rate, momentum=0.9)

    def epochs(
        model: nn.Module, optimizer: torch.optim.Optimizer, first: int, count: int
    ) -> list[float]:
        losses = []
        for epoch in range(first, first + count):
            gen.manual_seed(CONFIG.seed * 1000 + epoch)
            for x, y in loader:
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        return losses

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CONFIG.seed)
        model, optimizer = model_and_optimizer()
        original = epochs(model, optimizer, 0, CONFIG.epochs)
        saved = copy.deepcopy({"model": model.state_dict(), "optimizer": optimizer.state_dict()})
        out = {"original": original}
        for key in ("with", "without"):
            model, optimizer = model_and_optimizer()
            model.load_state_dict(saved["model"])
            if key == "with":
                optimizer.load_state_dict(copy.deepcopy(saved["optimizer"]))
            out[key] = epochs(model, optimizer, CONFIG.epochs, CONFIG.epochs)
        torch.manual_seed(CONFIG.seed)
        model, optimizer = model_and_optimizer()
        out["unbroken"] = epochs(model, optimizer, 0, 2 * CONFIG.epochs)
    return out


def valid(spec: dict[str, Any]) -> None:
    json.dumps(spec, allow_nan=False)
    go.Figure(spec)  # raises on any property plotly.js would not understand
    assert spec["data"]


@pytest.fixture(scope="module")
def resume() -> dict[str, Any]:
    return lesson.example()["resume"]


@pytest.fixture(scope="module")
def plain() -> dict[str, list[float]]:
    return plain_losses()


@pytest.fixture(scope="module")
def per_epoch(plain: dict[str, list[float]]) -> int:
    return len(plain["original"]) // CONFIG.epochs


def test_the_resume_figure_draws_each_runs_loss_per_step(
    resume: dict[str, Any], plain: dict[str, list[float]], per_epoch: int
) -> None:
    spec = figures.resume_figure(resume)
    valid(spec)
    unbroken, original, with_state, without_state = spec["data"]
    last = CONFIG.epochs * per_epoch  # the checkpoint's step
    spans = {
        "unbroken": range(1, 2 * last + 1),
        "original": range(1, last + 1),
        "with": range(last + 1, 2 * last + 1),
        "without": range(last + 1, 2 * last + 1),
    }
    for trace, key in zip(spec["data"], ("unbroken", "original", "with", "without"), strict=True):
        assert trace["x"] == list(spans[key])
        np.testing.assert_allclose(trace["y"], plain[key], rtol=0, atol=1e-6)
        assert trace["customdata"] == [-(-s // per_epoch) for s in spans[key]]  # the epoch
    assert unbroken["line"]["width"] > original["line"]["width"]  # the pale band underneath
    assert original["name"] == "epochs 1–4, then saved"
    assert with_state["name"] == "epochs 5–8, + optimizer state"
    assert without_state["name"] == "epochs 5–8, fresh optimizer"
    (marker,) = spec["layout"]["shapes"]
    assert marker["x0"] == marker["x1"] == last + 0.5
    assert spec["layout"]["annotations"][0]["text"] == f"checkpoint: epoch 4, step {last}"


def test_the_difference_figure_is_each_continuation_minus_the_unbroken_run(
    resume: dict[str, Any], plain: dict[str, list[float]], per_epoch: int
) -> None:
    spec = figures.difference_figure(resume)
    valid(spec)
    last = CONFIG.epochs * per_epoch
    after = np.array(plain["unbroken"][last:])
    with_state, without_state = spec["data"]
    for trace, key in ((with_state, "with"), (without_state, "without")):
        assert trace["x"] == list(range(last + 1, 2 * last + 1))
        np.testing.assert_allclose(trace["y"], np.array(plain[key]) - after, rtol=0, atol=2e-6)
    assert with_state["y"] == [0.0] * last  # with its momentum the run never knew it stopped
    gap = np.array(without_state["y"])
    assert gap[0] == 0.0 and np.abs(gap).max() > 0.05  # same first batch, then momentum tells
    assert spec["layout"]["shapes"][0]["y0"] == 0.0


def record(run_id: str, loss: list[list[float]], per_epoch: int, **extra: Any) -> lesson.RunRecord:
    first_epoch = -(-int(loss[0][0]) // per_epoch) if loss else 1
    count = len(loss) // per_epoch
    epochs = [[float((first_epoch + e) * per_epoch), float(first_epoch + e)] for e in range(count)]
    metrics: lesson.Metrics = {"loss": loss, "epoch": epochs} if loss else {}
    return lesson.RunRecord(
        run_id,
        "digits-cnn",
        extra.pop("status", "completed"),
        extra.pop("config", {}),
        extra.pop("resume_from", None),
        metrics,
    )


def test_the_chain_figure_draws_each_run_and_one_marker_per_checkpoint(
    resume: dict[str, Any], plain: dict[str, list[float]], per_epoch: int
) -> None:
    records = [
        record("r1", resume["original"], per_epoch),
        record("r2", resume["with"], per_epoch, resume_from="r1"),
        record(
            "r3", resume["without"], per_epoch, resume_from="r1", config={"resume_optimizer": False}
        ),
        record("r4", [], per_epoch, resume_from="r2", status="queued"),  # nothing logged yet
    ]
    runs = [lesson.describe_run(r) for r in records]
    spec = figures.chain_figure(runs)
    valid(spec)
    traces = spec["data"]
    assert [t["meta"]["run"] for t in traces] == ["r1", "r2", "r3", "r4"]
    last = CONFIG.epochs * per_epoch
    for trace, key in zip(traces[:3], ("original", "with", "without"), strict=True):
        np.testing.assert_allclose(trace["y"], plain[key], rtol=0, atol=1e-6)
    assert traces[0]["x"] == list(range(1, last + 1))
    assert traces[1]["x"] == traces[2]["x"] == list(range(last + 1, 2 * last + 1))
    assert traces[3]["x"] == [] and traces[3]["y"] == []  # grows live
    assert [t["line"]["dash"] for t in traces] == ["solid", "solid", "dot", "solid"]
    assert traces[1]["name"] == "r2 · epochs 5–8 · + optimizer state"
    assert traces[2]["name"] == "r3 · epochs 5–8 · fresh optimizer"
    # Two continuations of one checkpoint share its marker; a run with no step yet has none.
    (marker,) = spec["layout"]["shapes"]
    assert marker["x0"] == last + 1 - 0.5
    assert [a["text"] for a in spec["layout"]["annotations"]] == ["checkpoint of r1"]
