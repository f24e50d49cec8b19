"""The Transfer learning figures: valid Plotly and strict JSON, and every curve and sweep point is
what a transfer run written here in plain PyTorch measures (its own data split, sampler replay,
network, SGD and held-out scoring), from the same pretrained source weights.

Short runs (a few examples per class, a few epochs) and a two-point sweep keep this quick; the
page's full sweep is the lesson's own test's business."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from app.jobs import transfer as task
from app.lessons import transfer_learning as lesson
from app.viz import transfer_learning as figures

EXAMPLES, EPOCHS = 4, 3  # 20 labelled digits: two batches of 10 an epoch
SWEEP = (1, 3)
MODES = task.MODES


class Net(nn.Module):
    """Two conv blocks and a linear head, as the lesson describes the network."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        self.classifier = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def digits_5_to_9() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train pool, held out) of digits 5-9 relabelled 0-4, from a seed-0 80/20 split."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    held, train = order[: int(len(labels) * 0.2)], order[int(len(labels) * 0.2) :]

    def target(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = index[labels[index] >= 5]
        return images[keep], labels[keep] - 5

    return target(train), target(held)


def plain_run(
    mode: str, per_class: int, epochs: int, source: dict[str, torch.Tensor]
) -> dict[str, list[list[float]]]:
    """A transfer run at the task's defaults (lr 0.05, momentum 0.9, the body at a tenth of the
    rate when fine-tuning, batches of 10, seed 0), logged as [[step, value]] per metric."""
    (pool_x, pool_y), (test_x, test_y) = digits_5_to_9()
    gen = torch.Generator().manual_seed(0)
    picks = []
    for cls in range(5):
        where = (pool_y == cls).nonzero().flatten()
        picks.append(where[torch.randperm(len(where), generator=gen)[:per_class]])
    chosen = torch.cat(picks).sort().values
    x, y = pool_x[chosen], pool_y[chosen]
    metrics: dict[str, list[list[float]]] = {}

    def log(step: int, name: str, value: float) -> None:
        metrics.setdefault(name, []).append([step, value])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Net()
        if mode == "scratch":
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        else:
            body = {k.removeprefix("features."): v for k, v in source.items() if "features." in k}
            model.features.load_state_dict(body)
            if mode == "feature-extract":
                for p in model.features.parameters():
                    p.requires_grad_(False)
                optimizer = torch.optim.SGD(model.classifier.parameters(), lr=0.05, momentum=0.9)
            else:
                optimizer = torch.optim.SGD(
                    [
                        {"params": model.features.parameters(), "lr": 0.005},
                        {"params": model.classifier.parameters(), "lr": 0.05},
                    ],
                    momentum=0.9,
                )
        shuffle = torch.Generator()
        step = 0
        for epoch in range(epochs):
            shuffle.manual_seed(epoch)  # seed * 1000 + epoch, seed 0
            torch.empty((), dtype=torch.int64).random_(generator=shuffle)  # the loader's seed
            order = torch.randperm(len(y), generator=shuffle)
            correct = 0
            for start in range(0, len(order), 10):
                batch = order[start : start + 10]
                logits = model(x[batch])
                loss = nn.functional.cross_entropy(logits, y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                correct += int((logits.argmax(dim=1) == y[batch]).sum())
                log(step, "loss", loss.item())
            with torch.no_grad():
                held = model(test_x)
            log(step, "accuracy", correct / len(y))
            log(step, "val_loss", nn.functional.cross_entropy(held, test_y).item())
            log(step, "val_accuracy", (held.argmax(dim=1) == test_y).float().mean().item())
            log(step, "epoch", epoch + 1)
    return metrics


def valid(spec: dict[str, Any]) -> None:
    json.dumps(spec, allow_nan=False)
    go.Figure(spec)  # raises on any property plotly.js would not understand
    assert spec["data"]


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    return task.pretrained()[0]


@pytest.fixture(scope="module")
def runs() -> list[Any]:
    return [lesson.train_mode(mode, EXAMPLES, EPOCHS) for mode in MODES]


@pytest.fixture(scope="module")
def plain(source: dict[str, torch.Tensor]) -> dict[str, dict[str, list[list[float]]]]:
    return {mode: plain_run(mode, EXAMPLES, EPOCHS, source) for mode in MODES}


@pytest.fixture(scope="module")
def small_sweep() -> dict[str, Any]:
    """The lesson's own sweep, over fewer examples and epochs (and not cached)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lesson, "SWEEP_EXAMPLES", SWEEP)
        patch.setattr(lesson, "DEFAULTS", task.TransferConfig(epochs=2))
        return lesson.sweep.__wrapped__()


@pytest.fixture(scope="module")
def results(runs: list[Any], small_sweep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The page's result for each metric, the example runs being the short ones above."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lesson, "sweep", lambda: small_sweep)
        return {
            metric: lesson.explore(
                lesson.TransferParams(examples=EXAMPLES, epochs=EPOCHS, metric=metric),
                runs,
                examples=True,
            )
            for metric in lesson.METRICS
        }


def test_every_figure_is_strict_json_and_valid_for_plotly(
    results: dict[str, dict[str, Any]],
) -> None:
    for result in results.values():
        valid(figures.curves_figure(result["metric"], result["series"], result["per_epoch"]))
        valid(figures.sweep_figure(result["sweep"], MODES, result["chosen_examples"]))
    valid(figures.sweep_figure(results["val_accuracy"]["sweep"], MODES))  # no chosen line
    empty = figures.curves_figure("val_accuracy", [], True)  # no runs yet
    json.dumps(empty, allow_nan=False)
    go.Figure(empty)


@pytest.mark.parametrize("metric", lesson.METRICS)
def test_each_curve_is_what_a_plain_torch_run_measures(
    results: dict[str, dict[str, Any]],
    plain: dict[str, dict[str, list[list[float]]]],
    metric: str,
) -> None:
    result = results[metric]
    spec = figures.curves_figure(metric, result["series"], result["per_epoch"])
    assert [t["name"] for t in spec["data"]] == list(MODES)
    for trace, mode in zip(spec["data"], MODES, strict=True):
        mine = plain[mode][metric]
        if metric == "loss":  # per batch, by step
            assert trace["x"] == [step for step, _ in mine] == list(range(1, 2 * EPOCHS + 1))
        else:  # per epoch, by epoch
            assert trace["x"] == list(range(1, EPOCHS + 1))
        np.testing.assert_allclose(trace["y"], [v for _, v in mine], rtol=1e-5, atol=1e-6)
        assert trace["line"]["color"] == figures.MODE_COLOURS[mode]
        assert trace["mode"] == ("lines" if metric == "loss" else "lines+markers")
    yaxis = spec["layout"]["yaxis"]
    if metric.endswith("accuracy"):
        assert yaxis["range"] == [0, 1.02]
        assert all(0 <= v <= 1 for t in spec["data"] for v in t["y"])


def test_the_sweep_plots_each_modes_mean_and_final_held_out_accuracy(
    results: dict[str, dict[str, Any]], source: dict[str, torch.Tensor]
) -> None:
    result = results["val_accuracy"]
    spec = figures.sweep_figure(result["sweep"], MODES, result["chosen_examples"])
    traces = spec["data"]
    assert len(traces) == 2 * len(MODES)
    for i, mode in enumerate(MODES):
        mean_trace, final_trace = traces[2 * i], traces[2 * i + 1]
        curves = [[v for _, v in plain_run(mode, n, 2, source)["val_accuracy"]] for n in SWEEP]
        assert mean_trace["x"] == final_trace["x"] == list(SWEEP)
        np.testing.assert_allclose(mean_trace["y"], [np.mean(c) for c in curves], atol=1e-6)
        np.testing.assert_allclose(final_trace["y"], [c[-1] for c in curves], atol=1e-6)
        assert mean_trace["legendgroup"] == final_trace["legendgroup"] == mode
        assert final_trace["line"]["dash"] == "dot"
    layout = spec["layout"]
    assert layout["xaxis"]["type"] == "log" and layout["xaxis"]["tickvals"] == list(SWEEP)
    (chosen,) = layout["shapes"]
    assert chosen["x0"] == chosen["x1"] == EXAMPLES
    assert figures.sweep_figure(result["sweep"], MODES)["layout"]["shapes"] == []
