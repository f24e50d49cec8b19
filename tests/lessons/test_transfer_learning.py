"""The Transfer learning lesson's numbers: what each mode freezes, the curves by epoch, and the
sweep whose sentences the page prints."""

from __future__ import annotations

import numpy as np
import pytest

from app.jobs import transfer as task
from app.lessons import transfer_learning as transfer
from app.lessons.errors import LessonInputError
from app.lessons.tracking import TrackedRun

BODY = (8 * 1 * 3 * 3 + 8) + (16 * 8 * 3 * 3 + 16)  # two conv layers' weights and biases
HEAD = 64 * 5 + 5


def test_the_frozen_table_counts_every_parameter_of_each_mode() -> None:
    table = transfer.frozen_table()
    assert table["modes"]["feature-extract"]["trainable"] == HEAD
    assert table["modes"]["feature-extract"]["frozen"] == BODY
    assert table["modes"]["finetune"]["trainable"] == BODY + HEAD
    assert table["modes"]["scratch"]["frozen"] == 0
    rows = {r["name"]: r for r in table["rows"]}
    assert sum(r["numel"] for r in rows.values()) == BODY + HEAD
    assert rows["features.0.weight"]["feature-extract"] == {"trains": False, "lr": None}
    assert rows["features.0.weight"]["finetune"]["lr"] == pytest.approx(0.005)
    assert rows["classifier.bias"]["finetune"]["lr"] == pytest.approx(0.05)
    assert len(table["modes"]["finetune"]["groups"]) == 2


def test_curves_are_read_by_epoch_and_summarised() -> None:
    run = TrackedRun(
        id="r",
        label="r",
        task="transfer",
        status="completed",
        config={"mode": "scratch"},
        metrics={
            "val_accuracy": [[5, 0.5], [10, 0.85], [15, 0.9]],
            "epoch": [[5, 3], [10, 4], [15, 5]],  # a resumed run: epochs 3-5
        },
        summary=None,
    )
    curve = transfer.epoch_curve(run, "val_accuracy")
    assert curve == [(3, 0.5), (4, 0.85), (5, 0.9)]
    summary = transfer.curve_summary(curve)
    assert summary["mean"] == pytest.approx(np.mean([0.5, 0.85, 0.9]))
    assert (summary["first"], summary["final"], summary["reach_epoch"]) == (0.5, 0.9, 4)


def test_the_example_runs_are_the_task_at_its_defaults() -> None:
    runs = transfer.example_runs()
    assert [r.config["mode"] for r in runs] == list(task.MODES)
    for run in runs:
        assert run.config["examples_per_class"] == 10
        assert len(run.metrics["val_accuracy"]) == task.TransferConfig().epochs
    result = transfer.explore(transfer.TransferParams(), runs, examples=True)
    by_mode = {r["mode"]: r for r in result["runs"]}
    assert result["verdict"]["lead"] == pytest.approx(
        max(by_mode["feature-extract"]["mean"], by_mode["finetune"]["mean"])
        - by_mode["scratch"]["mean"]
    )
    assert result["verdict"]["lead"] > 0  # the bar: transfer beats scratch on average


def test_the_sweep_backs_every_sentence_the_page_prints() -> None:
    sweep = transfer.sweep()
    rows = {(r["examples"], r["mode"]): r for r in sweep["rows"]}
    story = sweep["story"]
    fewest = sweep["examples"][0]
    best = max(rows[(fewest, m)]["mean"] for m in ("feature-extract", "finetune"))
    assert story["lead"] == pytest.approx(best - rows[(fewest, "scratch")]["mean"])
    assert story["lead"] > 0.15  # "where transfer pays most"
    for n in sweep["examples"]:
        top_final = max(rows[(n, m)]["final"] for m in ("feature-extract", "finetune"))
        caught = rows[(n, "scratch")]["final"] >= top_final - transfer.CATCH_UP
        if story["final_from"] is not None and n < story["final_from"]:
            assert not caught
        if n == story["final_from"]:
            assert caught
    most = sweep["examples"][-1]
    # "feature extraction levels off below the others"
    assert rows[(most, "feature-extract")]["final"] < rows[(most, "finetune")]["final"]
    assert rows[(most, "feature-extract")]["final"] < rows[(most, "scratch")]["final"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (transfer.TransferParams(examples=0), "examples must be from 1 to 100"),
        (transfer.TransferParams(epochs=101), "epochs must be from 1 to 100"),
        (transfer.TransferParams(metric="nope"), "metric must be one of"),
        (transfer.TransferParams(focus="nope"), "focus must be one of"),
    ],
)
def test_bad_params_name_the_field_and_the_bound(
    params: transfer.TransferParams, message: str
) -> None:
    with pytest.raises(LessonInputError, match=message):
        transfer.check_params(params)
