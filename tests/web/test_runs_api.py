"""Training runs over HTTP: launch, watch live (server-sent events), cancel, download, restart.

Every test runs twice, the store on SQLite in the data dir and on a PostgreSQL database of its
own (``EXPLORER_DATABASE_URL``), since a single server may use either."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.jobs.store import RunStore
from app.jobs.tasks import linear_data
from tests import pg
from tests.support import finished, parse_sse, started_apps, wait_for


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite in the data dir), or a fresh PostgreSQL database for the test."""
    if request.param == "sqlite":
        yield None
        return
    if not pg.pg_available():
        pytest.fail(pg.UNAVAILABLE, pytrace=False)
    with pg.fresh_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """The conftest's settings, with this test's store."""
    return Settings(data_dir=tmp_path / "data", warm_lessons=False, database_url=database_url)


def sse(client: TestClient, url: str, headers: dict[str, str] | None = None) -> list[dict]:
    """Every event of a stream, parsed: {"event", "id", "data"}."""
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse(response.iter_lines())


@pytest.fixture
def make_client(tmp_path: Path, database_url: str | None) -> Iterator[Callable[..., TestClient]]:
    with started_apps() as start:

        def make(**overrides: Any) -> TestClient:
            settings = Settings(
                data_dir=tmp_path / "data",
                program_prewarm=False,
                database_url=database_url,
                **overrides,
            )
            client: TestClient = start(settings)
            return client

        yield make


def test_tasks_list_config_fields_with_bounds(client: TestClient) -> None:
    tasks = {t["name"]: t for t in client.get("/api/tasks").json()["tasks"]}
    assert {"linear-regression", "digits-cnn"} <= set(tasks)
    fields = {f["name"]: f for f in tasks["linear-regression"]["fields"]}
    assert fields["stage"]["enum"] == ["manual", "autograd", "nn"]
    assert (fields["epochs"]["minimum"], fields["epochs"]["maximum"]) == (1, 500)
    assert fields["learning_rate"]["exclusiveMinimum"] == 0


def test_a_linear_regression_run_completes_and_fits_the_line(client: TestClient) -> None:
    created = client.post(
        "/api/runs",
        json={"task": "linear-regression", "config": {"stage": "nn", "epochs": 200, "seed": 3}},
    )
    assert created.status_code == 202
    assert created.json()["status"] in ("queued", "running")
    run = finished(client, created.json()["id"])
    assert run["status"] == "completed", run["error"]
    assert run["progress"] == 1.0 and run["started_at"] and run["finished_at"]
    steps = [s for s, _ in run["metrics"]["loss"]]
    assert steps == list(range(1, 201))

    # The fitted line approaches the least-squares optimum of the same data (NumPy's lstsq).
    x, y = (t.numpy().ravel() for t in linear_data(3))
    w_opt, b_opt = np.linalg.lstsq(np.c_[x, np.ones_like(x)], y, rcond=None)[0]
    w_end, b_end = run["metrics"]["w"][-1][1], run["metrics"]["b"][-1][1]
    assert abs(w_end - w_opt) < 0.15 and abs(b_end - b_opt) < 0.1

    listed = client.get("/api/runs").json()["runs"]
    assert listed[0]["id"] == run["id"] and listed[0]["metrics"] == {}


def test_checkpoint_and_state_dict_open_with_plain_torch_load(
    client: TestClient, tmp_path: Path
) -> None:
    run_id = client.post(
        "/api/runs", json={"task": "linear-regression", "config": {"stage": "nn", "epochs": 5}}
    ).json()["id"]
    assert finished(client, run_id)["status"] == "completed"

    response = client.get(f"/api/runs/{run_id}/checkpoint")
    assert response.status_code == 200
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(response.content)
    ckpt = torch.load(path, weights_only=True)
    assert {"model", "optimizer", "epoch"} <= set(ckpt) and ckpt["epoch"] == 5
    assert ckpt["task"] == "linear-regression" and ckpt["config"]["epochs"] == 5

    path.write_bytes(client.get(f"/api/runs/{run_id}/state_dict").content)
    state = torch.load(path, weights_only=True)
    model = torch.nn.Linear(1, 1)
    model.load_state_dict(state)  # the file is a real nn.Linear state_dict
    last_w = client.get(f"/api/runs/{run_id}").json()["metrics"]["w"][-1][1]
    assert model.weight.item() == pytest.approx(last_w, abs=1e-6)


def test_the_event_stream_replays_then_ends_with_the_final_status(client: TestClient) -> None:
    run_id = client.post(
        "/api/runs", json={"task": "linear-regression", "config": {"epochs": 40}}
    ).json()["id"]
    live = sse(client, f"/api/runs/{run_id}/events")
    assert live[-1]["event"] == "status" and live[-1]["data"]["status"] == "completed"
    assert sum(e["event"] == "status" and e["data"]["status"] == "completed" for e in live) == 1
    metrics = [e for e in live if e["event"] == "metric"]
    ids = [e["id"] for e in metrics]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    loss_steps = [e["data"]["step"] for e in metrics if e["data"]["name"] == "loss"]
    assert loss_steps == list(range(1, 41))

    # Everything the stream sent is what the store holds, in the same order.
    stored = client.get(f"/api/runs/{run_id}").json()["metrics"]
    streamed: dict[str, list[list[float]]] = {}
    for e in metrics:
        streamed.setdefault(e["data"]["name"], []).append([e["data"]["step"], e["data"]["value"]])
    assert streamed == stored

    # A client that connects after the end first gets everything it missed.
    late = sse(client, f"/api/runs/{run_id}/events")
    assert [e["data"] for e in late if e["event"] == "metric"] == [e["data"] for e in metrics]
    assert late[-1]["data"] == {"status": "completed", "progress": 1.0}

    # A browser that reconnects with Last-Event-ID gets only what came after it.
    cut = ids[len(ids) // 2]
    resumed = sse(client, f"/api/runs/{run_id}/events", {"Last-Event-ID": str(cut)})
    assert [e["id"] for e in resumed if e["event"] == "metric"] == [i for i in ids if i > cut]


def test_cancel_over_http_stops_a_running_run(make_client: Callable[..., TestClient]) -> None:
    client = make_client(runs_max_concurrent=1)
    body = {"task": "test-sleepy", "config": {"mode": "linger"}}
    run_id = client.post("/api/runs", json=body).json()["id"]
    wait_for(lambda: "loss" in client.get(f"/api/runs/{run_id}").json()["metrics"])
    assert client.get(f"/api/runs/{run_id}").json()["position"] == 0
    response = client.post(f"/api/runs/{run_id}/cancel")
    assert response.status_code == 200 and response.json() == {"status": "cancelled"}
    events = sse(client, f"/api/runs/{run_id}/events")
    assert events[-1]["data"]["status"] == "cancelled"
    # The worker logged 10 more metrics over half a second after the cancel; the final status
    # waited for them, so the stream holds every metric the store does.
    streamed = [[e["data"]["step"], e["data"]["value"]] for e in events if e["event"] == "metric"]
    stored = client.get(f"/api/runs/{run_id}").json()["metrics"]["loss"]
    assert streamed == stored and len(stored) >= 11
    assert client.post(f"/api/runs/{run_id}/cancel").json() == {"status": "cancelled"}


def test_a_full_queue_answers_429_with_retry_after(make_client: Callable[..., TestClient]) -> None:
    client = make_client(runs_max_concurrent=1, runs_max_queue=1)
    first = client.post("/api/runs", json={"task": "test-sleepy"}).json()["id"]
    wait_for(lambda: client.get(f"/api/runs/{first}").json()["status"] == "running")
    second = client.post("/api/runs", json={"task": "test-sleepy"})
    assert second.status_code == 202
    assert client.get(f"/api/runs/{second.json()['id']}").json()["position"] == 1
    refused = client.post("/api/runs", json={"task": "test-sleepy"})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "queue is full" in refused.json()["detail"]
    assert refused.json()["limit"] == "runs_max_queue"
    assert len(client.get("/api/runs").json()["runs"]) == 2  # nothing half-made


def test_a_learners_seventh_run_is_a_429_naming_their_share(
    make_client: Callable[..., TestClient],
) -> None:
    """Issue 16's fair share: six runs queued or running per learner (runs_max_per_learner), so
    one learner cannot fill the queue for the class; another learner is still served."""
    client = make_client(runs_max_concurrent=1)
    sleepy = {"task": "test-sleepy", "config": {"steps": 100_000}}
    ids = [client.post("/api/runs", json=sleepy).json()["id"] for _ in range(6)]
    try:
        statuses = [client.get(f"/api/runs/{i}").json()["status"] for i in ids]
        assert set(statuses) <= {"queued", "running"}
        seventh = client.post("/api/runs", json=sleepy)
        assert seventh.status_code == 429
        assert seventh.json()["limit"] == "runs_max_per_learner"
        assert "6 runs queued or running" in seventh.json()["detail"]
        assert int(seventh.headers["Retry-After"]) > 0
        assert len(client.get("/api/runs").json()["runs"]) == 6  # nothing was stored

        client.post(f"/api/runs/{ids.pop()}/cancel")  # a place of their own again
        again = client.post("/api/runs", json=sleepy)
        assert again.status_code == 202, again.text
        ids.append(again.json()["id"])

        client.cookies.clear()  # another learner
        other = client.post("/api/runs", json=sleepy)
        assert other.status_code == 202, other.text
        ids.append(other.json()["id"])
    finally:
        for run_id in ids:
            client.post(f"/api/runs/{run_id}/cancel")


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"task": "linear-regression", "config": {"epochs": 0}}, "epochs", "greater than"),
        ({"task": "linear-regression", "config": {"stage": "magic"}}, "stage", "manual"),
        ({"task": "linear-regression", "config": {"learning_rate": 5}}, "learning_rate", "1"),
        ({"task": "linear-regression", "config": {"surprise": 1}}, "surprise", "not permitted"),
        ({"task": "digits-cnn", "config": {"batch_size": 10**6}}, "batch_size", "512"),
        ({"task": "no-such-task"}, "task", "known"),
        ({"task": "linear-regression", "resume_from": "nope"}, "resume_from", "nope"),
    ],
)
def test_bad_configs_get_422_naming_the_field(
    client: TestClient, body: dict, field: str, words: str
) -> None:
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field and words in response.json()["detail"]
    assert client.get("/api/runs").json()["runs"] == []


def test_unknown_runs_and_missing_artifacts_get_404s(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(runs_max_concurrent=1)
    for path in ("", "/events", "/checkpoint", "/state_dict", "/tensorboard"):
        response = client.get(f"/api/runs/nope{path}")
        assert response.status_code == 404 and "nope" in response.json()["detail"]
    assert client.post("/api/runs/nope/cancel").status_code == 404
    run_id = client.post("/api/runs", json={"task": "test-sleepy"}).json()["id"]
    response = client.get(f"/api/runs/{run_id}/checkpoint")
    assert response.status_code == 404 and "still" in response.json()["detail"]
    client.post(f"/api/runs/{run_id}/cancel")


def test_a_restart_marks_unfinished_runs_interrupted_and_keeps_their_metrics(
    make_client: Callable[..., TestClient], tmp_path: Path, database_url: str | None
) -> None:
    client = make_client(runs_max_concurrent=1)
    running = client.post("/api/runs", json={"task": "test-sleepy"}).json()["id"]
    queued = client.post("/api/runs", json={"task": "test-sleepy"}).json()["id"]
    wait_for(lambda: len(client.get(f"/api/runs/{running}").json()["metrics"].get("loss", [])) > 3)
    client.__exit__(None, None, None)  # the server stops

    # A server killed outright leaves a run "running" in the store: the next start fixes it.
    store = RunStore(database_url, data_dir=tmp_path / "data")
    ghost = store.create("linear-regression", {"epochs": 5})
    store.mark_running(ghost.id)
    store.add_metrics(ghost.id, [(1, "loss", 2.5)])
    store.close()

    again = make_client()
    again.cookies.update(client.cookies)  # the same learner, on the restarted server
    runs = {r["id"]: r for r in again.get("/api/runs?metrics=true").json()["runs"]}
    assert {r["status"] for r in runs.values()} == {"interrupted"}
    assert len(runs[running]["metrics"]["loss"]) > 3
    assert runs[queued]["metrics"] == {}
    # A run made before learners existed is listed only on this machine, and read by its id.
    assert ghost.id not in runs
    assert again.get(f"/api/runs/{ghost.id}").json()["metrics"] == {"loss": [[1, 2.5]]}
    assert all(r["finished_at"] and r["error"] for r in runs.values())


def test_a_crashing_run_fails_with_its_error(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    run_id = client.post(
        "/api/runs", json={"task": "test-sleepy", "config": {"mode": "raise"}}
    ).json()["id"]
    run = finished(client, run_id)
    assert run["status"] == "failed" and "RuntimeError: boom" in run["error"]
    assert run["metrics"] == {"loss": [[1, 1.0]]}


def test_the_tensorboard_zip_holds_event_files_tensorboard_reads(
    client: TestClient, tmp_path: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_id = client.post(
        "/api/runs", json={"task": "linear-regression", "config": {"epochs": 12}}
    ).json()["id"]
    run = finished(client, run_id)
    response = client.get(f"/api/runs/{run_id}/tensorboard")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert names and all(n.startswith(f"{run_id}/") for n in names)
        archive.extractall(tmp_path / "logs")
    events = EventAccumulator(str(tmp_path / "logs" / run_id))
    events.Reload()
    assert {"loss", "w", "b", "grad_w", "grad_b"} <= set(events.Tags()["scalars"])
    for name, points in run["metrics"].items():
        read = [[e.step, e.value] for e in events.Scalars(name)]
        assert read == [[s, pytest.approx(v, rel=1e-6)] for s, v in points]
