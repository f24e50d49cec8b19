"""Saving and loading: the state_dict round trip, the checkpoint, resume continuity and the whole
model's refusal, each checked against plain torch; and the chain of resumed runs."""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from app.jobs.classifier import DigitsCNN, digits_split
from app.jobs.safe_load import CheckpointLimits
from app.jobs.tasks import TrainResult, save_checkpoint
from app.lessons import saving_loading as saving
from app.lessons.errors import LessonInputError
from app.web.forms import parse_bool


@pytest.fixture(scope="module")
def example() -> dict:
    return saving.example()


@pytest.fixture(scope="module")
def first() -> TrainResult:
    """The example's first four epochs, trained again here."""
    result, _ = saving.train(saving.EXAMPLE)
    return result


def losses(points: list[list[float]]) -> np.ndarray:
    return np.array([value for _, value in points])


def steps(points: list[list[float]]) -> list[int]:
    return [int(step) for step, _ in points]


# -- resume continuity ---------------------------------------------------------------------------


def test_resuming_with_the_optimizer_state_continues_the_unbroken_run_exactly(example) -> None:
    resume = example["resume"]
    per_epoch = resume["steps_per_epoch"]
    assert per_epoch == -(-1438 // saving.EXAMPLE.batch_size)  # 1,438 training digits, batch 64
    assert steps(resume["original"]) == list(range(1, 4 * per_epoch + 1))
    # The resumed run's steps and epochs carry on from the checkpoint's.
    assert steps(resume["with"]) == list(range(4 * per_epoch + 1, 8 * per_epoch + 1))
    assert resume["resumed_epochs"] == [5, 6, 7, 8]
    unbroken = losses(resume["unbroken"])
    assert steps(resume["unbroken"]) == list(range(1, 8 * per_epoch + 1))
    joined = np.concatenate([losses(resume["original"]), losses(resume["with"])])
    assert np.array_equal(joined, unbroken)
    assert resume["with_vs_unbroken"]["max_abs"] == 0.0
    assert resume["accuracy"]["with"] == resume["accuracy"]["unbroken"][4:]


def test_resuming_without_the_optimizer_state_parts_from_the_unbroken_run(example) -> None:
    resume = example["resume"]
    after = losses(resume["unbroken"])[len(resume["original"]) :]
    without = losses(resume["without"])
    assert without[0] == after[0]  # the first batch meets the same weights
    gap = without - after
    assert np.abs(gap).max() == pytest.approx(resume["without_vs_unbroken"]["max_abs"])
    assert np.abs(gap).max() > 0.05
    # Momentum restarts from zero: the first steps move less, so the loss stays higher.
    assert gap[1:30].mean() > 0.02
    assert resume["without_vs_unbroken"]["mean"] == pytest.approx(gap.mean())
    assert resume["accuracy"]["without"] != resume["accuracy"]["unbroken"][4:]


def test_plain_torch_resume_matches_the_page_and_momentum_is_what_differs(first) -> None:
    """An independent resume in plain torch (its own loop, its own SGD): with the saved
    momentum buffers it gives the page's curve; starting them at zero gives the other."""
    resume = saving.example()["resume"]
    buffer = io.BytesIO()
    torch.save(
        {"Model": first.model_state, "Optim": first.optimizer_state, "epoch": first.epoch}, buffer
    )
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    train_set, _ = digits_split(saving.EXAMPLE.seed)
    images, labels = train_set.tensors
    for with_state, expected in ((True, resume["with"]), (False, resume["without"])):
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(128, 10),
        )
        renamed = dict(zip(model.state_dict(), checkpoint["Model"].values(), strict=True))
        model.load_state_dict(renamed)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=saving.EXAMPLE.learning_rate, momentum=0.9
        )
        if with_state:
            optimizer.load_state_dict(checkpoint["Optim"])
        got = []
        for epoch in range(checkpoint["epoch"], checkpoint["epoch"] + 4):
            gen = torch.Generator().manual_seed(saving.EXAMPLE.seed * 1000 + epoch)
            # DataLoader draws a base seed from its generator before the permutation.
            torch.empty((), dtype=torch.int64).random_(generator=gen)
            order = torch.randperm(len(labels), generator=gen)
            for start in range(0, len(order), saving.EXAMPLE.batch_size):
                batch = order[start : start + saving.EXAMPLE.batch_size]
                loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                got.append(loss.item())
        assert np.allclose(got, losses(expected), rtol=0, atol=1e-6)


# -- the round trip and the checkpoint -----------------------------------------------------------


def test_state_dict_round_trip_predicts_identically_confirmed_with_plain_torch(
    example, first, tmp_path: Path
) -> None:
    model = DigitsCNN(saving.EXAMPLE.channels)
    model.load_state_dict(first.model_state)
    path = tmp_path / "model_params.pth"
    torch.save(model.state_dict(), path)
    assert path.stat().st_size == example["round_trip"]["bytes"]
    params = torch.load(path, weights_only=True)
    assert not isinstance(params, nn.Module)
    assert type(params).__name__ == example["round_trip"]["loaded_type"] == "OrderedDict"
    rows = example["state_dict"]["rows"]
    assert [r["key"] for r in rows] == list(params) == example["round_trip"]["loaded_keys"]
    assert [r["shape"] for r in rows] == [list(t.shape) for t in params.values()]
    assert example["state_dict"]["total"] == sum(p.numel() for p in model.parameters()) == 1370
    fresh = DigitsCNN(saving.EXAMPLE.channels)
    fresh.load_state_dict(params)
    fresh.eval()
    _, test_set = digits_split(saving.EXAMPLE.seed)
    images, labels = test_set.tensors
    with torch.no_grad():
        mine = fresh(images).argmax(dim=1)
        theirs = model(images).argmax(dim=1)
    assert torch.equal(mine, theirs)
    trip = example["round_trip"]
    assert trip["identical"] == trip["n"] == len(labels) == 359
    assert trip["max_logit_difference"] == 0.0
    assert trip["accuracy"] == pytest.approx((mine == labels).float().mean().item())
    assert trip["accuracy"] == trip["original_accuracy"]
    assert trip["load_report"] == "<All keys matched successfully>"
    assert trip["fresh_accuracy"] < 0.3  # random weights guess


def test_the_checkpoint_holds_sgds_momentum_buffer_for_every_parameter(
    example, first, tmp_path: Path
) -> None:
    checkpoint = example["checkpoint"]
    assert checkpoint["keys"] == ["model", "optimizer", "epoch"] and checkpoint["epoch"] == 4
    torch.save(saving.make_checkpoint(first), tmp_path / "checkpoint.pth")
    assert checkpoint["bytes"] == (tmp_path / "checkpoint.pth").stat().st_size
    assert checkpoint["bytes"] > 1.5 * example["round_trip"]["bytes"]  # the buffers double it
    model = DigitsCNN(saving.EXAMPLE.channels)
    buffers = checkpoint["optimizer"]["buffers"]
    assert [b["name"] for b in buffers] == [name for name, _ in model.named_parameters()]
    assert [b["shape"] for b in buffers] == [list(p.shape) for p in model.parameters()]
    for b in buffers:
        saved = first.optimizer_state["state"][b["param"]]["momentum_buffer"]
        assert b["norm"] == pytest.approx(float(np.linalg.norm(saved.numpy().ravel())), rel=1e-5)
    (group,) = checkpoint["optimizer"]["groups"]
    assert group["params"] == [0, 1, 2, 3]
    assert group["settings"]["lr"] == saving.EXAMPLE.learning_rate
    assert group["settings"]["momentum"] == 0.9


def test_a_safe_load_refuses_the_whole_model_naming_its_class(
    example, first, tmp_path: Path
) -> None:
    whole = example["whole_model"]
    assert "app.jobs.classifier.DigitsCNN" in whole["globals"]
    assert "torch.nn.modules.conv.Conv2d" in whole["globals"]
    assert "Unsupported global" in whole["error"] and "DigitsCNN" in whole["error"]
    assert "\x1b[" not in whole["error"]
    model = DigitsCNN(saving.EXAMPLE.channels)
    model.load_state_dict(first.model_state)
    path = tmp_path / "whole_model.pth"
    torch.save(model, path)
    assert path.stat().st_size == whole["bytes"]
    with pytest.raises(pickle.UnpicklingError, match="DigitsCNN"):
        torch.load(path, weights_only=True)


def test_the_snippet_reproduces_the_worked_example_in_plain_torch(
    example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the snippet saves its files next to itself
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = saving.snippet(saving.SavingParams(epochs=4, optimizer=True))
        exec(compile(code, "snippet", "exec"), namespace)
    resume = example["resume"]
    assert np.allclose(namespace["losses"], losses(resume["original"]), rtol=0, atol=1e-6)
    assert np.allclose(namespace["more"], losses(resume["with"]), rtol=0, atol=1e-6)
    assert np.allclose(namespace["unbroken"], losses(resume["unbroken"]), rtol=0, atol=1e-6)
    assert namespace["accuracy"] == pytest.approx(example["round_trip"]["accuracy"])
    assert namespace["same"] == 359
    text = printed.getvalue()
    assert "OrderedDict" in text and "<All keys matched successfully>" in text
    assert "Unsupported global" in text and "largest loss gap to an unbroken run 0" in text


def test_the_snippet_without_the_optimizer_state_gives_the_other_continuation(
    example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        code = saving.snippet(saving.SavingParams(epochs=4, optimizer=False))
        exec(compile(code, "snippet", "exec"), namespace)
    assert np.allclose(namespace["more"], losses(example["resume"]["without"]), atol=1e-6)


# -- a run's checkpoint file ---------------------------------------------------------------------


def test_a_runs_checkpoint_is_inspected_and_scored_like_the_model_it_saved(
    first, tmp_path: Path
) -> None:
    config = saving.EXAMPLE.model_dump()
    save_checkpoint(tmp_path, "digits-cnn", config, first)
    opened = saving.open_run_checkpoint(tmp_path / "checkpoint.pth", CheckpointLimits())
    inspection, evaluation = opened["inspection"], opened["evaluation"]
    assert inspection["format"] == "checkpoint" and inspection["epoch"] == 4
    assert [t["key"] for t in inspection["tensors"]] == list(first.model_state)
    assert inspection["total_parameters"] == 1370
    model = DigitsCNN(8)
    model.load_state_dict(first.model_state)
    model.eval()
    _, test_set = digits_split(0)
    images, labels = test_set.tensors
    with torch.no_grad():
        right = int((model(images).argmax(dim=1) == labels).sum())
    assert evaluation["correct"] == right and evaluation["n"] == 359
    assert evaluation["accuracy"] == pytest.approx(right / 359)
    assert "predicted" not in evaluation and "predicted" not in evaluation["result"]


def test_a_damaged_checkpoint_gives_a_message_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    opened = saving.open_run_checkpoint(path, CheckpointLimits())
    assert set(opened) == {"error"} and "zip" in opened["error"]


# -- the chain of resumed runs -------------------------------------------------------------------


def record(run_id: str, resume_from: str | None = None, **config) -> saving.RunRecord:
    return saving.RunRecord(run_id, "digits-cnn", "completed", config, resume_from)


def test_the_chain_follows_resume_from_back_to_the_first_run() -> None:
    runs = {r.id: r for r in (record("a"), record("b", "a"), record("c", "b"), record("x"))}
    assert [r.id for r in saving.chain("c", runs.get)] == ["a", "b", "c"]
    assert [r.id for r in saving.chain("x", runs.get)] == ["x"]
    looped = {"p": record("p", "q"), "q": record("q", "p")}
    assert [r.id for r in saving.chain("p", looped.get)] == ["q", "p"]
    orphan = {"d": record("d", "deleted")}
    assert [r.id for r in saving.chain("d", orphan.get)] == ["d"]


def test_the_family_adds_other_continuations_of_the_same_chain_up_to_the_cap() -> None:
    line = [record("a"), record("b", "a")]
    others = [record("c", "a", resume_optimizer=False), record("d", "c"), record("z")]
    assert saving.family(line, others) == ["a", "b", "c", "d"]
    many = [record(f"s{i}", "a") for i in range(20)]
    assert len(saving.family(line, many)) == saving.MAX_FAMILY


def test_a_resumed_run_is_labelled_by_its_epochs_and_how_it_resumed() -> None:
    metrics = {"loss": [[91, 0.5], [180, 0.3]], "epoch": [[135, 3], [180, 4]]}
    run = saving.RunRecord(
        "r2", "digits-cnn", "completed", {"resume_optimizer": False}, "r1", metrics
    )
    described = saving.describe_run(run)
    assert described["label"] == "r2 · epochs 3–4 · fresh optimizer"
    assert (described["first_step"], described["last_step"]) == (91, 180)
    assert saving.describe_run(record("r1"))["continuation"] is None


# -- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("on", True), ("OFF", False), ("1", True), ("no", False)]
)
def test_the_optimizer_switch_reads_on_and_off(text: str, value: bool) -> None:
    assert parse_bool("optimizer", text) is value


def test_bad_switches_and_epochs_name_the_problem() -> None:
    with pytest.raises(LessonInputError, match=r"optimizer must be true or false \(on or off\)"):
        parse_bool("optimizer", "maybe")
    with pytest.raises(LessonInputError, match="from 1 to 50 for digits-cnn"):
        saving.check_resume(saving.SavingParams(epochs=51), None)
    assert saving.check_resume(saving.SavingParams(epochs=50), None) == 50
