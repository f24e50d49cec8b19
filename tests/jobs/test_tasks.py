from __future__ import annotations

import numpy as np
import pytest

from app.jobs.tasks import (
    ConfigError,
    UnknownTask,
    get_task,
    initial_params,
    linear_data,
    train_linear_regression,
)


def _path(stage: str, epochs: int = 60, lr: float = 0.1, seed: int = 7) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}

    def emit(step: int, name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    cfg = {"stage": stage, "epochs": epochs, "learning_rate": lr, "seed": seed}
    result = train_linear_regression(cfg, emit, lambda: False)
    assert result.epoch == epochs
    return out


def _numpy_path(epochs: int = 60, lr: float = 0.1, seed: int = 7) -> tuple[list[float], ...]:
    x_t, y_t = linear_data(seed)
    x, y = x_t.numpy().astype(np.float64).ravel(), y_t.numpy().astype(np.float64).ravel()
    w, b = initial_params(seed)
    ws, bs, losses = [], [], []
    for _ in range(epochs):
        err = w * x + b - y
        losses.append(float(np.mean(err**2)))
        w, b = w - lr * float(np.mean(2 * x * err)), b - lr * float(np.mean(2 * err))
        ws.append(w)
        bs.append(b)
    return ws, bs, losses


def test_three_stages_follow_the_same_weight_path() -> None:
    paths = {stage: _path(stage) for stage in ("manual", "autograd", "nn")}
    for stage in ("autograd", "nn"):
        for name in ("w", "b", "loss"):
            np.testing.assert_allclose(paths[stage][name], paths["manual"][name], atol=1e-5)
    ws, bs, losses = _numpy_path()
    for stage, path in paths.items():
        np.testing.assert_allclose(path["w"], ws, atol=1e-4, err_msg=stage)
        np.testing.assert_allclose(path["b"], bs, atol=1e-4, err_msg=stage)
        np.testing.assert_allclose(path["loss"], losses, rtol=1e-4, atol=1e-5, err_msg=stage)
    assert paths["nn"]["loss"][-1] < paths["nn"]["loss"][0]


def test_should_stop_ends_early() -> None:
    calls: list[int] = []
    result = train_linear_regression(
        {"epochs": 100}, lambda s, n, v: calls.append(s), lambda: len(calls) >= 10
    )
    assert result.epoch == 2


@pytest.mark.parametrize(
    ("config", "field", "bound"),
    [
        ({"epochs": 501}, "epochs", "500"),
        ({"epochs": 0}, "epochs", "1"),
        ({"learning_rate": 0}, "learning_rate", "0"),
        ({"learning_rate": 5}, "learning_rate", "1"),
        ({"stage": "magic"}, "stage", "manual"),
        ({"nope": 1}, "nope", ""),
    ],
)
def test_config_out_of_bounds(config: dict[str, object], field: str, bound: str) -> None:
    task = get_task("linear-regression")
    with pytest.raises(ConfigError) as info:
        task.validate(config)
    assert info.value.field == field
    assert field in str(info.value) and bound in str(info.value)


def test_registry_describes_fields() -> None:
    with pytest.raises(UnknownTask):
        get_task("nope")
    desc = get_task("linear-regression").info()
    fields = {f["name"]: f for f in desc["fields"]}
    assert fields["epochs"]["minimum"] == 1 and fields["epochs"]["maximum"] == 500
    assert fields["stage"]["enum"] == ["manual", "autograd", "nn"]
    assert fields["learning_rate"]["default"] == 0.1
