"""A load test on loopback: simulated learners use a real server the way a class does.

``python -m bench.loadtest --learners 50 --duration 60`` starts the app under uvicorn (bench/
common.py ``serve``) on a fresh data dir, then runs that many learners at once, each with its own
``httpx.AsyncClient`` (its own connections, like a browser), for the given number of seconds.
Each learner loops: pick an action by weight, do it, think for a while (seeded random, 0.5-3 s
by default), as a class does with the lessons open:

- open the home page or a lesson page, with its static assets the first time only (a browser
  caches them: the URLs are fingerprinted and immutable);
- move a slider: a lesson's ``/partial`` (and now and then its ``/api/lessons/{slug}/view``)
  with changed query values;
- the small JSON APIs (softmax, an activation curve, the run list, limits, tasks);
- run the Tensors lesson's first program (``POST /api/tensors/run``);
- upload a real PNG (``/api/cnn/image``, ``/api/transforms/apply``) and a real small state_dict
  (``/api/checkpoints/inspect``);
- now and then launch a small training run (digits-cnn or transfer), follow it over SSE to its
  final status, then read it. A 429 (the run queue or the sandbox is full) is an intended answer:
  counted on its own, not as an error.

The report gives, per endpoint (grouped by route template, not raw URL): count, throughput, p50,
p95, p99, max and errors (a non-2xx other than an intended 429, or an exception/timeout), the
totals, and the server's memory (RSS of the server and every process under it: run workers and
sandbox workers), sampled from /proc every second: start, peak, end. It prints a table, writes
JSON (``bench/loadtest.json`` or ``--json PATH``) and exits 1 when the target is missed: p99 of
an interactive endpoint at or over ``--p99-ms`` (500), or any unexpected error.

``--class-deployment`` loads a class deployment instead (issue 15, ``app.deploy.ClassDeployment``,
what ``make class`` starts): ``--webs`` web processes (2) with ``EXPLORER_RUNNER=celery`` and
``--workers`` Celery workers (2) on a PostgreSQL database of its own (``explorer_load_<pid>``,
dropped after) and Redis database 13 as the broker (flushed before and after), on ports from
8750. Learner ``i`` uses web process ``i mod webs`` (as a browser stays on the host a balancer
gave it); runs train on the workers. Memory: the largest web process's RSS stands for "the
server", the PSS sums every web process and worker with whatever runs under them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from bench import attack
from bench.common import machine_info, serve

if TYPE_CHECKING:
    from app.deploy import ClassDeployment

DEFAULT_JSON = Path(__file__).resolve().parent / "loadtest.json"
# Idle connections are let go before the server's keep-alive (keep_alive_seconds, 5 s) closes
# them, as browsers do: a reused connection closed under a request is the client's race.
KEEP_ALIVE = httpx.Limits(keepalive_expiry=2.0)
# The server process's RSS bound under --attack (docs/reliability.md): about 500 MB at rest.
MAX_SERVER_MB = 1024.0
FINAL = {"completed", "failed", "cancelled", "interrupted"}
# Training runs and their event streams take seconds by design: reported, not held to the target.
NOT_INTERACTIVE = {"POST /api/runs", "GET /api/runs/{id}/events"}
ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')
# --class-deployment: where its processes listen, its broker, and its database's name.
CLASS_PORT = 8750
CLASS_BROKER = "redis://127.0.0.1:6379/13"
CLASS_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/explorer_load_{pid}"

# The Tensors lesson's first program, as the page sends it.
TENSORS_CODE = (
    "e = torch.empty(2, 3)\n"
    "z = torch.zeros(2, 3)\n"
    "o = torch.ones(2, 3)\n"
    "torch.manual_seed(0)\n"
    "r = torch.rand(2, 3)\n"
    "t = torch.tensor([[1., 2., 3.], [4., 5., 6.]])\n"
)
PIPELINE = json.dumps(
    [
        {"name": "resize", "size": [64, 64]},
        {"name": "grayscale"},
        {"name": "rotate", "degrees": 30},
        {"name": "to_tensor"},
        {"name": "normalize", "mean": [0.5], "std": [0.5]},
    ]
)


# ---- what one learner does -----------------------------------------------------------------------


def slider(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A lesson and a query a learner's slider or select would send."""
    slug = rng.choice(
        [
            "softmax-cross-entropy",
            "activations",
            "cnn",
            "tracking",
            "transfer-learning",
            "autograd",
            "training-pipeline",
            "datasets",
            "tensors",
        ]
    )
    query: dict[str, Any]
    if slug == "softmax-cross-entropy":
        query = {"temperature": rng.choice([0.1, 0.5, 1, 2, 5]), "target": rng.randrange(3)}
    elif slug == "activations":
        query = {
            "name": rng.choice(["sigmoid", "tanh", "relu", "leaky_relu"]),
            "x_min": -rng.randint(1, 10),
            "x_max": rng.randint(1, 10),
            "negative_slope": rng.choice([0.01, 0.05, 0.1, 0.2]),
            "depth": rng.choice([5, 10, 20, 30]),
        }
    elif slug == "cnn":
        query = {
            "stride": rng.randint(1, 2),
            "padding": rng.randint(0, 1),
            "step": rng.randint(1, 4),
            "sample": rng.choice(["flower", "shapes", "checkerboard", "tiny"]),
            "image_kernel": rng.choice(["edge", "blur", "sharpen", "identity"]),
        }
    elif slug == "tracking":
        query = {"smoothing": rng.choice([0, 0.3, 0.6, 0.9]), "threshold": rng.random()}
    elif slug == "transfer-learning":
        query = {
            "focus": rng.choice(["feature-extract", "finetune", "scratch"]),
            "metric": rng.choice(["val_accuracy", "loss"]),
        }
    elif slug == "autograd":
        query = {"chain_x": rng.randint(-5, 5), "step": rng.randint(0, 4)}
    elif slug == "training-pipeline":
        query = {"epoch": rng.randint(0, 100), "learning_rate": rng.choice([0.1, 0.3, 0.5])}
    elif slug == "datasets":
        query = {"batch_size": rng.choice([2, 4, 8, 16]), "step": rng.randint(1, 10)}
    else:
        query = {"example": rng.choice(["create", "view", "numpy", "requires_grad"])}
    return slug, query


@dataclass
class Sample:
    endpoint: str
    status: int | None  # None: an exception (timeout, connection reset...)
    seconds: float
    error: str = ""
    at: float = 0.0  # when it started, in seconds since the load began


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    began: float = field(default_factory=time.perf_counter)

    def add(self, endpoint: str, status: int | None, seconds: float, error: str = "") -> None:
        at = time.perf_counter() - seconds - self.began
        self.samples.append(Sample(endpoint, status, seconds, error, at))


@dataclass
class Fixtures:
    """Real files a learner uploads: a sample PNG and a small state_dict."""

    png: bytes
    state_dict: bytes
    slugs: list[str]


class Learner:
    def __init__(
        self,
        index: int,
        base: str,
        fixtures: Fixtures,
        recorder: Recorder,
        deadline: float,
        rng: random.Random,
        think: tuple[float, float],
        runs: bool,
    ) -> None:
        self.index = index
        self.base = base
        self.fixtures = fixtures
        self.rec = recorder
        self.deadline = deadline
        self.rng = rng
        self.think = think
        self.runs = runs
        self.cached: set[str] = set()
        # Each learner is a client of its own to the per-client shares, as on a class's network
        # (the server trusts X-Forwarded-For from loopback only).
        self.client = httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(30.0),
            limits=KEEP_ALIVE,
            headers={"X-Forwarded-For": f"10.0.{index // 250}.{index % 250 + 1}"},
        )

    async def request(
        self, endpoint: str, method: str, url: str, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response | None:
        """One timed request, recorded under ``endpoint`` (the route template)."""
        started = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)
        except (httpx.HTTPError, OSError) as exc:
            self.rec.add(endpoint, None, time.perf_counter() - started, f"{type(exc).__name__}")
            return None
        elapsed = time.perf_counter() - started
        error = ""
        if response.status_code >= 400 and response.status_code not in (429, *ok):
            error = f"{response.status_code}: {response.text[:200]}"
        self.rec.add(endpoint, response.status_code, elapsed, error)
        return response

    # -- actions --

    async def page(self) -> None:
        slug = self.rng.choice(self.fixtures.slugs + [""])
        url = f"/lessons/{slug}" if slug else "/"
        response = await self.request("GET /lessons/{slug}" if slug else "GET /", "GET", url)
        if response is None or response.status_code != 200:
            return
        for asset in ASSET.findall(response.text):
            if asset not in self.cached:  # a browser keeps fingerprinted assets
                self.cached.add(asset)
                await self.request("GET /static/{path}", "GET", asset)

    async def partial(self) -> None:
        slug, query = slider(self.rng)
        if self.rng.random() < 0.2:
            await self.request(
                "GET /api/lessons/{slug}/view", "GET", f"/api/lessons/{slug}/view", params=query
            )
        else:
            await self.request(
                "GET /lessons/{slug}/partial", "GET", f"/lessons/{slug}/partial?{urlencode(query)}"
            )

    async def small_api(self) -> None:
        choice = self.rng.randrange(5)
        if choice == 0:
            logits = [round(self.rng.uniform(-3, 3), 2) for _ in range(self.rng.randint(2, 6))]
            body = {"logits": logits, "target": 0, "temperature": self.rng.choice([0.5, 1, 2])}
            await self.request("POST /api/softmax", "POST", "/api/softmax", json=body)
        elif choice == 1:
            name = self.rng.choice(["sigmoid", "tanh", "relu", "leaky_relu"])
            await self.request(
                "GET /api/activations/{name}",
                "GET",
                f"/api/activations/{name}",
                params={"points": self.rng.choice([51, 201, 401])},
            )
        elif choice == 2:
            await self.request("GET /api/runs", "GET", "/api/runs")
        elif choice == 3:
            await self.request("GET /api/limits", "GET", "/api/limits")
        else:
            await self.request("GET /runs", "GET", "/runs")

    async def program(self) -> None:
        await self.request(
            "POST /api/tensors/run", "POST", "/api/tensors/run", json={"code": TENSORS_CODE}
        )

    async def upload(self) -> None:
        files = {"file": ("picture.png", self.fixtures.png, "image/png")}
        choice = self.rng.randrange(3)
        if choice == 0:
            data = {"kernel": self.rng.choice(["edge", "blur", "sharpen"]), "pool_size": 2}
            await self.request(
                "POST /api/cnn/image", "POST", "/api/cnn/image", files=files, data=data
            )
        elif choice == 1:
            await self.request(
                "POST /api/transforms/apply",
                "POST",
                "/api/transforms/apply",
                files=files,
                data={"pipeline": PIPELINE},
            )
        else:
            pth = {"file": ("model.pth", self.fixtures.state_dict, "application/octet-stream")}
            await self.request(
                "POST /api/checkpoints/inspect", "POST", "/api/checkpoints/inspect", files=pth
            )

    async def training_run(self) -> None:
        if self.rng.random() < 0.7:
            body: dict[str, Any] = {
                "task": "digits-cnn",
                "config": {"epochs": self.rng.randint(2, 5), "seed": self.rng.randrange(1000)},
            }
        else:
            body = {
                "task": "transfer",
                "config": {
                    "mode": self.rng.choice(["feature-extract", "finetune", "scratch"]),
                    "epochs": self.rng.randint(2, 5),
                    "seed": self.rng.randrange(1000),
                },
            }
        response = await self.request("POST /api/runs", "POST", "/api/runs", json=body)
        if response is None or response.status_code != 202:
            return
        run_id = response.json()["id"]
        await self.request("GET /api/runs/{id}", "GET", f"/api/runs/{run_id}")
        await self.follow(run_id)
        await self.request("GET /api/runs/{id}", "GET", f"/api/runs/{run_id}")
        if self.rng.random() < 0.5:
            await self.request("GET /runs/{id}", "GET", f"/runs/{run_id}")

    async def follow(self, run_id: str) -> None:
        """Read the run's event stream to its final status, or stop at the deadline (a learner
        who closes the tab: the server must let go of the stream)."""
        endpoint = "GET /api/runs/{id}/events"
        started = time.perf_counter()
        status = ""
        left = max(1.0, self.deadline - time.monotonic())
        try:
            async with asyncio.timeout(left):
                async with self.client.stream(
                    "GET", f"/api/runs/{run_id}/events", timeout=httpx.Timeout(30.0, read=None)
                ) as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data: ") and '"status"' in line:
                            status = json.loads(line[6:]).get("status", "")
            code: int | None = stream.status_code
            error = (
                ""
                if status == "completed"
                else f"the run ended {status!r}"
                if status in FINAL
                else f"stream ended without a final status ({status!r})"
            )
        except TimeoutError:
            return  # the deadline came first: not an error, and not a finished stream either
        except (httpx.HTTPError, OSError) as exc:
            code, error = None, type(exc).__name__
        self.rec.add(endpoint, code, time.perf_counter() - started, error)

    ACTIONS: tuple[tuple[str, float], ...] = (
        ("page", 15),
        ("partial", 40),
        ("small_api", 15),
        ("program", 10),
        ("upload", 10),
        ("training_run", 3),
    )

    async def live(self) -> None:
        names = [name for name, _ in self.ACTIONS if self.runs or name != "training_run"]
        weights = [w for name, w in self.ACTIONS if name in names]
        # Learners arrive over the first few seconds, and the first thing they do is open a page.
        await asyncio.sleep(self.rng.uniform(0, self.think[1]))
        action: Callable[[], Awaitable[None]] = self.page
        try:
            while time.monotonic() < self.deadline:
                await action()
                await asyncio.sleep(self.rng.uniform(*self.think))
                action = getattr(self, self.rng.choices(names, weights)[0])
        finally:
            await self.client.aclose()


# ---- the server's memory -------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree[ppid].append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree = _children()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(tree.get(current, []))
    return out


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: forked workers share the server's pages, which RSS counts again in
    every process; PSS splits each shared page between its sharers, so the sum is honest."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def server_pid(port: int) -> int | None:
    """The server process this process started for ``port``: ``python -m app`` (bench/common.py
    ``serve``), which takes its port from EXPLORER_PORT."""
    wanted = f"EXPLORER_PORT={port}".encode()
    for pid in _children().get(os.getpid(), []):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if argv[1:3] == [b"-m", b"app"] and wanted in environ:
                return pid
    return None


@dataclass
class Target:
    """What the learners load: the web processes' URLs, and the processes whose memory is watched
    (``webs``: the servers; ``others``: a class deployment's workers). None watched: ``--base``."""

    urls: list[str]
    webs: list[int] = field(default_factory=list)
    others: list[int] = field(default_factory=list)


@dataclass
class Memory:
    # (seconds, server RSS, PSS of the server and its workers, processes)
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)

    load: list[float] = field(default_factory=list)  # the machine's 1-minute load average

    def sample(self, target: Target, t: float) -> None:
        """The largest RSS among the web processes (the server, when alone), and the PSS of them,
        the workers and everything under them."""
        self.load.append(os.getloadavg()[0])
        pids = sorted({p for root in target.webs + target.others for p in descendants(root)})
        server = max(rss_bytes(pid) for pid in target.webs)
        self.samples.append((t, server, sum(pss_bytes(p) for p in pids), len(pids)))

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        server = [s[1] for s in self.samples]
        total = [s[2] for s in self.samples]
        return {
            "server_rss_start": server[0],
            "server_rss_peak": max(server),
            "server_rss_end": server[-1],
            "total_pss_start": total[0],
            "total_pss_peak": max(total),
            "total_pss_end": total[-1],
            "processes_peak": max(s[3] for s in self.samples),
            "samples": len(self.samples),
            # Everything on the machine, this driver included: above the CPU count, requests
            # waited for a core, whoever's they were.
            "load_avg_max": max(self.load),
            "load_avg_mean": statistics.fmean(self.load),
        }


async def watch_memory(target: Target, memory: Memory, stop: asyncio.Event) -> None:
    if not target.webs:
        return
    started = time.monotonic()
    while True:
        memory.sample(target, time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
            memory.sample(target, time.monotonic() - started)
            return


# ---- the report ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(q * len(ordered))) - 1)]


def summarise(
    samples: list[Sample],
    seconds: float,
    memory: dict[str, Any],
    p99_ms: float,
    config: dict[str, Any],
) -> dict[str, Any]:
    by: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by[sample.endpoint].append(sample)
    endpoints: list[dict[str, Any]] = []
    for name in sorted(by):
        group = by[name]
        times = [s.seconds for s in group]
        failed = [s for s in group if s.error]
        endpoints.append(
            {
                "endpoint": name,
                "interactive": name not in NOT_INTERACTIVE,
                "count": len(group),
                "per_s": len(group) / seconds,
                "p50_ms": 1e3 * statistics.median(times),
                "p95_ms": 1e3 * percentile(times, 0.95),
                "p99_ms": 1e3 * percentile(times, 0.99),
                "max_ms": 1e3 * max(times),
                "too_many": sum(1 for s in group if s.status == 429),
                "errors": len(failed),
                "error_examples": sorted({s.error for s in failed})[:3],
            }
        )
    interactive = [s.seconds for s in samples if s.endpoint not in NOT_INTERACTIVE]
    errors: int = sum(e["errors"] for e in endpoints)
    # A stream recorded without an error followed its run to "completed".
    completed = sum(
        1 for s in by.get("GET /api/runs/{id}/events", []) if not s.error and s.status == 200
    )
    slow = [e["endpoint"] for e in endpoints if e["interactive"] and e["p99_ms"] >= p99_ms]
    return {
        "config": config,
        "seconds": seconds,
        "requests": len(samples),
        "per_s": len(samples) / seconds,
        "interactive_p50_ms": 1e3 * statistics.median(interactive) if interactive else None,
        "interactive_p99_ms": 1e3 * percentile(interactive, 0.99) if interactive else None,
        "too_many": sum(e["too_many"] for e in endpoints),
        "errors": errors,
        "runs_completed": completed,
        "runs_per_minute": 60.0 * completed / seconds,
        "slow": slow,
        "passed": not slow and errors == 0,
        "memory": memory,
        "endpoints": endpoints,
        # Where the tail is: the slowest interactive requests and when they started.
        "slowest": [
            {"endpoint": s.endpoint, "at_s": round(s.at, 2), "ms": round(1e3 * s.seconds, 1)}
            for s in sorted(
                (s for s in samples if s.endpoint not in NOT_INTERACTIVE),
                key=lambda s: s.seconds,
                reverse=True,
            )[:20]
        ],
    }


def format_report(report: dict[str, Any]) -> str:
    header = ["endpoint", "n", "/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "429", "err"]
    rows = [
        [
            e["endpoint"] + ("" if e["interactive"] else " *"),
            str(e["count"]),
            f"{e['per_s']:.2f}",
            f"{e['p50_ms']:.1f}",
            f"{e['p95_ms']:.1f}",
            f"{e['p99_ms']:.1f}",
            f"{e['max_ms']:.1f}",
            str(e["too_many"]),
            str(e["errors"]),
        ]
        for e in report["endpoints"]
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), line(["-" * w for w in widths]), *map(line, rows)]
    cfg = report["config"]
    out.append("")
    out.append("* not interactive (training runs, event streams): the p99 target does not apply")
    deployed = cfg.get("class_deployment")
    where = (
        f" over {deployed['webs']} web processes, {deployed['workers']} Celery workers"
        if deployed
        else ""
    )
    out.append(
        f"{cfg['learners']} learners{where}, {report['seconds']:.0f} s: "
        f"{report['requests']} requests ({report['per_s']:.1f}/s); "
        f"interactive p50 {report['interactive_p50_ms']:.1f} ms, "
        f"p99 {report['interactive_p99_ms']:.1f} ms; 429s {report['too_many']}; "
        f"errors {report['errors']}"
    )
    if "runs_completed" in report:
        out.append(
            f"training runs followed to completion: {report['runs_completed']} "
            f"({report['runs_per_minute']:.1f} per minute)"
        )
    mem = report["memory"]
    if mem:
        mb = 1024 * 1024
        server = "largest web process" if deployed else "server"
        workers = "web processes, workers and their children" if deployed else "its workers"
        out.append(
            f"{server} RSS start {mem['server_rss_start'] / mb:.0f} MB, peak "
            f"{mem['server_rss_peak'] / mb:.0f} MB, end {mem['server_rss_end'] / mb:.0f} MB; "
            f"with {workers} ({mem['processes_peak']} processes at most), PSS start "
            f"{mem['total_pss_start'] / mb:.0f} MB, peak {mem['total_pss_peak'] / mb:.0f} MB, "
            f"end {mem['total_pss_end'] / mb:.0f} MB"
        )
        out.append(
            f"machine load average (1 min) during the run: mean {mem['load_avg_mean']:.1f}, "
            f"max {mem['load_avg_max']:.1f} on {os.cpu_count()} CPUs"
        )
    for e in report["endpoints"]:
        for example in e["error_examples"]:
            out.append(f"error on {e['endpoint']}: {example}")
    reasons = []
    hostile = report.get("attack")
    if hostile:
        out.append("")
        out.append("attack (status counts; slowest answer; largest answer):")
        for name, a in hostile["attacks"].items():
            counts = ", ".join(f"{k}: {v}" for k, v in a["statuses"].items())
            out.append(
                f"  {name}: {counts}; slowest {a['slowest_s']:.2f} s; "
                f"largest {a['largest_bytes'] / 1024:.0f} KB"
            )
        out.append(
            f"  half-open connections dropped after at most "
            f"{hostile.get('half_open_dropped_after_s_max')} s; streams opened "
            f"{hostile.get('streams_opened')}; bomb {hostile.get('bomb_bytes')} bytes"
        )
        out.append(
            f"honest learners' interactive p99 {report['interactive_p99_ms']:.1f} ms under attack; "
            f"server RSS peak {hostile['server_rss_peak_mb']:.0f} MB "
            f"(bound {hostile['config']['max_server_mb']:.0f} MB)"
        )
        if hostile["server_errors"]:
            reasons.append(f"{hostile['server_errors']} attack requests got a 5xx")
        if not hostile["memory_ok"]:
            reasons.append(
                f"server RSS peaked at {hostile['server_rss_peak_mb']:.0f} MB, over "
                f"{hostile['config']['max_server_mb']:.0f} MB"
            )
    verdict = "PASS" if report["passed"] else "FAIL"
    if report["slow"]:
        reasons.append(f"p99 >= {cfg['p99_ms']:.0f} ms on {', '.join(report['slow'])}")
    if report["errors"]:
        reasons.append(f"{report['errors']} unexpected errors")
    out.append(verdict + (": " + "; ".join(reasons) if reasons else ""))
    return "\n".join(out)


# ---- the whole run -------------------------------------------------------------------------------


def fixtures(base: str) -> Fixtures:
    """A sample PNG from the server itself, a small real state_dict, and the live lessons."""
    import torch
    from torch import nn

    with httpx.Client(base_url=base, timeout=60.0) as client:
        png = client.get("/api/images/samples/flower.png").raise_for_status().content
        lessons = client.get("/api/lessons").raise_for_status().json()
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10)
    )
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return Fixtures(png, buffer.getvalue(), [x["slug"] for x in lessons if x["live"]])


def warm(base: str) -> None:
    """What the first learner would otherwise wait for: the example runs behind the lessons
    (the server also warms them at start-up), the sandbox's first worker."""
    with httpx.Client(base_url=base, timeout=300.0) as client:
        for lesson in client.get("/api/lessons").json():
            if lesson["live"]:
                client.get(f"/lessons/{lesson['slug']}")
        client.post("/api/tensors/run", json={"code": TENSORS_CODE})


async def drive(target: Target, args: argparse.Namespace, fix: Fixtures) -> dict[str, Any]:
    recorder = Recorder()
    memory = Memory()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_memory(target, memory, stop))
    master = random.Random(args.seed)
    started = time.monotonic()
    deadline = started + args.duration
    learners = [
        Learner(
            i,
            target.urls[i % len(target.urls)],
            fix,
            recorder,
            deadline,
            random.Random(master.getrandbits(64)),
            (args.think_min, args.think_max),
            not args.no_runs,
        )
        for i in range(args.learners)
    ]
    honest = asyncio.gather(*(learner.live() for learner in learners))
    outcomes: dict[str, Any] | None = None
    if args.attack:
        outcomes, _ = await asyncio.gather(attack_process(target.urls[0], args), honest)
    else:
        await honest
    seconds = time.monotonic() - started
    stop.set()
    await watcher
    config = {
        "learners": args.learners,
        "duration": args.duration,
        "seed": args.seed,
        "think_s": [args.think_min, args.think_max],
        "runs": not args.no_runs,
        "p99_ms": args.p99_ms,
        "server_env": dict(args.env),
        "attack": args.attack,
        "class_deployment": (
            {"webs": args.webs, "workers": args.workers, "urls": target.urls}
            if args.class_deployment
            else None
        ),
    }
    report = summarise(recorder.samples, seconds, memory.summary(), args.p99_ms, config)
    if outcomes is not None:
        judge_attack(report, outcomes, args)
    return report


async def attack_process(base: str, args: argparse.Namespace) -> dict[str, Any]:
    """The attackers (bench/attack.py) in a process of their own, at low CPU priority: on a
    class's network their work is done on their own machines, while here they share the server's
    cores; the server answers their requests at its full priority all the same."""
    with tempfile.TemporaryDirectory(prefix="explorer-attack-") as tmp:
        out = Path(tmp) / "attack.json"
        argv = ["nice", "-n", "10", sys.executable, "-m", "bench.attack", base]
        argv += [str(args.duration), str(out)]
        argv += ["--attackers", str(args.attackers), "--streams", str(args.streams)]
        argv += ["--half-open", str(args.half_open)]
        for name in args.only:
            argv += ["--only", name]
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=Path(__file__).resolve().parent.parent
        )
        if await process.wait() != 0:
            raise RuntimeError(f"the attack process failed with exit code {process.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def judge_attack(
    report: dict[str, Any], outcomes: dict[str, Any], args: argparse.Namespace
) -> None:
    """The attack's verdict joins the honest learners': no 5xx for any attack, and the server
    process within its memory bound."""
    summary = dict(outcomes)
    summary["config"] = {
        "attackers": args.attackers,
        "streams": args.streams,
        "half_open": args.half_open,
        "max_server_mb": args.max_server_mb,
    }
    peak = report["memory"].get("server_rss_peak", 0) / 1024**2
    summary["server_rss_peak_mb"] = round(peak, 1)
    summary["memory_ok"] = peak <= args.max_server_mb
    report["attack"] = summary
    report["passed"] = report["passed"] and summary["server_errors"] == 0 and summary["memory_ok"]


def git_state() -> dict[str, Any]:
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*argv: str) -> str:
        try:
            done = subprocess.run(
                ["git", *argv], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    changed = git("status", "--porcelain").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "changed_files": len(changed)}


@contextlib.contextmanager
def server(args: argparse.Namespace) -> Iterator[Target]:
    if args.base:
        yield Target([args.base.rstrip("/")])
        return
    if args.class_deployment:
        with class_deployment(args) as deployment:
            yield Target(
                deployment.urls,
                [p.pid for p in deployment.web],
                [p.pid for p in deployment.worker],
            )
        return
    with tempfile.TemporaryDirectory(prefix="explorer-load-") as tmp:
        data = Path(tmp) / "data"
        with serve(data, **dict(args.env)) as base:
            pid = server_pid(int(base.rsplit(":", 1)[1]))
            yield Target([base], [pid] if pid is not None else [])


@contextlib.contextmanager
def class_deployment(args: argparse.Namespace) -> Iterator[ClassDeployment]:
    """``make class`` on a fresh database and broker, its settings plus ``--env``'s; every process
    stopped, the database dropped and the broker emptied after."""
    from app.deploy import ClassDeployment, drop_database, flush_broker

    database = CLASS_DATABASE.format(pid=os.getpid())
    with tempfile.TemporaryDirectory(prefix="explorer-load-class-") as tmp:
        flush_broker(CLASS_BROKER)
        deployment = ClassDeployment(
            database_url=database,
            broker_url=CLASS_BROKER,
            webs=args.webs,
            workers=args.workers,
            port=CLASS_PORT,
            data_dir=Path(tmp) / "data",
            env={"EXPLORER_LOG_LEVEL": "warning", **dict(args.env)},  # as serve() runs one
        )
        try:
            deployment.start()
            yield deployment
        finally:
            deployment.stop()
            drop_database(database)
            flush_broker(CLASS_BROKER)


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--env wants NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__)
    parser.add_argument("--learners", type=int, default=50, help="simulated learners at once")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--seed", type=int, default=0, help="seeds every learner's choices")
    parser.add_argument("--think-min", type=float, default=0.5, help="seconds between actions")
    parser.add_argument("--think-max", type=float, default=3.0)
    parser.add_argument("--p99-ms", type=float, default=500.0, help="target p99, interactive")
    parser.add_argument("--no-runs", action="store_true", help="learners launch no training runs")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the JSON goes")
    parser.add_argument("--base", help="load a server already running here instead")
    parser.add_argument(
        "--env",
        type=env_pair,
        action="append",
        default=[],
        help="EXPLORER_NAME=value for the server this starts (repeatable)",
    )
    deployed = parser.add_argument_group(
        "a class deployment (issue 15: web processes, Celery workers, Redis, PostgreSQL)"
    )
    deployed.add_argument(
        "--class-deployment",
        action="store_true",
        help="load `make class` (app.deploy) instead of one server; learners spread over its webs",
    )
    deployed.add_argument("--webs", type=int, default=2, help="its web processes (default 2)")
    deployed.add_argument("--workers", type=int, default=2, help="its Celery workers (default 2)")
    hostile = parser.add_argument_group(
        "attack mix (issue 11's worst requests beside the learners)"
    )
    hostile.add_argument(
        "--attack", action="store_true", help="add the attackers (bench/attack.py)"
    )
    hostile.add_argument("--attackers", type=int, default=8, help="hostile clients looping")
    hostile.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[*attack.Attacker.ATTACKS, "streams", "half_open"],
        help="run only this attack (repeatable; default: all)",
    )
    hostile.add_argument("--streams", type=int, default=200, help="event streams held open")
    hostile.add_argument("--half-open", type=int, default=100, help="half-sent requests held")
    hostile.add_argument(
        "--max-server-mb",
        type=float,
        default=MAX_SERVER_MB,
        help="fail when the server process's RSS passes this (MB)",
    )
    args = parser.parse_args(argv)
    if args.learners < 1 or args.duration <= 0 or not 0 <= args.think_min <= args.think_max:
        parser.error("need --learners >= 1, --duration > 0 and 0 <= --think-min <= --think-max")
    if args.class_deployment and args.base:
        parser.error("--class-deployment starts its own processes: leave out --base")
    if args.webs < 1 or args.workers < 1:
        parser.error("need --webs >= 1 and --workers >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with server(args) as target:
        for base in target.urls:
            warm(base)
        fix = fixtures(target.urls[0])
        report = asyncio.run(drive(target, args, fix))
    report["machine"] = machine_info()
    report["git"] = git_state()
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"JSON: {args.json}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
