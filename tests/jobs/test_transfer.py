"""The transfer task: a deterministic source model on digits 0-4, and the three ways to adapt it
to digits 5-9 from a few examples, checked against independent recomputation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from app.jobs import get_task
from app.jobs import transfer as tr
from app.jobs.classifier import digits_split


def _train(**config: Any) -> tuple[Any, list[tuple[int, str, float]]]:
    logged: list[tuple[int, str, float]] = []
    with torch.random.fork_rng(devices=[]):
        result = tr.train_transfer(config, lambda *m: logged.append(m), lambda: False)
    return result, logged


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
    spec = get_task("transfer").describe()
    fields = {f["name"]: f for f in spec["fields"]}
    assert fields["mode"]["enum"] == ["feature-extract", "finetune", "scratch"]
    assert fields["examples_per_class"]["maximum"] == 100


def test_the_script_saves_a_state_dict_plain_torch_loads(tmp_path: Any) -> None:
    out = tmp_path / "source.pth"
    assert tr.main([str(out)]) == 0
    state = torch.load(out, weights_only=True)
    source, _ = tr.pretrained()
    assert all(torch.equal(state[k], source[k]) for k in source)
