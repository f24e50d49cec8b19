"""One learner's fair share over HTTP (issue 16, item 4): the bytes their runs keep, identity
links and programs per minute, each refused naming its setting while another learner is served;
the per-minute counts shared through Redis in a class deployment; retention started with the app.

The storage tests run on SQLite in the data dir and on a PostgreSQL database of their own.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.jobs.retention import learner_bytes
from app.jobs.store import RunRow, RunStore, run_dir
from app.main import create_app
from app.web.rates import KEY_PREFIX, RateLimited, Rates
from tests import pg
from tests.support import finished, launch, started_apps, wait_for

REDIS_URL = "redis://127.0.0.1:6379/12"  # this module's Redis database, emptied of its keys
REDIS_UNAVAILABLE = (
    "Redis is not answering at 127.0.0.1:6379: the class deployment's rate limits are tested "
    "on the real server. Start it (`service redis-server start`) and run them again."
)
QUICK = {"task": "test-sleepy", "config": {"steps": 3}}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite in the data dir), or a fresh PostgreSQL database for the test."""
    if request.param == "sqlite":
        yield None
        return
    if not pg.pg_available():
        pytest.fail(pg.UNAVAILABLE, pytrace=False)
    with pg.fresh_database("h2_quotas") as url:
        yield url


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``make(**settings)``: a started app on this test's data dir (SQLite unless told)."""
    with started_apps() as start:

        def make(**overrides: Any) -> TestClient:
            settings = Settings(
                data_dir=tmp_path / "data", warm_lessons=False, program_prewarm=False, **overrides
            )
            client: TestClient = start(settings)
            return client

        yield make


def learner(client: TestClient) -> str:
    return str(client.get("/api/me").json()["learner"])


def too_many(response: Any, setting: str, status: int = 429) -> dict[str, Any]:
    """A refusal of ``status`` whose ``limit`` is ``setting`` and whose detail names it."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["limit"] == setting
    assert setting in body["detail"]
    if status == 429:
        assert 1 <= int(response.headers["retry-after"]) <= 60
    return body


# ---- the bytes one learner's runs keep ----------------------------------------------------------


def test_a_learner_over_their_storage_gets_413_naming_the_limit_while_another_launches(
    make_client: Callable[..., TestClient], database_url: str | None
) -> None:
    a = make_client(database_url=database_url, runs_max_bytes_per_learner=1024)
    first = launch(a, "test-sleepy", QUICK["config"])
    assert finished(a, first)["status"] == "completed"
    runs = a.app.state.runs  # type: ignore[attr-defined]
    kept = learner_bytes(runs, learner(a))
    assert kept >= 1024  # its checkpoint, state_dict and metric rows
    assert runs.store.stored_bytes([first]) == {first: kept}  # final: counted once, kept

    body = too_many(a.post("/api/runs", json=QUICK), "runs_max_bytes_per_learner", 413)
    assert "runs_max_bytes_per_learner = 1024 bytes" in body["detail"]
    assert "/runs" in body["detail"] and "DELETE /api/runs/{id}" in body["detail"]
    assert [run["id"] for run in a.get("/api/runs").json()["runs"]] == [first]  # nothing stored
    # A resume is a new run that keeps files too: refused the same way.
    resume = {**QUICK, "resume_from": first}
    too_many(a.post("/api/runs", json=resume), "runs_max_bytes_per_learner", 413)

    b = TestClient(a.app)  # another browser: another learner, with a share of their own
    other = b.post("/api/runs", json=QUICK)
    assert other.status_code == 202, other.text
    assert finished(b, other.json()["id"])["status"] == "completed"

    # A deletes their run: the space is theirs again.
    deleted = a.delete(f"/api/runs/{first}")
    assert deleted.status_code == 200, deleted.text
    assert learner_bytes(runs, learner(a)) == 0
    again = a.post("/api/runs", json=QUICK)
    assert again.status_code == 202, again.text
    finished(a, again.json()["id"])


# ---- per-minute limits --------------------------------------------------------------------------


def test_identity_links_past_the_rate_are_429_naming_the_setting(
    make_client: Callable[..., TestClient],
) -> None:
    a = make_client(identity_max_links_per_minute=2)
    for _ in range(2):
        assert a.post("/api/me/link").status_code == 201
    body = too_many(a.post("/api/me/link"), "identity_max_links_per_minute")
    assert "at most 2 a minute (setting identity_max_links_per_minute = 2)" in body["detail"]

    # Counted per address too: a fresh cookie from the same address is refused all the same...
    same_address = TestClient(a.app)
    assert learner(same_address) != learner(a)
    too_many(same_address.post("/api/me/link"), "identity_max_links_per_minute")
    # ... while another learner elsewhere is served.
    elsewhere = TestClient(a.app, client=("10.0.0.9", 50000))
    assert elsewhere.post("/api/me/link").status_code == 201


def test_programs_past_the_rate_are_429_naming_the_setting(
    make_client: Callable[..., TestClient],
) -> None:
    a = make_client(program_max_per_minute=3)
    assert a.post("/api/tensors/run", json={"code": "x = 1"}).status_code == 200
    graph = {"code": "x = torch.ones(2, requires_grad=True)\ny = (x * 2).sum()", "backward": "y"}
    assert a.post("/api/autograd/graph", json=graph).status_code == 200
    assert a.post("/api/tensors/run", json={"code": "x = 2"}).status_code == 200
    # Every program run counts, whichever page runs it: the fourth in the minute is refused.
    body = too_many(a.post("/api/tensors/run", json={"code": "x = 3"}), "program_max_per_minute")
    assert "at most 3 a minute" in body["detail"]
    too_many(a.post("/api/autograd/graph", json=graph), "program_max_per_minute")
    too_many(a.post("/api/notebook", json={"code": "x = 1"}), "program_max_per_minute")

    # A lesson page that runs the program in its link counts too (the Tensors page's ?code=).
    page = a.get("/lessons/tensors", params={"code": "x = 4"})
    assert page.status_code == 429 and "program_max_per_minute" in page.text

    # Keyed by learner: another learner at the same address runs theirs.
    b = TestClient(a.app)
    assert b.get("/lessons/tensors", params={"code": "x = 5"}).status_code == 200
    answer = b.post("/api/tensors/run", json={"code": "x = 1 + 1"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["error"] is None


# ---- the counts in Redis (a class deployment) ---------------------------------------------------


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    """Redis database 12 without this app's rate keys, before and after the test."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.fail(REDIS_UNAVAILABLE, pytrace=False)

    def clear() -> None:
        keys = list(client.scan_iter(f"{KEY_PREFIX}*"))
        if keys:
            client.delete(*keys)

    clear()
    yield client
    clear()
    client.close()


def class_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", runner="celery", broker_url=REDIS_URL, **overrides)


def test_two_web_processes_share_one_count_in_redis(redis_db: redis.Redis, tmp_path: Path) -> None:
    settings = class_settings(tmp_path, program_max_per_minute=3)
    one, two = Rates(settings), Rates(settings)  # as two web processes each make theirs
    key = f"learner:{secrets.token_hex(8)}"
    try:
        assert one.shared is not None and two.shared is not None
        one.hit("program_max_per_minute", key)
        two.hit("program_max_per_minute", key)
        one.hit("program_max_per_minute", key)
        for rates in (two, one):
            with pytest.raises(RateLimited) as refused:
                rates.hit("program_max_per_minute", key)
            assert refused.value.limit == "program_max_per_minute"
            assert 1 <= refused.value.retry_after <= 60
            assert "setting program_max_per_minute = 3" in str(refused.value)

        # In Redis, under the app's prefix, forgotten within the minute.
        name = f"{KEY_PREFIX}program_max_per_minute:{key}"
        assert redis_db.zcard(name) == 3
        assert 0 < redis_db.pttl(name) <= 60_000

        # Several keys: refused when any is full, and then none is counted.
        fresh = f"client:{secrets.token_hex(8)}"
        with pytest.raises(RateLimited):
            two.hit("program_max_per_minute", fresh, key)
        assert redis_db.zcard(f"{KEY_PREFIX}program_max_per_minute:{fresh}") == 0
        for _ in range(3):
            one.hit("program_max_per_minute", fresh)
        # Each setting counts apart.
        two.hit("identity_max_links_per_minute", key)
    finally:
        one.close()
        two.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_when_redis_does_not_answer_the_limits_fail_open_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = class_settings(tmp_path, identity_max_links_per_minute=3)
    app = create_app(settings)
    app.state.rates = Rates(settings, redis_url=f"redis://127.0.0.1:{free_port()}/12")
    with caplog.at_level(logging.WARNING, logger="app.rates"), TestClient(app) as client:
        answers = [client.post("/api/me/link").status_code for _ in range(4)]
    # Served, never a 500; counted in this process meanwhile, so the limit still holds there.
    assert answers == [201, 201, 201, 429]
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.rates"]
    assert len(warnings) == 1, warnings
    assert "does not answer" in warnings[0] and "counting in this process" in warnings[0]


# ---- retention runs with the app ----------------------------------------------------------------


def test_the_app_deletes_expired_runs_when_it_starts(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    store = RunStore(data_dir=tmp_path / "data")
    old = store.create("test-sleepy", {"steps": 1}).id
    young = store.create("test-sleepy", {"steps": 1}).id
    for run_id in (old, young):
        store.finish(run_id, "completed")
    with store.engine.begin() as conn:
        created = datetime.now(UTC) - timedelta(days=8)
        conn.execute(update(RunRow).where(RunRow.id == old).values(created_at=created))
    store.close()
    folder = run_dir(tmp_path / "data", old)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pth").write_bytes(b"x" * 100)

    client = make_client(runs_retention_days=7)
    wait_for(lambda: client.get(f"/api/runs/{old}").status_code == 404, timeout=30)
    assert not folder.exists()
    assert client.get(f"/api/runs/{young}").json()["status"] == "completed"


@pytest.fixture
def proxied_url() -> Iterator[tuple[str, pg.TcpProxy]]:
    """A fresh PostgreSQL database reached through a proxy that can be cut (set up before the
    app and torn down after it, so the app stops on a database that is still there)."""
    if not pg.pg_available():
        pytest.fail(pg.UNAVAILABLE, pytrace=False)
    with pg.fresh_database("h2_quotas") as url:
        proxy = pg.TcpProxy()
        try:
            yield url.replace(f":{pg.PORT}/", f":{proxy.port}/"), proxy
        finally:
            proxy.close()


def test_programs_are_counted_by_address_while_no_learner_can_be_told(
    proxied_url: tuple[str, pg.TcpProxy], make_client: Callable[..., TestClient]
) -> None:
    """The store that keeps the cookies' signing key is out of reach before the first request:
    no learner can be told, yet a program needs no store, so it runs, counted by address."""
    url, proxy = proxied_url
    client = make_client(database_url=url, program_max_per_minute=1)
    proxy.cut()
    try:
        assert client.get("/api/me").status_code == 503  # no learner now
        answer = client.post("/api/tensors/run", json={"code": "x = 1"})
        assert answer.status_code == 200, answer.text
        again = client.post("/api/tensors/run", json={"code": "x = 1"})
        too_many(again, "program_max_per_minute")
    finally:
        proxy.restore()
