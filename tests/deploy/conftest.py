"""A class deployment on loopback for the fault tests: two web processes and two Celery workers,
a private Redis they use as the broker, and a fresh PostgreSQL database reached through a TCP
proxy the tests can cut.

Nothing is mocked: the processes are the ones ``make class`` starts (``app.deploy``), Redis is a
``redis-server`` of the test's own (the machine's Redis on 6379 is never touched), and the store
is the real PostgreSQL server at 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import redis

from app.deploy import ClassDeployment, Process, drop_database, ensure_database
from tests import pg

PORTS = range(8400, 8500)
# Short leases, so a silent worker is noticed within seconds; a run may start twice, so a second
# kill ends it (interrupted) without a deployment of its own.
DEPLOYMENT_ENV = {
    "EXPLORER_RUNS_LEASE_SECONDS": "2",
    "EXPLORER_RUNS_MAX_ATTEMPTS": "2",
    "EXPLORER_WARM_LESSONS": "false",
    "EXPLORER_PROGRAM_PREWARM": "false",
    "EXPLORER_PICTURE_PREWARM": "false",
}


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, taken: set[int]) -> int:
    """The first of ``count`` consecutive free loopback ports in 8400-8499 (none of ``taken``)."""
    for first in PORTS:
        block = range(first, first + count)
        if block[-1] in PORTS and not taken & set(block) and all(map(_port_free, block)):
            taken.update(block)
            return first
    raise RuntimeError(f"no {count} consecutive free ports in 8400-8499")


class RedisServer:
    """A ``redis-server`` of the test's own that keeps nothing: killed and started again on the
    same port, it comes back empty, as a broker that lost its messages."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed: these tests start one of their own")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("ab")
        argv = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        self.popen = subprocess.Popen(
            argv, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start: {self.log}")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: whatever it held is gone."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
        if self._out is not None:
            self._out.close()
            self._out = None


@dataclass
class Stack:
    """The deployment and the things around it the tests break."""

    deployment: ClassDeployment
    redis: RedisServer
    proxy: pg.TcpProxy
    direct_url: str  # the test database, straight to PostgreSQL (not through the proxy)

    @property
    def logs(self) -> Path:
        return self.deployment.data_dir / "logs"

    def tails(self, lines: int = 25) -> str:
        """Every process's last log lines, for a failure's message."""
        parts = []
        for process in [*self.deployment.web, *self.deployment.worker]:
            parts.append(f"--- {process.name} (pid {process.pid}) ---\n{process.tail(lines)}")
        return "\n".join(parts)

    def restart_all(self, processes: list[Process]) -> None:
        """Start killed processes again at once, and wait until every one is ready."""
        for process in processes:
            process.stop()
            if process.url is None:
                process.log.write_text("")  # a worker's "ready" line is then the new one
            process.start()
        self.deployment.wait_ready(processes)


def kill_all(deployment: ClassDeployment) -> None:
    """SIGKILL every process group of the deployment (the database is dropped after: nothing
    needs a graceful stop), and close their logs."""
    for process in [*deployment.web, *deployment.worker]:
        process.kill()
        process.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One deployment for the module: 2 webs, 2 workers, a private Redis, the store through a
    proxy. Every process is killed and the database dropped at the end, whatever happened."""
    pg.require()
    name = f"explorer_faults_{os.getpid()}"
    direct = pg.sqlalchemy_url(name)
    taken: set[int] = set()
    web_port = free_ports(2, taken)
    redis_port = free_ports(1, taken)
    proxy_port = free_ports(1, taken)
    data_dir = tmp_path_factory.mktemp("class")
    server = RedisServer(redis_port, data_dir / "logs" / "redis.log")
    proxy = pg.TcpProxy(proxy_port)
    deployment = ClassDeployment(
        database_url=direct.replace(f":{pg.PORT}/", f":{proxy_port}/"),
        broker_url=server.url,
        webs=2,
        workers=2,
        port=web_port,
        data_dir=data_dir,
        env=dict(DEPLOYMENT_ENV),
    )
    try:
        drop_database(direct)  # a previous session of the same pid that could not clean up
        ensure_database(direct)
        server.start()
        deployment.start()
        yield Stack(deployment, server, proxy, direct)
    finally:
        kill_all(deployment)
        server.kill()
        proxy.close()
        drop_database(direct)
