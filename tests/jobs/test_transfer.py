"""The transfer task: a deterministic source model on digits 0-4, and the three ways to adapt it
to digits 5-9 from a few examples, checked against independent recomputation."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits

from app.jobs import ConfigError, get_task
from app.jobs import transfer as tr
from app.jobs.classifier import digits_split
from tests.support import finished, launch


def _train(**config: Any) -> tuple[Any, list[tuple[int, str, float]]]:
    logged: list[tuple[int, str, float]] = []
    with torch.random.fork_rng(devices=[]):
        result = tr.train_transfer(config, lambda *m: logged.append(m), lambda: False)
    return result, logged


def _checkpoint(result: Any, mode: str) -> dict[str, Any]:
    """What the worker saves for ``result`` (save_checkpoint's keys)."""
    return {
        "model": result.model_state,
        "optimizer": result.optimizer_state,
        "epoch": result.epoch,
        "task": "transfer",
        "config": tr.TransferConfig(mode=mode).model_dump(),
    }


def _steps(count: int) -> Any:
    """A ``should_stop`` that lets ``count`` optimizer steps run, then stops the loop."""
    calls = iter(range(count + 1))
    return lambda: next(calls, count) >= count


def _resume(config: dict[str, Any], checkpoint: dict[str, Any], steps: int) -> Any:
    with torch.random.fork_rng(devices=[]):
        return tr.train_transfer(config, lambda *_: None, _steps(steps), resume=checkpoint)


def _series(logged: list[tuple[int, str, float]], name: str) -> list[float]:
    return [v for _, n, v in logged if n == name]


def test_the_source_model_is_deterministic_and_only_ever_sees_digits_0_to_4() -> None:
    first, accuracy = tr.pretrain_source()
    second, again = tr.pretrain_source()
    assert accuracy == again and accuracy > 0.95
    assert all(torch.equal(first[k], second[k]) for k in first)
    train, test = tr.source_data()
    raw_train, _ = digits_split(tr.SPLIT_SEED)
    assert set(train.tensors[1].tolist()) == {0, 1, 2, 3, 4}
    assert len(train) == int(np.isin(raw_train.tensors[1].numpy(), [0, 1, 2, 3, 4]).sum())
    assert first["classifier.weight"].shape == (5, 64)


def test_the_target_data_are_few_examples_of_5_to_9_and_every_held_out_one() -> None:
    train, test = tr.target_data(per_class=7, seed=3)
    labels = train.tensors[1].numpy()
    assert np.array_equal(np.bincount(labels, minlength=5), [7] * 5)
    raw_train, raw_test = digits_split(tr.SPLIT_SEED)
    assert len(test) == int((raw_test.tensors[1] >= 5).sum())
    # Each picked image is a real digit 5-9 of the training split with its label (relabelled).
    digits = load_digits()
    pixels = {tuple((img.reshape(-1) * 16).round().int().tolist()) for img in train.tensors[0]}
    originals = {
        tuple(row.astype(int).tolist()): int(t)
        for row, t in zip(digits.data, digits.target, strict=True)
    }
    for image, label in zip(train.tensors[0], labels, strict=True):
        key = tuple((image.reshape(-1) * 16).round().int().tolist())
        assert originals[key] == label + 5
    assert len(pixels) == 35
    held = {tuple((img.reshape(-1) * 16).round().int().tolist()) for img in test.tensors[0]}
    assert not pixels & held


def test_feature_extract_freezes_the_body_and_trains_only_a_new_head() -> None:
    result, logged = _train(mode="feature-extract", epochs=3)
    source, _ = tr.pretrained()
    for key in ("features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"):
        assert torch.equal(result.model_state[key], source[key]), key  # not one bit moved
    table = result.summary["parameters"]
    assert table["trainable"] == 64 * 5 + 5
    assert table["frozen"] == (8 * 1 * 9 + 8) + (16 * 8 * 9 + 16)
    assert [g["params"] for g in table["groups"]] == [["classifier.weight", "classifier.bias"]]
    assert len(result.optimizer_state["param_groups"]) == 1
    assert len(_series(logged, "val_accuracy")) == 3


def test_finetune_moves_the_body_slowly_and_scratch_starts_from_random() -> None:
    source, _ = tr.pretrained()
    tuned, _ = _train(mode="finetune", epochs=2)
    groups = tuned.summary["parameters"]["groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.05 * 0.1, 0.05])
    assert not torch.equal(tuned.model_state["features.0.weight"], source["features.0.weight"])
    scratch_model, _ = tr.build_model(tr.TransferConfig(mode="scratch"))
    assert not torch.allclose(scratch_model.features[0].weight, source["features.0.weight"])
    assert all(p.requires_grad for p in scratch_model.parameters())


def test_the_logged_accuracy_is_the_models_real_held_out_accuracy() -> None:
    result, logged = _train(mode="finetune", epochs=4, examples_per_class=5)
    model = tr.DigitsNet()
    model.load_state_dict(result.model_state)
    model.eval()
    _, test = tr.target_data(5, 0)
    with torch.no_grad():
        logits = model(test.tensors[0]).numpy()
    expected = np.mean(logits.argmax(axis=1) == test.tensors[1].numpy())
    assert _series(logged, "val_accuracy")[-1] == pytest.approx(expected, abs=1e-6)
    assert _series(logged, "epoch") == [1, 2, 3, 4]


def test_with_the_default_config_transfer_beats_scratch_over_the_run() -> None:
    means = {}
    for mode in tr.MODES:
        _, logged = _train(mode=mode)
        accuracy = _series(logged, "val_accuracy")
        assert len(accuracy) == tr.TransferConfig().epochs
        means[mode] = float(np.mean(accuracy))
    assert means["feature-extract"] > means["scratch"]
    assert means["finetune"] > means["scratch"]


def test_a_resumed_transfer_run_continues_the_unbroken_one_exactly() -> None:
    whole, whole_log = _train(mode="finetune", epochs=4)
    first, first_log = _train(mode="finetune", epochs=2)
    checkpoint = {
        "model": first.model_state,
        "optimizer": first.optimizer_state,
        "epoch": first.epoch,
    }
    kept = {k: v.clone() for k, v in first.optimizer_state["state"][0].items()}
    rest_log: list[tuple[int, str, float]] = []
    with torch.random.fork_rng(devices=[]):
        rest = tr.train_transfer(
            {"mode": "finetune", "epochs": 2},
            lambda *m: rest_log.append(m),
            lambda: False,
            resume=checkpoint,
        )
    assert rest.epoch == 4
    after = first.optimizer_state["state"][0]
    assert all(torch.equal(after[k], v) for k, v in kept.items())  # the checkpoint is untouched
    assert [m for m in first_log + rest_log if m[1] == "loss"] == [
        m for m in whole_log if m[1] == "loss"
    ]
    assert all(torch.equal(rest.model_state[k], whole.model_state[k]) for k in whole.model_state)


def test_the_task_is_listed_with_its_modes_and_bounds() -> None:
    spec = get_task("transfer").info()
    fields = {f["name"]: f for f in spec["fields"]}
    assert fields["mode"]["enum"] == ["feature-extract", "finetune", "scratch"]
    assert fields["examples_per_class"]["maximum"] == 100


def test_the_script_saves_a_state_dict_plain_torch_loads(tmp_path: Any) -> None:
    out = tmp_path / "source.pth"
    assert tr.main([str(out)]) == 0
    state = torch.load(out, weights_only=True)
    source, _ = tr.pretrained()
    assert all(torch.equal(state[k], source[k]) for k in source)


BODY = ("features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias")
HEAD = ("classifier.weight", "classifier.bias")


def _rate_used(before: torch.Tensor, after: torch.Tensor, buffer: torch.Tensor) -> float:
    """The learning rate one SGD step used: p_new = p_old - lr * buf_new (momentum, no
    dampening), solved for lr by least squares over every element."""
    moved = (before - after).double().flatten()
    buf = buffer.double().flatten()
    return float(moved @ buf / (buf @ buf))


def test_a_resumed_finetune_run_steps_each_group_at_the_new_configs_rate() -> None:
    first, _ = _train(mode="finetune", epochs=1)
    checkpoint = _checkpoint(first, "finetune")
    config = {"mode": "finetune", "epochs": 1, "learning_rate": 0.02, "body_lr_factor": 0.5}
    resumed = _resume(config, checkpoint, steps=1)
    groups = resumed.optimizer_state["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.02 * 0.5, 0.02])
    assert [g["momentum"] for g in groups] == [0.9, 0.9]
    # The rate the step really took, read off the tensors: the body at 0.01, the head at 0.02
    # (the checkpoint's own rates were 0.005 and 0.05).
    state = resumed.optimizer_state["state"]
    for index, key in enumerate(BODY + HEAD):
        rate = _rate_used(
            first.model_state[key], resumed.model_state[key], state[index]["momentum_buffer"]
        )
        assert rate == pytest.approx(0.01 if key in BODY else 0.02, rel=1e-3), key
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005)  # untouched


def test_resume_optimizer_false_starts_empty_and_true_restores_the_checkpoints_buffers() -> None:
    first, _ = _train(mode="finetune", epochs=2)
    checkpoint = _checkpoint(first, "finetune")
    saved = first.optimizer_state["state"]
    kept = _resume({"mode": "finetune", "learning_rate": 0.01}, checkpoint, steps=0)
    fresh = _resume({"mode": "finetune", "resume_optimizer": False}, checkpoint, steps=0)
    # Stopped before the first step: the model is the checkpoint's either way.
    for result in (kept, fresh):
        assert all(torch.equal(result.model_state[k], first.model_state[k]) for k in BODY + HEAD)
        assert result.epoch == 2
    assert fresh.optimizer_state["state"] == {}  # no momentum yet: SGD makes it on step one
    assert sorted(kept.optimizer_state["state"]) == sorted(saved) == list(range(6))
    for index, entry in saved.items():
        restored = kept.optimizer_state["state"][index]["momentum_buffer"]
        assert torch.equal(restored, entry["momentum_buffer"])
        assert restored.data_ptr() != entry["momentum_buffer"].data_ptr()  # a copy
    assert [g["lr"] for g in kept.optimizer_state["param_groups"]] == pytest.approx([0.001, 0.01])


def _fits_in_plain_torch(saved_mode: str, mode: str) -> bool:
    """Whether PyTorch's own ``load_state_dict`` takes one mode's optimizer state into
    another's optimizer."""
    with torch.random.fork_rng(devices=[]):
        _, saved = tr.build_model(tr.TransferConfig(mode=saved_mode))
        _, fresh = tr.build_model(tr.TransferConfig(mode=mode))
    try:
        fresh.load_state_dict(saved.state_dict())
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("saved_mode", "mode"), list(product(tr.MODES, tr.MODES)))
def test_check_resume_refuses_exactly_the_optimizers_torch_cannot_load(
    saved_mode: str, mode: str
) -> None:
    first, _ = _train(mode=saved_mode, epochs=1, examples_per_class=2)
    checkpoint = _checkpoint(first, saved_mode)
    config = tr.TransferConfig(mode=mode)
    if _fits_in_plain_torch(saved_mode, mode):
        tr.check_resume(config, checkpoint)
        _resume({"mode": mode, "epochs": 1, "examples_per_class": 2}, checkpoint, steps=2)
    else:
        with pytest.raises(ConfigError, match="resume_optimizer=false") as refused:
            tr.check_resume(config, checkpoint)
        assert f"({saved_mode} mode)" in str(refused.value)
        assert f"({mode} mode)" in str(refused.value)
        # The worker refuses the same way if it is ever handed one: no torch ValueError.
        with pytest.raises(ConfigError, match="parameter group"):
            _resume({"mode": mode}, checkpoint, steps=1)
    # A fresh optimizer never needs the saved one to fit.
    tr.check_resume(config.model_copy(update={"resume_optimizer": False}), checkpoint)


@pytest.fixture
def transfer_run(client: TestClient) -> Iterator[str]:
    """A completed feature-extract transfer run, over the real HTTP API."""
    run_id = launch(client, "transfer", {"mode": "feature-extract", "epochs": 1})
    run = finished(client, run_id)
    assert run["status"] == "completed", run["error"]
    yield run_id


def test_resuming_in_another_mode_with_its_optimizer_is_a_422_naming_both(
    client: TestClient, transfer_run: str
) -> None:
    before = len(client.get("/api/runs").json()["runs"])
    body = {"task": "transfer", "config": {"mode": "finetune"}, "resume_from": transfer_run}
    refused = client.post("/api/runs", json=body)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    for text in (
        transfer_run,
        "feature-extract mode",
        "1 parameter group (2 tensors)",
        "finetune mode",
        "2 parameter groups (4 and 2 tensors)",
        "resume_optimizer=false",
    ):
        assert text in detail, text
    assert refused.json()["field"] == "resume_optimizer"
    assert len(client.get("/api/runs").json()["runs"]) == before  # nothing was queued

    body["config"] = {"mode": "finetune", "resume_optimizer": False}
    accepted = client.post("/api/runs", json=body)
    assert accepted.status_code == 202, accepted.text
    run = finished(client, accepted.json()["id"])
    assert run["status"] == "completed", run["error"]
    assert run["config"]["mode"] == "finetune" and run["config"]["epochs"] == 1
    assert run["metrics"]["epoch"][-1][1] == 2  # the epochs count on from the checkpoint's


def test_a_checkpoint_without_optimizer_state_resumes_only_with_a_fresh_optimizer() -> None:
    first, _ = _train(mode="finetune", epochs=1, examples_per_class=2)
    bare = {k: v for k, v in _checkpoint(first, "finetune").items() if k != "optimizer"}
    config = tr.TransferConfig(mode="finetune")
    with pytest.raises(ConfigError, match="no optimizer state.*resume_optimizer=false"):
        tr.check_resume(config, bare)
    tr.check_resume(config.model_copy(update={"resume_optimizer": False}), bare)
    fresh = _resume({"mode": "finetune", "resume_optimizer": False}, bare, steps=0)
    assert fresh.optimizer_state["state"] == {} and fresh.epoch == 1
