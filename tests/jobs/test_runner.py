from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task)
from app.jobs import run_worker
from app.jobs.runner import LocalRunner, QueueFull
from app.jobs.store import Run, RunStore
from app.jobs.tasks import ConfigError
from tests.support import wait_for


def wait_final(store: RunStore, run_id: str) -> Run:
    wait_for(lambda: store.get(run_id).is_final)
    return store.get(run_id)


@pytest.fixture
def make_runner(tmp_path: Path) -> Iterator[Callable[..., LocalRunner]]:
    made: list[LocalRunner] = []
    store = RunStore(data_dir=tmp_path / "data")

    def make(**kwargs: object) -> LocalRunner:
        runner = LocalRunner(store, tmp_path / "data", **kwargs)  # type: ignore[arg-type]
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.shutdown()
    store.close()


def test_run_completes_with_checkpoint(make_runner: Callable[..., LocalRunner]) -> None:
    runner = make_runner(max_concurrent=1)
    run_id = runner.submit("linear-regression", {"stage": "nn", "epochs": 30, "seed": 1})
    run = wait_final(runner.store, run_id)
    assert run.status == "completed", run.error
    assert run.progress == 1.0 and run.started_at and run.finished_at
    loss = [v for _, v in runner.store.metrics(run_id)["loss"]]
    assert len(loss) == 30 and loss[-1] < loss[0] / 2
    assert runner.position(run_id) is None

    ckpt = torch.load(runner.artifacts_dir(run_id) / "checkpoint.pth", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "epoch", "task", "config"}
    assert ckpt["epoch"] == 30 and ckpt["task"] == "linear-regression"
    assert ckpt["config"]["epochs"] == 30
    state = torch.load(runner.artifacts_dir(run_id) / "state_dict.pth", weights_only=True)
    assert set(state) == {"weight", "bias"}

    # Resume continues from the checkpoint's epoch.
    again = runner.submit("linear-regression", {"stage": "nn", "epochs": 5}, resume_from=run_id)
    resumed = wait_final(runner.store, again)
    assert resumed.status == "completed", resumed.error
    steps = [s for s, _ in runner.store.metrics(again)["loss"]]
    assert steps == [31, 32, 33, 34, 35]
    assert runner.store.metrics(again)["loss"][0][1] < loss[0]


def test_bad_config_and_resume(make_runner: Callable[..., LocalRunner]) -> None:
    runner = make_runner(max_concurrent=1)
    with pytest.raises(ConfigError) as info:
        runner.submit("linear-regression", {"epochs": 10_000})
    assert "epochs" in str(info.value) and "500" in str(info.value)
    with pytest.raises(ConfigError):
        runner.submit("no-such-task", {})
    with pytest.raises(ConfigError):
        runner.submit("linear-regression", {}, resume_from="missing")
    assert runner.store.list() == []


def test_queue_full_and_positions(make_runner: Callable[..., LocalRunner]) -> None:
    runner = make_runner(max_concurrent=1, max_queue=2)
    first = runner.submit("test-sleepy", {})
    second = runner.submit("test-sleepy", {})
    third = runner.submit("test-sleepy", {})
    with pytest.raises(QueueFull) as info:
        runner.submit("test-sleepy", {})
    assert info.value.limit == 2 and "2" in str(info.value)
    wait_for(lambda: runner.store.get(first).status == "running")
    assert runner.position(first) == 0
    assert (runner.position(second), runner.position(third)) == (1, 2)

    assert runner.cancel(second) == "cancelled"
    assert runner.position(third) == 1
    assert runner.store.get(second).started_at is None


def test_cancel_running(make_runner: Callable[..., LocalRunner]) -> None:
    runner = make_runner(max_concurrent=1)
    run_id = runner.submit("test-sleepy", {})
    wait_for(lambda: "loss" in runner.store.metrics(run_id))
    assert runner.cancel(run_id) == "cancelled"
    wait_for(lambda: runner.active_count() == 0)
    run = runner.store.get(run_id)
    assert run.status == "cancelled" and run.finished_at is not None
    assert runner.store.metrics(run_id)["loss"]


def test_time_limit_fails_naming_it(make_runner: Callable[..., LocalRunner]) -> None:
    runner = make_runner(max_concurrent=1, time_limit_s=1.5)
    run_id = runner.submit("test-sleepy", {})
    run = wait_final(runner.store, run_id)
    assert run.status == "failed"
    assert run.error and "time limit" in run.error and "1.5 s" in run.error
    wait_for(lambda: runner.active_count() == 0)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("raise", "RuntimeError: boom"), ("exit", "exited with code 3")],
)
def test_crash_fails_with_error(
    make_runner: Callable[..., LocalRunner], mode: str, expected: str
) -> None:
    runner = make_runner(max_concurrent=2)
    run_id = runner.submit("test-sleepy", {"mode": mode})
    run = wait_final(runner.store, run_id)
    assert run.status == "failed"
    assert run.error and expected in run.error
    assert runner.store.metrics(run_id) == {"loss": [[1, 1.0]]}


def test_shutdown_interrupts(make_runner: Callable[..., LocalRunner]) -> None:
    runner = make_runner(max_concurrent=1)
    running = runner.submit("test-sleepy", {})
    queued = runner.submit("test-sleepy", {})
    wait_for(lambda: runner.store.get(running).status == "running")
    runner.shutdown()
    assert runner.store.get(running).status == "interrupted"
    assert runner.store.get(queued).status == "interrupted"
    assert runner.active_count() == 0


def test_a_resumed_digits_run_reproduces_the_unbroken_run_only_with_its_optimizer_state(
    make_runner: Callable[..., LocalRunner],
) -> None:
    runner = make_runner(max_concurrent=2)
    config = {"epochs": 2, "seed": 3, "learning_rate": 0.1}
    whole = runner.submit("digits-cnn", {**config, "epochs": 4})
    first = runner.submit("digits-cnn", config)
    assert wait_final(runner.store, first).status == "completed"
    # The resumed runs name only what changes: the rest of the config is the original's.
    kept = runner.submit("digits-cnn", {}, resume_from=first)
    fresh = runner.submit("digits-cnn", {"resume_optimizer": False}, resume_from=first)
    runs = {
        name: wait_final(runner.store, i)
        for name, i in [("whole", whole), ("kept", kept), ("fresh", fresh)]
    }
    assert all(r.status == "completed" for r in runs.values()), [r.error for r in runs.values()]
    assert runs["kept"].config == {**runs["whole"].config, "epochs": 2}
    assert runs["fresh"].config["resume_optimizer"] is False
    loss = {name: runner.store.metrics(r.id)["loss"] for name, r in runs.items()}
    head = runner.store.metrics(first)["loss"]
    assert [s for s, _ in loss["kept"]][0] == head[-1][0] + 1  # the steps carry on
    assert head + loss["kept"] == loss["whole"]  # bit for bit: same batches, same momentum
    assert [s for s, _ in loss["fresh"]] == [s for s, _ in loss["kept"]]
    assert loss["fresh"] != loss["kept"]  # momentum restarted from zero: another path
    epochs = [v for _, v in runner.store.metrics(kept)["epoch"]]
    assert epochs == [3, 4]


def test_the_worker_side_never_touches_the_store_or_the_supervisor() -> None:
    """What runs in a run's process (app.jobs.run_worker) imports neither the run store nor the
    runner: the supervisor in the server is the store's one writer."""
    tree = ast.parse(Path(run_worker.__file__).read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert "app.jobs.tasks" in modules
    assert not {"app.jobs.store", "app.jobs.runner"} & (modules | names)
