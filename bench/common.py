"""Shared helpers for the benchmarks: timing, the result table and JSON, and a real server.

A benchmark module exposes ``run(ctx: Context) -> list[Row]``; ``python -m bench`` runs each one,
prints one table and writes ``bench/results.json``. Times are medians over many calls and every
figure is paired with a bare baseline measured the same way, because on a small shared machine
the absolute numbers are noisy and the ratio is what carries over.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
CHROMIUM = os.environ.get("EXPLORER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# ---- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one callable, in seconds."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]

    @property
    def n(self) -> int:
        return len(self.samples)


def measure(
    fn: Callable[[], object], repeat: int = 200, warmup: int = 5, budget_s: float | None = None
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then up to ``repeat`` timed calls.

    With ``budget_s`` it stops early once that many seconds of timed calls have run (never
    below 10 samples), so a slow case cannot blow the whole run's time.
    """
    return compare(fn, None, repeat, warmup, budget_s)[0]


def compare(
    app: Callable[[], object],
    bare: Callable[[], object] | None,
    repeat: int = 200,
    warmup: int = 5,
    budget_s: float | None = None,
) -> tuple[Timing, Timing | None]:
    """Time ``app`` and ``bare`` alternately, call by call, so both see the same machine noise."""
    fns = [app] if bare is None else [app, bare]
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    clock = time.perf_counter
    started = clock()
    for i in range(repeat):
        for fn, out in zip(fns, samples, strict=True):
            t0 = clock()
            fn()
            out.append(clock() - t0)
        if budget_s is not None and i >= 9 and clock() - started > budget_s:
            break
    timings = [Timing(tuple(s)) for s in samples]
    return timings[0], (timings[1] if bare is not None else None)


# ---- results ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: what the app costs next to a bare baseline measured the same way.

    ``unit`` is "s" (stored in seconds, shown in ms or s) or "B" (bytes). ``ratio`` is app/bare.
    """

    group: str
    name: str
    unit: str
    app: float
    bare: float | None = None
    app_p90: float | None = None
    bare_p90: float | None = None
    notes: str = ""
    n: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.app / self.bare if self.bare else None

    @classmethod
    def timed(
        cls, group: str, name: str, app: Timing, bare: Timing | None, notes: str = "", **extra: Any
    ) -> Row:
        """A latency row from two timings (medians shown, p90 alongside)."""
        return cls(
            group=group,
            name=name,
            unit="s",
            app=app.median,
            bare=bare.median if bare else None,
            app_p90=app.p90,
            bare_p90=bare.p90 if bare else None,
            notes=notes,
            n=min(app.n, bare.n) if bare else app.n,
            extra=extra,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


@dataclass
class Context:
    """What every benchmark module gets: a scratch directory and the command-line choices."""

    tmp: Path
    quick: bool = False
    browser: bool = True

    def repeat(self, n: int) -> int:
        return max(10, n // 5) if self.quick else n

    def budget(self, seconds: float) -> float:
        return seconds / 4 if self.quick else seconds


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "/s":
        return f"{value:,.0f} /s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1e3:.3g} ms"


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one section per group."""
    header = ["name", "app", "app p90", "bare", "bare p90", "ratio", "n", "notes"]
    lines: list[list[str]] = []
    groups: list[str] = []
    for row in rows:
        if row.group not in groups:
            groups.append(row.group)
    table: list[list[str] | str] = []
    for group in groups:
        table.append(f"[{group}]")
        for row in rows:
            if row.group != group:
                continue
            cells = [
                row.name,
                _fmt(row.app, row.unit),
                _fmt(row.app_p90, row.unit),
                _fmt(row.bare, row.unit),
                _fmt(row.bare_p90, row.unit),
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                "-" if row.n is None else str(row.n),
                row.notes,
            ]
            lines.append(cells)
            table.append(cells)
    widths = [max(len(c[i]) for c in [header, *lines]) for i in range(len(header) - 1)]
    right = {1, 2, 3, 4, 5, 6}

    def render(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ]
        return "  ".join([*out, cells[-1]]).rstrip()

    text = [render(header), render(["-" * w for w in widths] + ["-----"])]
    for item in table:
        text.append(item if isinstance(item, str) else render(item))
    return "\n".join(text)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def write_results(rows: list[Row], machine: dict[str, Any], path: Path = RESULTS) -> None:
    payload = {"machine": machine, "rows": [row.to_json() for row in rows]}
    path.write_text(json.dumps(payload, indent=2) + "\n")


# ---- a real server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a server process on its own data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, EXPLORER_DATA_DIR=str(data_dir), EXPLORER_LOG_LEVEL="warning")
    env.update(extra)
    return env


def wait_for_200(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0, interval: float = 0.02
) -> float:
    """Poll ``url`` every ``interval`` seconds until it answers 200; seconds spent polling."""
    started = time.perf_counter()
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == 200:
                    return time.perf_counter() - started
            time.sleep(interval)
    raise TimeoutError(f"{url} gave no 200 within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this module started: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve(data_dir: Path, **env: str) -> Iterator[str]:
    """The app as it ships (``python -m app``: uvicorn behind the server's deadlines) on a free
    port (``env``: extra EXPLORER_ settings); yields its base URL."""
    port = free_port()
    log = data_dir.parent / f"uvicorn-{port}.log"
    argv = [sys.executable, "-m", "app"]
    where = {"EXPLORER_HOST": "127.0.0.1", "EXPLORER_PORT": str(port)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=server_env(data_dir, **where, **env), stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_200(f"{base}/healthz", proc)
        except (RuntimeError, TimeoutError) as exc:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; server log:\n{tail}") from exc
        yield base
    finally:
        stop(proc)


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)
