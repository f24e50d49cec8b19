"""A class deployment's runner and worker (issue 15) against a real PostgreSQL store and a real
Redis broker: ``CeleryRunner`` (submit, the queue bound, positions, cancel, resume checks), the
``Sweeper`` (lost messages, silent workers) and ``class_worker.train`` (artefacts in the store,
a run continued after its worker went silent, cancel, time limit, metric retries).

No Celery worker process runs here: ``class_worker.train`` is what a worker's task calls, and the
tests call it in this process (in a thread when they act meanwhile).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from sqlalchemy import text
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

import tests.jobs.worker_tasks  # noqa: F401  (registers test-sleepy, a run that lasts)
from app.config import Settings
from app.jobs import class_worker
from app.jobs.artifacts import StoredArtifacts
from app.jobs.class_runner import LOST_MESSAGE_GRACE_S, TRAIN_TASK, CeleryRunner
from app.jobs.class_worker import PARTIAL_CHECKPOINT, MetricWriter
from app.jobs.classifier import DigitsCNN, DigitsConfig, digits_split, evaluate
from app.jobs.store import QueueFull, RunLost, RunStore
from app.jobs.tasks import ConfigError, LinearRegressionConfig, train_linear_regression
from tests import pg
from tests.support import wait_for

REDIS_URL = "redis://127.0.0.1:6379/9"  # this module's broker database: only it is flushed
# One queue name per test session: nothing else that uses db 9 shares the list.
QUEUE = f"explorer-test-runs-{secrets.token_hex(3)}"
DIGITS_STEPS_PER_EPOCH = math.ceil(len(digits_split(0)[0]) / DigitsConfig().batch_size)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Runs train in this process: one thread each, as a worker's, and deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """Redis db 9, empty before and after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        runner="celery",
        broker_url=REDIS_URL,
        database_url=db_url,
        data_dir=tmp_path / "data",
        runs_queue_name=QUEUE,
        runs_max_queue=2,
        warm_lessons=False,
    )


@pytest.fixture
def runner(
    store: RunStore, broker: redis.Redis, settings: Settings, tmp_path: Path
) -> Iterator[CeleryRunner]:
    """A web process's runner without its sweeper thread: the tests sweep by hand."""
    celery_runner = CeleryRunner(
        store, StoredArtifacts(store, tmp_path / "cache"), settings, sweep=False
    )
    yield celery_runner
    celery_runner.shutdown()


# -- helpers ----------------------------------------------------------------------------------


def messages(broker: redis.Redis) -> list[tuple[dict[str, Any], list[Any], dict[str, Any]]]:
    """The queue's messages as (headers, body, properties), Celery's protocol 2 decoded, in the
    order workers take them (kombu pushes on the left and workers pop from the right)."""
    out = []
    for raw in reversed(broker.lrange(QUEUE, 0, -1)):
        message = json.loads(raw)
        properties = message["properties"]
        assert properties["body_encoding"] == "base64"
        assert message["content-type"] == "application/json"
        body = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"], body, properties))
    return out


def sent_runs(broker: redis.Redis) -> list[str]:
    """The run id each message trains, checked to be a train_run message."""
    ids = []
    for headers, (args, kwargs, _embed), _properties in messages(broker):
        assert headers["task"] == TRAIN_TASK
        assert kwargs == {}
        assert headers["id"] == args[0]  # the task id is the run id
        ids.append(args[0])
    return ids


def train(
    store: RunStore,
    run_id: str,
    worker: str = "test:1",
    *,
    lease_s: float = 2.0,
    time_limit_s: float = 120.0,
    retry_s: float = 5.0,
) -> str | None:
    return class_worker.train(
        store, run_id, lease_s=lease_s, time_limit_s=time_limit_s, retry_s=retry_s, worker=worker
    )


class InThread:
    """``fn()`` in a daemon thread; ``join`` gives its result (or raises its error)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test by join()
            self.error = exc
        self.ended_at = time.monotonic()

    def join(self, timeout: float) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running after {timeout:g} s"
        if self.error is not None:
            raise self.error
        return self.result


def backdate_heartbeat(store: RunStore, run_id: str, seconds: float) -> None:
    """The run's worker last said it was alive ``seconds`` ago (as if it had died then)."""
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET heartbeat_at = :at WHERE id = :id"),
            {"at": datetime.now(UTC) - timedelta(seconds=seconds), "id": run_id},
        )


def steps(store: RunStore, run_id: str, name: str) -> list[int]:
    """The steps of metric ``name`` in the order they were stored."""
    return [int(step) for step, _value in store.metrics(run_id).get(name, [])]


def load(data: bytes | None) -> Any:
    assert data is not None
    return torch.load(io.BytesIO(data), weights_only=True)


def assert_digits_metrics_complete(store: RunStore, run_id: str, epochs: int) -> None:
    """Every step of a digits run stored exactly once, in order, with no gap."""
    n = epochs * DIGITS_STEPS_PER_EPOCH
    assert steps(store, run_id, "loss") == list(range(1, n + 1))
    ends = [DIGITS_STEPS_PER_EPOCH * (k + 1) for k in range(epochs)]
    for name in ("accuracy", "val_loss", "val_accuracy", "epoch"):
        assert steps(store, run_id, name) == ends, name
    assert [v for _s, v in store.metrics(run_id)["epoch"]] == list(range(1, epochs + 1))


# -- CeleryRunner -----------------------------------------------------------------------------


def test_submit_stores_a_queued_run_and_puts_one_train_message_on_the_queue(
    runner: CeleryRunner, store: RunStore, broker: redis.Redis
) -> None:
    run_id = runner.submit("digits-cnn", {"epochs": 2})

    run = store.get(run_id)
    assert run.status == "queued"
    assert run.task == "digits-cnn"
    assert run.config == DigitsConfig(epochs=2).model_dump()
    assert (run.worker, run.attempts, run.resume_from) == (None, 0, None)
    assert broker.llen(QUEUE) == 1
    [(headers, body, properties)] = messages(broker)
    assert headers["task"] == "explorer.train_run"
    assert headers["id"] == run_id
    assert headers["argsrepr"] == repr([run_id])
    args, kwargs, _embed = body
    assert args == [run_id]
    assert kwargs == {}
    assert properties["delivery_info"]["routing_key"] == QUEUE


def test_a_third_waiting_run_is_refused_with_the_queue_bound(
    runner: CeleryRunner, store: RunStore, broker: redis.Redis
) -> None:
    first = runner.submit("digits-cnn", {})
    second = runner.submit("digits-cnn", {})

    with pytest.raises(QueueFull) as refused:
        runner.submit("digits-cnn", {})
    assert refused.value.limit == 2
    assert "2 runs waiting" in str(refused.value)
    assert {r.id for r in store.list()} == {first, second}
    assert sent_runs(broker) == [first, second]

    # A claimed run no longer waits: there is room for one more.
    assert store.claim(first, "test:1") is not None
    third = runner.submit("digits-cnn", {})
    assert store.queued_ids() == [second, third]


def test_position_counts_the_line_then_0_while_held_then_none(
    runner: CeleryRunner, store: RunStore
) -> None:
    a = runner.submit("digits-cnn", {})
    b = runner.submit("digits-cnn", {})
    assert (runner.position(a), runner.position(b)) == (1, 2)

    assert store.claim(a, "test:1") is not None
    assert (runner.position(a), runner.position(b)) == (0, 1)

    assert store.finish(a, "completed")
    assert runner.position(a) == 0  # final, but its worker has not let go yet
    assert store.release(a, "test:1")
    assert runner.position(a) is None
    assert runner.position(b) == 1


def test_cancelling_a_queued_run_ends_it_and_no_worker_can_claim_it(
    runner: CeleryRunner, store: RunStore
) -> None:
    run_id = runner.submit("digits-cnn", {})

    assert runner.cancel(run_id) == "cancelled"
    run = store.get(run_id)
    assert (run.status, run.cancel_requested) == ("cancelled", True)
    assert run.finished_at is not None
    assert runner.position(run_id) is None

    # Its message is still on the queue; the worker it reaches does nothing.
    assert train(store, run_id) is None
    after = store.get(run_id)
    assert (after.status, after.worker, after.attempts) == ("cancelled", None, 0)
    assert store.metrics(run_id) == {}


def test_resume_from_is_checked_against_the_stored_checkpoint(
    runner: CeleryRunner, store: RunStore, broker: redis.Redis, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as unknown:
        runner.submit("digits-cnn", {}, resume_from="nosuchrun")
    assert unknown.value.field == "resume_from"
    assert "no run 'nosuchrun'" in str(unknown.value)

    waiting = runner.submit("digits-cnn", {})
    with pytest.raises(ConfigError) as no_checkpoint:
        runner.submit("digits-cnn", {}, resume_from=waiting)
    assert no_checkpoint.value.field == "resume_from"
    assert f"run {waiting!r} has no digits-cnn checkpoint" in str(no_checkpoint.value)

    done = store.create("digits-cnn", DigitsConfig(epochs=1).model_dump())
    assert train(store, done.id) == "completed"
    stored = store.get_artifact(done.id, "checkpoint.pth")
    assert stored is not None

    with pytest.raises(ConfigError) as other_shape:
        runner.submit("digits-cnn", {"channels": 4}, resume_from=done.id)
    assert other_shape.value.field == "channels"

    resumed = runner.submit("digits-cnn", {"epochs": 2}, resume_from=done.id)
    run = store.get(resumed)
    assert (run.status, run.resume_from) == ("queued", done.id)
    assert run.config == DigitsConfig(epochs=2).model_dump()
    assert sent_runs(broker) == [waiting, resumed]
    # The checkpoint was read through this host's cache, byte for byte.
    assert (tmp_path / "cache" / done.id / "checkpoint.pth").read_bytes() == stored

    # A worker continues it from the stored checkpoint: epochs 2 and 3, steps after epoch 1's.
    assert train(store, resumed) == "completed"
    assert load(store.get_artifact(resumed, "checkpoint.pth"))["epoch"] == 3
    first_step = DIGITS_STEPS_PER_EPOCH + 1
    assert steps(store, resumed, "loss") == list(range(first_step, 3 * DIGITS_STEPS_PER_EPOCH + 1))


# -- Sweeper ----------------------------------------------------------------------------------


def test_the_sweeper_sends_again_each_queued_run_whose_message_was_lost(
    runner: CeleryRunner, store: RunStore, broker: redis.Redis
) -> None:
    a = runner.submit("digits-cnn", {})
    assert store.claim(a, "test:1") is not None  # running: it needs no message
    b = runner.submit("digits-cnn", {})
    c = runner.submit("digits-cnn", {})
    assert broker.llen(QUEUE) == 3

    broker.delete(QUEUE)  # Redis restarted without its data
    runner.sweeper.sweep()
    assert broker.llen(QUEUE) == 0  # missing for less than the grace: maybe being handed out

    time.sleep(LOST_MESSAGE_GRACE_S + 0.1)
    runner.sweeper.sweep()
    assert sorted(sent_runs(broker)) == sorted([b, c])

    runner.sweeper.sweep()  # the messages are there now
    assert broker.llen(QUEUE) == 2


def test_the_sweeper_sends_again_a_lost_message_behind_others_still_waiting(
    runner: CeleryRunner, store: RunStore, broker: redis.Redis
) -> None:
    kept = runner.submit("digits-cnn", {})
    lost = runner.submit("digits-cnn", {})
    assert broker.lrem(QUEUE, 0, broker.lindex(QUEUE, 0)) == 1  # the newest message: lost's
    assert sent_runs(broker) == [kept]

    runner.sweeper.sweep()
    time.sleep(LOST_MESSAGE_GRACE_S + 0.1)
    runner.sweeper.sweep()
    assert sorted(sent_runs(broker)) == sorted([kept, lost])


def test_the_sweeper_sends_nothing_while_the_queue_holds_messages(
    runner: CeleryRunner, broker: redis.Redis
) -> None:
    ids = [runner.submit("digits-cnn", {}) for _ in range(2)]
    runner.sweeper.sweep()
    time.sleep(LOST_MESSAGE_GRACE_S + 0.1)
    runner.sweeper.sweep()

    assert sent_runs(broker) == ids


def test_the_sweeper_requeues_a_run_whose_worker_went_silent_and_sends_its_message(
    runner: CeleryRunner, store: RunStore, broker: redis.Redis
) -> None:
    silent = runner.submit("digits-cnn", {})
    assert store.claim(silent, "dead:1") is not None
    alive = runner.submit("digits-cnn", {})
    assert store.claim(alive, "alive:1") is not None
    spent = runner.submit("digits-cnn", {})
    assert store.claim(spent, "dead:2") is not None
    with store.engine.begin() as conn:  # it has started as many times as it may
        conn.execute(text("UPDATE runs SET attempts = 3 WHERE id = :id"), {"id": spent})
    broker.delete(QUEUE)
    backdate_heartbeat(store, silent, 3600)
    backdate_heartbeat(store, spent, 3600)

    runner.sweeper.sweep()

    run = store.get(silent)
    assert (run.status, run.worker, run.attempts) == ("queued", None, 1)
    assert sent_runs(broker) == [silent]
    held = store.get(alive)
    assert (held.status, held.worker) == ("running", "alive:1")
    ended = store.get(spent)
    assert (ended.status, ended.worker) == ("interrupted", None)
    assert ended.error is not None and "runs_max_attempts" in ended.error


# -- class_worker.train -----------------------------------------------------------------------


def test_a_trained_run_keeps_its_metrics_and_files_in_the_store(
    store: RunStore, tmp_path: Path
) -> None:
    run = store.create("digits-cnn", DigitsConfig(epochs=3).model_dump())

    assert train(store, run.id) == "completed"

    done = store.get(run.id)
    assert (done.status, done.progress, done.error, done.worker) == ("completed", 1.0, None, None)
    assert done.attempts == 1
    assert_digits_metrics_complete(store, run.id, 3)

    checkpoint = load(store.get_artifact(run.id, "checkpoint.pth"))
    assert set(checkpoint) == {"model", "optimizer", "epoch", "task", "config"}
    assert (checkpoint["epoch"], checkpoint["task"]) == (3, "digits-cnn")
    assert checkpoint["config"] == DigitsConfig(epochs=3).model_dump()
    assert checkpoint["optimizer"]["state"]  # SGD's momentum buffers
    state_dict = load(store.get_artifact(run.id, "state_dict.pth"))
    assert set(state_dict) == set(checkpoint["model"])
    for name, tensor in state_dict.items():
        assert torch.equal(tensor, checkpoint["model"][name]), name

    # The summary is the trained model's: its held-out accuracy, computed again from the file.
    raw_summary = store.get_artifact(run.id, "summary.json")
    assert raw_summary is not None
    summary = json.loads(raw_summary)
    assert summary["classes"] == [str(c) for c in range(10)]
    model = DigitsCNN(8)
    model.load_state_dict(state_dict)
    model.eval()
    _loss, accuracy, _probs = evaluate(model, digits_split(0)[1])
    assert summary["eval"]["accuracy"] == pytest.approx(accuracy)
    assert store.metrics(run.id)["val_accuracy"][-1][1] == pytest.approx(accuracy)

    # The TensorBoard file holds exactly the store's metrics, with the times they were logged.
    event_names = store.artifact_names(run.id, "tensorboard/")
    assert len(event_names) == 1 and "events.out.tfevents" in event_names[0]
    logdir = tmp_path / "tb"
    logdir.mkdir()
    data = store.get_artifact(run.id, event_names[0])
    assert data is not None
    (logdir / Path(event_names[0]).name).write_bytes(data)
    events = EventAccumulator(str(logdir), size_guidance={SCALARS: 0})
    events.Reload()
    timed = store.timed_metrics(run.id)
    names = {name for _step, name, _value, _at in timed}
    assert set(events.Tags()["scalars"]) == names
    for name in names:
        want = [(step, value, at) for step, n, value, at in timed if n == name]
        got = [(e.step, e.value, e.wall_time) for e in events.Scalars(name)]
        assert [g[0] for g in got] == [w[0] for w in want], name
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], rel=1e-6), name
        assert [g[2] for g in got] == [w[2] for w in want], name

    assert store.artifact_names(run.id, "partial/") == []
    assert sorted(store.artifact_names(run.id)) == sorted(
        ["checkpoint.pth", "state_dict.pth", "summary.json", *event_names]
    )


def test_a_run_whose_worker_went_silent_continues_from_its_partial_checkpoint(
    store: RunStore,
) -> None:
    epochs = 50
    config = DigitsConfig(epochs=epochs).model_dump()
    run = store.create("digits-cnn", config)
    # lease 0.4 s: the first worker beats every 0.1 s, so it sees quickly that it lost the run.
    first = InThread(lambda: train(store, run.id, "a:1", lease_s=0.4))

    def under_way() -> bool:
        now = store.get(run.id)
        assert not now.is_final, now  # it must not end before the test takes it away
        if now.progress < 0.3:
            return False
        partial = store.get_artifact(run.id, PARTIAL_CHECKPOINT)
        return partial is not None and load(partial)["epoch"] >= 5

    wait_for(under_way, 60)
    deadline = time.monotonic() + 10
    while True:  # its heartbeat may land between the two statements: try again
        backdate_heartbeat(store, run.id, 3600)
        requeued, ended = store.sweep(lease_s=1, max_attempts=3, time_limit_s=600)
        assert ended == []
        if requeued == [run.id]:
            break
        assert time.monotonic() < deadline, "the sweep never found the run silent"

    assert first.join(30) is None  # it saw the run was no longer its own
    stopped = store.get(run.id)
    assert (stopped.status, stopped.worker, stopped.attempts) == ("queued", None, 1)
    partial = load(store.get_artifact(run.id, PARTIAL_CHECKPOINT))
    assert 5 <= partial["epoch"] < epochs
    assert partial["config"] == config
    written = store.last_steps(run.id)["loss"]
    assert partial["epoch"] * DIGITS_STEPS_PER_EPOCH <= written < epochs * DIGITS_STEPS_PER_EPOCH
    count = len(store.timed_metrics(run.id))
    time.sleep(0.3)
    assert len(store.timed_metrics(run.id)) == count  # the first worker writes nothing more
    assert store.get_artifact(run.id, "checkpoint.pth") is None

    # The second worker starts where the checkpoint left off: its progress never falls back
    # (one that started afresh would show 0.02 after its first epoch).
    floor = min(stopped.progress, partial["epoch"] / epochs) - 1e-6
    second = InThread(lambda: train(store, run.id, "b:1"))
    lowest = 1.0
    while second.thread.is_alive():
        lowest = min(lowest, store.get(run.id).progress)
        time.sleep(0.02)
    assert second.join(1) == "completed"
    assert lowest >= floor >= 0.09

    done = store.get(run.id)
    assert (done.status, done.worker, done.attempts, done.progress) == ("completed", None, 2, 1.0)
    assert_digits_metrics_complete(store, run.id, epochs)
    assert load(store.get_artifact(run.id, "checkpoint.pth"))["epoch"] == epochs
    assert store.artifact_names(run.id, "partial/") == []

    # The same values an unbroken run logs: the second worker went on from the first's state.
    unbroken = store.create("digits-cnn", config)
    assert train(store, unbroken.id, "c:1") == "completed"
    continued, reference = store.metrics(run.id), store.metrics(unbroken.id)
    assert set(continued) == set(reference)
    for name in reference:
        assert [s for s, _ in continued[name]] == [s for s, _ in reference[name]], name
        assert [v for _, v in continued[name]] == pytest.approx(
            [v for _, v in reference[name]], rel=1e-5, abs=1e-7
        ), name


def test_a_linear_regression_run_continued_logs_every_epoch_once_from_its_checkpoint(
    store: RunStore,
) -> None:
    """The continuation on a task that logs every metric once per epoch, from a checkpoint
    whose weights an unbroken run never had: each value after it shows where training went on
    from."""
    epochs = 500
    config = LinearRegressionConfig(epochs=epochs, stage="nn")
    run = store.create("linear-regression", config.model_dump())
    assert store.claim(run.id, "dead:1") is not None
    # What a first worker left before it died: the metrics of epochs 1-7, a checkpoint of 5.
    first: list[tuple[int, str, float]] = []
    snapshots: dict[int, Any] = {}
    train_linear_regression(
        config.model_copy(update={"epochs": 7}),
        lambda step, name, value: first.append((step, name, value)),
        lambda: False,
        on_epoch=lambda epoch, snap: snapshots.__setitem__(epoch, snap()),
    )
    store.add_metrics(run.id, first)
    checkpoint = {
        "model": {"weight": torch.tensor([[0.5]]), "bias": torch.tensor([-0.5])},
        "optimizer": snapshots[5].optimizer_state,
        "epoch": 5,
        "task": "linear-regression",
        "config": dict(run.config),
        "run_start_epoch": 0,
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    store.put_artifact(run.id, PARTIAL_CHECKPOINT, buffer.getvalue())
    backdate_heartbeat(store, run.id, 3600)
    assert store.sweep(lease_s=1, max_attempts=3, time_limit_s=600) == ([run.id], [])

    assert train(store, run.id, "b:1") == "completed"

    done = store.get(run.id)
    assert (done.status, done.attempts, done.worker) == ("completed", 2, None)
    metrics = store.metrics(run.id)
    assert set(metrics) == {"loss", "w", "b", "grad_w", "grad_b"}
    for name, points in metrics.items():
        assert [int(s) for s, _ in points] == list(range(1, epochs + 1)), name
    final = load(store.get_artifact(run.id, "checkpoint.pth"))
    assert final["epoch"] == epochs
    assert final["config"] == config.model_dump()
    # The oracle: the task itself, resumed from that checkpoint for the 495 epochs left.
    resumed: list[tuple[int, str, float]] = []
    expected = train_linear_regression(
        config.model_copy(update={"epochs": epochs - 5}),
        lambda step, name, value: resumed.append((step, name, value)),
        lambda: False,
        resume=checkpoint,
    )
    want = [(step, name, value) for step, name, value in first] + [
        (step, name, value) for step, name, value in resumed if step > 7
    ]
    for name, points in metrics.items():
        values = [value for _step, n, value in want if n == name]
        assert [v for _, v in points] == pytest.approx(values, rel=1e-6), name
    assert float(final["model"]["weight"]) == pytest.approx(
        float(expected.model_state["weight"]), rel=1e-6
    )


def test_a_cancel_from_a_web_process_stops_the_training_loop(store: RunStore) -> None:
    run = store.create("digits-cnn", DigitsConfig(epochs=50).model_dump())
    training = InThread(lambda: train(store, run.id, lease_s=0.4))
    try:
        wait_for(lambda: store.get(run.id).progress >= 0.05, 60)
        asked_at = time.monotonic()
        assert store.request_cancel(run.id).status == "cancelled"
        assert training.join(10) == "cancelled"
    finally:
        store.request_cancel(run.id)
        training.thread.join(10)
    assert training.ended_at is not None and training.ended_at - asked_at < 2.0

    done = store.get(run.id)
    assert (done.status, done.worker, done.cancel_requested) == ("cancelled", None, True)
    assert done.progress < 1.0
    loss = steps(store, run.id, "loss")
    assert loss == list(range(1, len(loss) + 1))
    assert len(loss) < 50 * DIGITS_STEPS_PER_EPOCH
    count = len(store.timed_metrics(run.id))
    time.sleep(0.3)
    assert len(store.timed_metrics(run.id)) == count
    assert store.artifact_names(run.id, "partial/") == []


def test_a_run_past_its_time_limit_fails_naming_the_setting(store: RunStore) -> None:
    run = store.create("test-sleepy", {"steps": 1000})  # 20 s of steps
    started = time.monotonic()

    assert train(store, run.id, lease_s=0.4, time_limit_s=0.5) == "failed"

    assert time.monotonic() - started < 5
    done = store.get(run.id)
    assert done.status == "failed"
    assert done.error is not None
    assert "runs_max_seconds" in done.error and "0.5 s" in done.error
    assert done.worker is None
    loss = steps(store, run.id, "loss")
    assert 0 < len(loss) < 1000
    assert loss == list(range(1, len(loss) + 1))


# -- MetricWriter's retries -------------------------------------------------------------------


def test_metrics_added_while_the_store_is_unreachable_are_stored_once_after(
    store: RunStore, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = store.create("digits-cnn", {})
    assert store.claim(run.id, "test:1") is not None
    proxy = pg.TcpProxy()
    proxied = RunStore(db_url.replace(f":{pg.PORT}/", f":{proxy.port}/"))
    try:
        writer = MetricWriter(proxied, run.id, "test:1", {}, retry_s=20)
        for step in range(1, 6):
            writer.add(step, "loss", 1.0 / step)
        wait_for(lambda: len(store.timed_metrics(run.id)) == 5, 10)

        caplog.set_level(logging.WARNING, logger="app.jobs.class_worker")
        proxy.cut()
        cut_at = time.monotonic()
        step = 5
        while time.monotonic() - cut_at < 1.5:
            step += 1
            writer.add(step, "loss", 1.0 / step)
            time.sleep(0.05)
        assert len(store.timed_metrics(run.id)) == 5  # nothing got through the cut
        proxy.restore()
        writer.close()  # raises if the writer gave up
    finally:
        proxied.close()
        proxy.close()

    assert step > 20
    stored = store.metrics(run.id)["loss"]
    assert [int(s) for s, _ in stored] == list(range(1, step + 1))
    assert [v for _, v in stored] == pytest.approx([1.0 / s for s in range(1, step + 1)])
    assert any("storing metrics failed" in r.getMessage() for r in caplog.records)


def test_a_writer_whose_run_was_handed_on_stores_nothing_and_stops_the_loop(
    store: RunStore,
) -> None:
    run = store.create("digits-cnn", {})
    assert store.claim(run.id, "a:1") is not None
    backdate_heartbeat(store, run.id, 3600)
    assert store.sweep(lease_s=1, max_attempts=3, time_limit_s=600) == ([run.id], [])

    writer = MetricWriter(store, run.id, "a:1", {}, retry_s=20)
    writer.add(1, "loss", 1.0)
    assert writer.failed.wait(5)  # at once: no retries for a run another worker may hold
    with pytest.raises(RunLost):
        writer.close()
    assert store.metrics(run.id) == {}
