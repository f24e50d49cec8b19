"""Faults of the whole server, with real uvicorn processes on one data dir: a second server
started on it, a ``kill -9`` of the server mid-run, and a restart."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import numpy as np

from tests.faults import server as srv
from tests.support import wait_for

TIMEOUT = 60.0


def run(url: str, run_id: str) -> dict:
    response = httpx.get(f"{url}/api/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def launch(url: str, task: str, config: dict, headers: dict | None = None) -> str:
    body = {"task": task, "config": config}
    response = httpx.post(f"{url}/api/runs", json=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def final(url: str, run_id: str) -> dict:
    wait_for(lambda: run(url, run_id)["status"] not in ("queued", "running"), TIMEOUT)
    return run(url, run_id)


def losses(record: dict) -> np.ndarray:
    return np.array(record["metrics"].get("loss", []), dtype=float).reshape(-1, 2)


def test_a_second_server_kill_9_and_a_restart_on_one_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = srv.start(data, tmp_path / "first.log")
    try:
        url = first.url
        # One learner launches, and later resumes, the completed run (their signed token: the
        # restarted server keeps the key in the same data dir).
        me = {"X-Explorer-Learner": httpx.get(f"{url}/api/me", timeout=10).json()["token"]}
        done = final(url, launch(url, "linear-regression", {"epochs": 15}, me))
        assert done["status"] == "completed", done["error"]
        checkpoint = httpx.get(f"{url}/api/runs/{done['id']}/checkpoint", timeout=10).content
        sleepy = launch(url, "test-sleepy", {})
        wait_for(lambda: len(losses(run(url, sleepy))) >= 5, TIMEOUT)

        # A second server on the same data dir refuses to start, naming the dir and the pid of
        # the server that holds it, and leaves that server's running run alone.
        second = srv.start(data, tmp_path / "second.log", wait=False)
        assert second.process.wait(timeout=TIMEOUT) != 0
        log = second.log_text()
        assert str(data) in log and f"pid {first.process.pid}" in log, log
        assert "already used by another PyTorch Explorer server" in log
        count = len(losses(run(url, sleepy)))
        wait_for(lambda: len(losses(run(url, sleepy))) > count, TIMEOUT)
        assert run(url, sleepy)["status"] == "running"

        # A second run whose worker is in a quiet phase: it sends nothing for two minutes, so
        # no failed write tells it that the server is gone.
        silent = launch(url, "test-silent", {"logged": 5, "quiet_s": 120})
        wait_for(lambda: len(losses(run(url, silent))) == 5, TIMEOUT)

        # The runs' workers: children of the fork server, which is the server's child.
        helpers = srv.children(first.process.pid)  # the fork server (and resource tracker)
        workers = [w for child in helpers for w in srv.children(child)]
        assert len(workers) == 2, f"expected two workers under the server, found {workers}"
        seen = losses(run(url, sleepy))
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=TIMEOUT)
        # The orphaned worker does not train on for nobody: it exits within seconds.
        wait_for(lambda: not any(srv.alive(w) for w in workers), 20)
        # Nor does the fork server, which stays up while any worker holds its "alive" pipe.
        wait_for(lambda: not any(srv.alive(h) for h in helpers), 20)
    finally:
        first.stop()

    # A restart on the same data dir: the kernel dropped the killed server's lock.
    restarted = srv.start(data, tmp_path / "restarted.log")
    try:
        url = restarted.url
        after = run(url, sleepy)
        assert after["status"] == "interrupted" and after["error"] and after["finished_at"]
        kept = losses(after)
        assert len(kept) >= len(seen) and np.array_equal(kept[: len(seen)], seen)
        steps = np.arange(1, len(kept) + 1)
        assert np.allclose(kept[:, 0], steps) and np.allclose(kept[:, 1], 1.0 / steps)
        # The completed run's artefacts are intact, byte for byte.
        again = httpx.get(f"{url}/api/runs/{done['id']}/checkpoint", timeout=10)
        assert again.status_code == 200 and again.content == checkpoint
        assert run(url, done["id"])["status"] == "completed"
        quiet = run(url, silent)
        assert quiet["status"] == "interrupted"
        assert np.allclose(losses(quiet)[:, 1], 1.0 / np.arange(1, 6))
        # New runs work, resuming the completed one included.
        resumed = httpx.post(
            f"{url}/api/runs",
            json={"task": "linear-regression", "config": {"epochs": 5}, "resume_from": done["id"]},
            headers=me,
            timeout=10,
        )
        assert resumed.status_code == 202, resumed.text
        record = final(url, resumed.json()["id"])
        assert record["status"] == "completed", record["error"]
        assert [s for s, _ in record["metrics"]["loss"]] == [16, 17, 18, 19, 20]
    finally:
        restarted.stop()
