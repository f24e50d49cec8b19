"""The digits CNN task: real data, the architecture it reports, training that learns, and the
TensorBoard panels its run writes (read back with TensorBoard's own reader)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits

from app.jobs import LocalRunner, RunStore
from app.jobs.classifier import DigitsCNN, architecture, digits_split, train_digits
from tests.support import finished, launch


def test_the_split_holds_every_real_digit_once() -> None:
    train, test = digits_split(5)
    assert (len(train), len(test)) == (1438, 359)
    digits = load_digits()
    images = torch.cat([train.tensors[0], test.tensors[0]]).reshape(-1, 64).numpy() * 16
    order = np.lexsort(images.T)
    assert np.allclose(images[order], digits.data[np.lexsort(digits.data.T)])
    assert digits_split(5)[1].tensors[1].tolist() == test.tensors[1].tolist()  # seeded


def test_architecture_reports_shapes_and_parameters_of_a_real_forward_pass() -> None:
    rows = architecture(DigitsCNN(8), (1, 1, 8, 8))
    assert [(r["name"], r["output_shape"], r["parameters"]) for r in rows] == [
        ("conv", [1, 8, 8, 8], 1 * 8 * 3 * 3 + 8),
        ("relu", [1, 8, 8, 8], 0),
        ("pool", [1, 8, 4, 4], 0),
        ("flatten", [1, 128], 0),
        ("fc", [1, 10], 128 * 10 + 10),
    ]


def test_training_learns_and_the_summary_is_consistent() -> None:
    logged: list[tuple[int, str, float]] = []
    result = train_digits({"epochs": 3, "seed": 1}, lambda *m: logged.append(m), lambda: False)
    accuracy = [v for _, name, v in logged if name == "val_accuracy"]
    assert len(accuracy) == 3 and accuracy[-1] > 0.85
    probs = np.asarray(result.summary["eval"]["probabilities"])
    labels = np.asarray(result.summary["eval"]["labels"])
    assert probs.shape == (359, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-3)
    expected = np.mean(probs.argmax(axis=1) == labels)
    assert abs(result.summary["eval"]["accuracy"] - expected) < 1e-6
    assert result.epoch == 3 and set(result.model_state) == {
        "conv.weight",
        "conv.bias",
        "fc.weight",
        "fc.bias",
    }


def test_a_resumed_digits_run_steps_at_the_new_rate_from_the_checkpoints_momentum() -> None:
    first = train_digits({"epochs": 1, "learning_rate": 0.05}, lambda *_: None, lambda: False)
    checkpoint = {"model": first.model_state, "optimizer": first.optimizer_state, "epoch": 1}
    calls = iter(range(2))  # should_stop: one optimizer step, then stop
    resumed = train_digits(
        {"epochs": 1, "learning_rate": 0.02},
        lambda *_: None,
        lambda: next(calls, 1) >= 1,
        resume=checkpoint,
    )
    assert [g["lr"] for g in resumed.optimizer_state["param_groups"]] == [0.02]
    for index, key in enumerate(["conv.weight", "conv.bias", "fc.weight", "fc.bias"]):
        saved = first.optimizer_state["state"][index]["momentum_buffer"]
        buffer = resumed.optimizer_state["state"][index]["momentum_buffer"]
        moved = (first.model_state[key] - resumed.model_state[key]).double().flatten()
        # SGD with momentum 0.9: buf = 0.9 buf_saved + grad, p -= lr * buf; solved for lr.
        rate = float(moved @ buffer.double().flatten() / (buffer.double().flatten() ** 2).sum())
        assert abs(rate - 0.02) < 2e-5, key
        assert not torch.allclose(buffer, saved)  # one more step's gradient went in
    assert first.optimizer_state["param_groups"][0]["lr"] == 0.05  # the checkpoint is untouched


def test_a_digits_run_writes_pr_curves_images_and_scalars_tensorboard_reads(
    tmp_path: Path,
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import (
        DEFAULT_SIZE_GUIDANCE,
        EventAccumulator,
    )

    store = RunStore(data_dir=tmp_path)
    runner = LocalRunner(store, tmp_path, max_concurrent=1)
    try:
        run_id = runner.submit("digits-cnn", {"epochs": 2})
        deadline = time.monotonic() + 120
        while not store.get(run_id).is_final:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert store.get(run_id).status == "completed", store.get(run_id).error
        logdir = runner.artifacts_dir(run_id) / "tensorboard"
        every_scalar = {**DEFAULT_SIZE_GUIDANCE, "scalars": 0}
        events = EventAccumulator(str(logdir), size_guidance=every_scalar)
        events.Reload()
        tags = events.Tags()
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(tags["scalars"])
        assert [e.value for e in events.Scalars("loss")] == [
            np.float32(v) for _, v in store.metrics(run_id)["loss"]
        ]
        assert {f"pr/class_{k}" for k in range(10)} <= set(tags["tensors"])
        assert "samples" in tags["images"]
        image = events.Images("samples")[0]  # 16 digits of 8x8, tiled by TensorBoard
        assert image.width * image.height == 16 * 8 * 8
    finally:
        runner.shutdown()
        store.close()


def test_resuming_a_digits_run_with_other_channels_is_a_422_naming_the_shapes(
    client: TestClient,
) -> None:
    """The conv and linear layers' shapes follow ``channels``: a checkpoint of 2 filters cannot
    load into a model of 4, so the run is refused before it is queued, not failed in a worker."""
    first = finished(client, launch(client, "digits-cnn", {"channels": 2, "epochs": 1}))
    assert first["status"] == "completed", first["error"]
    before = len(client.get("/api/runs").json()["runs"])
    body = {"task": "digits-cnn", "config": {"channels": 4}, "resume_from": first["id"]}
    refused = client.post("/api/runs", json=body)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    shapes = {name: list(t.shape) for name, t in DigitsCNN(4).state_dict().items()}
    for text in (
        first["id"],
        "conv.weight of shape [2, 1, 3, 3]",
        f"channels=4 builds it as {shapes['conv.weight']}",
        "resume with the checkpoint's channels",
    ):
        assert text in detail, text
    assert refused.json()["field"] == "channels"
    assert len(client.get("/api/runs").json()["runs"]) == before  # nothing was queued

    body["config"] = {"channels": 2}
    resumed = finished(client, client.post("/api/runs", json=body).json()["id"])
    assert resumed["status"] == "completed", resumed["error"]
    assert resumed["metrics"]["epoch"][-1][1] == 2  # the epochs count on from the checkpoint's
