"""The app as it ships, in a subprocess: ``python -m app`` (uvicorn behind the server's deadlines,
``app.web.server``) serving the app with the test-only tasks, on a free port and its own data dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.faults.server import ROOT, Server, free_port, wait_until_up

APP = "tests.faults.app_with_test_tasks:app"


def start(data_dir: Path, log: Path, **settings: str | int | float) -> Server:
    """``python -m app tests.faults.app_with_test_tasks:app`` with ``EXPLORER_<NAME>`` settings."""
    port = free_port()
    env = os.environ | {
        "EXPLORER_HOST": "127.0.0.1",
        "EXPLORER_PORT": str(port),
        "EXPLORER_DATA_DIR": str(data_dir),
        "EXPLORER_WARM_LESSONS": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env |= {f"EXPLORER_{name.upper()}": str(value) for name, value in settings.items()}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", APP],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    wait_until_up(server)
    return server


@contextmanager
def serving(tmp_path: Path, **settings: str | int | float) -> Iterator[Server]:
    """A guarded server for the length of a ``with`` block."""
    server = start(tmp_path / "data", tmp_path / "server.log", **settings)
    try:
        yield server
    finally:
        server.stop()


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


# Run in a process of its own, so the test's own threads (attackers parsing answers) do not
# hold the probe up with this process's GIL: what it measures is the server.
PROBE = """
import json, sys, time
import httpx
url, probes, every = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
took = []
with httpx.Client(timeout=60, headers={"Connection": "close"}) as client:
    for _ in range(probes):
        started = time.perf_counter()
        try:
            ok = client.get(url + "/healthz").status_code == 200
        except httpx.HTTPError:
            ok = False
        took.append(time.perf_counter() - started if ok else 60.0)
        time.sleep(every)
print(json.dumps(took))
"""


def probe_health(url: str, probes: int, every_s: float) -> list[float]:
    """Seconds each of ``probes`` GET /healthz took, one every ``every_s``, each on a new
    connection as a load balancer's check makes it; a probe that fails counts as 60 s."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, url, str(probes), str(every_s)],
        capture_output=True,
        check=True,
        timeout=probes * (every_s + 60) + 60,
    )
    return [float(x) for x in json.loads(done.stdout)]


def p99(samples: list[float]) -> float:
    """The 99th percentile (nearest rank): with under 100 samples, the slowest."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
