"""A class deployment on this machine, without Docker: ``make class`` (``python -m app.deploy``).

It starts what ``deploy/compose.yaml`` runs on several hosts, as plain processes: ``webs`` web
processes (``python -m app``) on consecutive ports and ``workers`` Celery workers (``celery -A
app.jobs.celery worker --pool solo``), all with ``EXPLORER_RUNNER=celery``, sharing the local
Redis as the broker and a PostgreSQL database of their own (created when missing). The tests
start one the same way (``ClassDeployment``) and kill its processes to check each fault is
survived.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import ROOT

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/explorer_class"
DEFAULT_BROKER = "redis://127.0.0.1:6379/1"
START_TIMEOUT_S = 120.0


def ensure_database(url: str) -> None:
    """Create the URL's database on its server when it does not exist yet."""
    target = make_url(url)
    name = target.database
    if not name or not target.drivername.startswith("postgresql"):
        return
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not found:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """Drop the URL's database (its connections are closed first)."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def flush_broker(url: str) -> None:
    """Empty that one Redis database (a deployment's broker); the server's others stay as they
    are. Raises ``redis.RedisError`` when it does not answer."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


@dataclass
class Process:
    """One process of the deployment: how to start it, and its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready: str  # a line its log shows once it serves (a worker), or "" (a web process: /healthz)
    url: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill reaches all of it
        )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def is_ready(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen and self.popen.returncode}; "
                               f"its log: {self.log}\n{self.tail()}")  # fmt: skip
        if self.url is not None:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, OSError):
                return False
        return self.ready in self.log.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group (``kill -9`` by default), and reap it."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)

    def terminate(self) -> None:
        """Ask the process group to stop (SIGTERM), without waiting."""
        if self.popen is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self) -> None:
        """A graceful stop (SIGTERM), then SIGKILL after 20 s."""
        if self.popen is None:
            return
        if self.alive():
            self.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._out is not None:
            self._out.close()
            self._out = None


@dataclass
class ClassDeployment:
    """``webs`` web processes from ``port`` up and ``workers`` Celery workers on this machine."""

    database_url: str = DEFAULT_DATABASE
    broker_url: str = DEFAULT_BROKER
    webs: int = 2
    workers: int = 2
    port: int = 8001
    data_dir: Path = ROOT / "data" / "class"
    env: dict[str, str] = field(default_factory=dict)  # more EXPLORER_* settings
    web: list[Process] = field(default_factory=list)
    worker: list[Process] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPLORER_")}
        env.update(
            {
                "EXPLORER_RUNNER": "celery",
                "EXPLORER_DATABASE_URL": self.database_url,
                "EXPLORER_BROKER_URL": self.broker_url,
                "EXPLORER_DATA_DIR": str(self.data_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        return env

    def _web(self, index: int) -> Process:
        port = self.port + index
        env = {**self.environment(), "EXPLORER_PORT": str(port)}
        return Process(
            f"web{index + 1}",
            [sys.executable, "-m", "app"],
            env,
            self.data_dir / "logs" / f"web{index + 1}.log",
            ready="",
            url=f"http://127.0.0.1:{port}",
        )

    def _worker(self, index: int) -> Process:
        name = f"worker{index + 1}"
        argv = [sys.executable, "-m", "celery", "-A", "app.jobs.celery", "worker", "--pool",
                "solo", "-n", f"{name}@%h", "--without-mingle", "--without-gossip",
                "--loglevel", "INFO"]  # fmt: skip
        return Process(
            name, argv, self.environment(), self.data_dir / "logs" / f"{name}.log", " ready."
        )

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.web if p.url]

    def start(self) -> ClassDeployment:
        ensure_database(self.database_url)
        self.web = [self._web(i) for i in range(self.webs)]
        self.worker = [self._worker(i) for i in range(self.workers)]
        for process in [*self.worker, *self.web]:
            process.start()
        self.wait_ready([*self.worker, *self.web])
        return self

    def wait_ready(self, processes: list[Process], timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = list(processes)
        while waiting:
            waiting = [p for p in waiting if not p.is_ready()]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(p.name for p in waiting)
                raise TimeoutError(f"{names} not ready after {timeout_s:g} s:\n"
                                   + "\n".join(p.tail() for p in waiting))  # fmt: skip
            time.sleep(0.2)

    def restart(self, process: Process) -> None:
        """Start a stopped or killed process again (a fresh log line marks when it is ready)."""
        process.stop()
        if process.url is None:
            process.log.write_text("")  # its "ready" line is the new one
        process.start()
        self.wait_ready([process])

    def stop(self) -> None:
        """Stop every process: all asked at once, then each waited for."""
        for process in [*self.web, *self.worker]:
            process.terminate()
        for process in [*self.web, *self.worker]:
            process.stop()

    def __enter__(self) -> ClassDeployment:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.deploy", description=__doc__)
    parser.add_argument("--webs", type=int, default=2, help="web processes (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument("--port", type=int, default=8001, help="the first web port (8001)")
    parser.add_argument("--database-url", default=os.environ.get("EXPLORER_DATABASE_URL",
                                                                 DEFAULT_DATABASE))  # fmt: skip
    parser.add_argument("--broker-url", default=os.environ.get("EXPLORER_BROKER_URL",
                                                               DEFAULT_BROKER))  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "class")
    args = parser.parse_args(argv)
    deployment = ClassDeployment(
        database_url=args.database_url,
        broker_url=args.broker_url,
        webs=args.webs,
        workers=args.workers,
        port=args.port,
        data_dir=args.data_dir,
    )
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print(f"Starting {args.webs} web processes and {args.workers} Celery workers "
          f"(store {make_url(args.database_url).render_as_string()}, broker {args.broker_url})",
          flush=True)  # fmt: skip
    try:
        deployment.start()
        print("PyTorch Explorer, class deployment:", flush=True)
        for url in deployment.urls:
            print(f"  {url}", flush=True)
        print(f"Logs in {args.data_dir / 'logs'}. Ctrl-C stops every process.", flush=True)
        while not stop and all(p.alive() for p in [*deployment.web, *deployment.worker]):
            time.sleep(0.5)
        for process in [*deployment.web, *deployment.worker]:
            if not process.alive():
                print(f"{process.name} stopped; its log:\n{process.tail()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping the class deployment", flush=True)
        deployment.stop()


if __name__ == "__main__":
    main()
