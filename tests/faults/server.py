"""A real uvicorn server in a subprocess on a given data dir, and a look at its process tree."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(data_dir: Path, log: Path, *, wait: bool = True) -> Server:
    """``uvicorn tests.faults.app_with_test_tasks:app`` on a free port with ``data_dir``."""
    port = free_port()
    env = os.environ | {
        "EXPLORER_DATA_DIR": str(data_dir),
        "EXPLORER_WARM_LESSONS": "false",
        "EXPLORER_PROGRAM_PREWARM": "false",
        "EXPLORER_RUNS_MAX_CONCURRENT": "2",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "tests.faults.app_with_test_tasks:app"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    if wait:
        wait_until_up(server)
    return server


def wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"the server exited with code {server.process.returncode}:\n{server.log_text()}"
            )
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.process.kill()
    raise AssertionError(f"the server did not come up:\n{server.log_text()}")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from /proc, or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone: it runs nothing)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
