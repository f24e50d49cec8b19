"""The load test's attack mix (`python -m bench.loadtest --attack`): issue 11's worst requests.

Attackers run beside the honest learners, each from an address of its own (``X-Forwarded-For``,
which the server trusts from loopback only), so the per-client shares apply to them as they would
to a class's network. Each attacker loops over the requests that once cost the server gigabytes
or stalled it for everyone:

- ``big_answer``: a 2 KB program whose every recorded step repeated 240 strings of 2,000
  characters (929 MB of JSON before the answer budget);
- ``big_page``: the same program in ``GET /lessons/tensors?code=…`` (929 MB of HTML);
- ``backward_stack``: 50 × ``torch.stack([x] * 1000)`` drawn with ``backward`` (81 MB);
- ``bomb_cnn`` and ``bomb_transforms``: a lossless WebP of a few hundred bytes declaring a
  picture at the pixel limit, filtered, and put through twelve transforms;
- ``slow_programs``: a burst of programs that each run for seconds;
- ``tensor_sizes``: sizes given as tensors (``torch.linspace(0, 1, torch.tensor(4e8))``,
  ``torch.randperm(torch.tensor(2e8))``);
- ``overflow_after``: ``GET /api/runs/{id}/events?after=`` with thirty nines.

Two more run for the whole test: ``streams`` holds event streams open on one long run (up to
``--streams``), dropping and reopening some as leaving tabs do; ``half_open`` keeps connections
that send half a request's headers, or half its body, and counts how soon the server drops them.

An attack request may be refused (4xx, 429) or answered; it must never be a 5xx or hang. What the
honest learners see is the figure that matters: their interactive p99, reported beside the
server's peak memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

BIG_ANSWER = (
    "s = 'x' * 2000\n"
    + "".join(f"v{i} = s\n" for i in range(240))
    + "for i in range(880):\n    pass\n"
)
# Without a generator expression (the sandbox of this issue has none): one sum per line.
BACKWARD_STACK = "x = torch.ones(10, requires_grad=True)\nloss = x.sum() * 0\n" + "".join(
    f"y{i} = torch.stack([x] * 1000)\nloss = loss + y{i}.sum()\n" for i in range(50)
)
SLOW_PROGRAM = "x = torch.ones(300, 300)\nfor i in range(9000):\n    y = x @ x\n"
TENSOR_SIZES = (
    "a = torch.linspace(0, 1, torch.tensor(400000000))\n",
    "b = torch.randperm(torch.tensor(200000000))\n",
    "c = torch.eye(torch.tensor(100000))\n",
    "d = np.linspace(0, 1, np.array([10**9])[0])\n",
)
TWELVE_STAGES = json.dumps(
    [
        {"name": "rotate", "degrees": 10},
        {"name": "horizontal_flip"},
        {"name": "rotate", "degrees": 20},
        {"name": "horizontal_flip"},
        {"name": "rotate", "degrees": 30},
        {"name": "grayscale"},
        {"name": "rotate", "degrees": 40},
        {"name": "horizontal_flip"},
        {"name": "to_tensor"},
        {"name": "normalize", "mean": [0.5], "std": [0.5]},
        {"name": "multiply", "factor": 2},
        {"name": "normalize", "mean": [0.0], "std": [2.0]},
    ]
)
NINES = "9" * 30
KEEP_ALIVE = httpx.Limits(keepalive_expiry=2.0)  # as the learners' (bench/loadtest.py)


def bomb_webp(max_pixels: int) -> bytes:
    """A lossless WebP of one colour at (just under) the pixel limit: a few hundred bytes."""
    from PIL import Image

    side = min(math.isqrt(max_pixels), 16_383)  # WebP's largest side
    out = io.BytesIO()
    Image.new("RGB", (side, side), (120, 40, 200)).save(out, "WEBP", lossless=True)
    return out.getvalue()


@dataclass
class Outcomes:
    """What each attack got back: status counts, exceptions, the slowest answer, the largest."""

    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    slowest_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    largest_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, attack: str, status: int | str, seconds: float, size: int = 0) -> None:
        self.statuses[attack][str(status)] += 1
        self.slowest_s[attack] = max(self.slowest_s[attack], seconds)
        self.largest_bytes[attack] = max(self.largest_bytes[attack], size)

    def server_errors(self) -> int:
        return sum(n for c in self.statuses.values() for s, n in c.items() if s.startswith("5"))

    def summary(self) -> dict[str, Any]:
        return {
            "attacks": {
                name: {
                    "statuses": dict(sorted(counts.items())),
                    "slowest_s": round(self.slowest_s[name], 3),
                    "largest_bytes": self.largest_bytes[name],
                }
                for name, counts in sorted(self.statuses.items())
            },
            "server_errors": self.server_errors(),
            **self.notes,
        }


def address(group: int, index: int) -> str:
    """A made-up client address: group 66 for attackers, 67 for streams, 68 for half-open."""
    return f"10.{group}.{index // 250}.{index % 250 + 1}"


class Attacker:
    """One hostile client looping over the attacks until the deadline."""

    ATTACKS = (
        "big_answer",
        "big_page",
        "backward_stack",
        "bomb_cnn",
        "bomb_transforms",
        "slow_programs",
        "tensor_sizes",
        "overflow_after",
    )

    def __init__(
        self,
        index: int,
        base: str,
        bomb: bytes,
        run_id: str,
        out: Outcomes,
        deadline: float,
        attacks: tuple[str, ...] = ATTACKS,
    ) -> None:
        self.index = index
        self.attacks = attacks
        self.bomb = bomb
        self.run_id = run_id
        self.out = out
        self.deadline = deadline
        self.client = httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(60.0),
            limits=KEEP_ALIVE,
            headers={"X-Forwarded-For": address(66, index)},
        )

    async def send(self, attack: str, method: str, url: str, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)
        except (httpx.HTTPError, OSError) as exc:
            self.out.add(attack, type(exc).__name__, time.perf_counter() - started)
            return
        elapsed = time.perf_counter() - started
        self.out.add(attack, response.status_code, elapsed, len(response.content))

    async def big_answer(self) -> None:
        await self.send("big_answer", "POST", "/api/tensors/run", json={"code": BIG_ANSWER})

    async def big_page(self) -> None:
        await self.send("big_page", "GET", "/lessons/tensors?" + urlencode({"code": BIG_ANSWER}))

    async def backward_stack(self) -> None:
        body = {"code": BACKWARD_STACK, "backward": "loss"}
        await self.send("backward_stack", "POST", "/api/autograd/graph", json=body)

    async def bomb_cnn(self) -> None:
        files = {"file": ("bomb.webp", self.bomb, "image/webp")}
        await self.send("bomb_cnn", "POST", "/api/cnn/image", files=files, data={"kernel": "edge"})

    async def bomb_transforms(self) -> None:
        files = {"file": ("bomb.webp", self.bomb, "image/webp")}
        data = {"pipeline": TWELVE_STAGES}
        await self.send("bomb_transforms", "POST", "/api/transforms/apply", files=files, data=data)

    async def slow_programs(self) -> None:
        body = {"code": SLOW_PROGRAM}
        await asyncio.gather(
            *(self.send("slow_programs", "POST", "/api/tensors/run", json=body) for _ in range(4))
        )

    async def tensor_sizes(self) -> None:
        for code in TENSOR_SIZES:
            await self.send("tensor_sizes", "POST", "/api/tensors/run", json={"code": code})

    async def overflow_after(self) -> None:
        url = f"/api/runs/{self.run_id}/events?after={NINES}"
        await self.send("overflow_after", "GET", url)
        headers = {"Last-Event-ID": NINES}
        await self.send("overflow_after", "GET", f"/api/runs/{self.run_id}/events", headers=headers)

    async def live(self) -> None:
        turn = self.index
        try:
            while time.monotonic() < self.deadline:
                attack = self.attacks[turn % len(self.attacks)]
                turn += 1
                await getattr(self, attack)()
                await asyncio.sleep(0.2)
        finally:
            await self.client.aclose()


async def hold_streams(base: str, run_id: str, count: int, out: Outcomes, deadline: float) -> None:
    """Keep up to ``count`` event streams open on one run, from many addresses; a tenth of them
    drop every 10 s (a closed tab) and reconnect from the start; a refused one asks again after
    a second, ignoring Retry-After."""
    opened = Counter[str]()

    async def one(index: int) -> None:
        headers = {"X-Forwarded-For": address(67, index)}
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=KEEP_ALIVE) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                hold = 10.0 if index % 10 == 0 else deadline - time.monotonic()
                try:
                    async with asyncio.timeout(max(0.1, hold)):
                        async with client.stream(
                            "GET",
                            f"/api/runs/{run_id}/events",
                            timeout=httpx.Timeout(30.0, read=None),
                        ) as stream:
                            opened[str(stream.status_code)] += 1
                            out.add("streams", stream.status_code, time.perf_counter() - started)
                            if stream.status_code != 200:
                                await asyncio.sleep(1.0)
                                continue
                            async for _ in stream.aiter_raw():
                                pass
                except TimeoutError:
                    continue  # dropped on purpose
                except (httpx.HTTPError, OSError) as exc:
                    out.add("streams", type(exc).__name__, time.perf_counter() - started)
                    await asyncio.sleep(1.0)

    await asyncio.gather(*(one(i) for i in range(count)))
    out.notes["streams_opened"] = dict(opened)


async def hold_half_open(host: str, port: int, count: int, out: Outcomes, deadline: float) -> None:
    """Connections that send half a request and stall: half the headers, or the headers and
    half the body. Each is timed until the server drops it."""
    dropped_after: list[float] = []

    async def one(index: int) -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                out.add("half_open", type(exc).__name__, 0.0)
                await asyncio.sleep(1.0)
                continue
            if index % 2:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Stall: ")
            else:
                writer.write(
                    b"POST /api/softmax HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 1000\r\n\r\n{"logits": ['
                )
            try:
                await writer.drain()
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await reader.read()  # the answer (408) or nothing, then the close
                        dropped_after.append(time.monotonic() - started)
                        out.add("half_open", "dropped", time.monotonic() - started)
            except OSError:
                dropped_after.append(time.monotonic() - started)
                out.add("half_open", "reset", time.monotonic() - started)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    await asyncio.gather(*(one(i) for i in range(count)))
    out.notes["half_open_dropped_after_s_max"] = (
        round(max(dropped_after), 2) if dropped_after else None
    )


def long_run(base: str) -> str:
    """A digits run long enough to stream for the whole attack (about 18,000 steps)."""
    with httpx.Client(base_url=base, timeout=60.0) as client:
        body = {"task": "digits-cnn", "config": {"epochs": 50, "batch_size": 4}}
        response = client.post("/api/runs", json=body)
        response.raise_for_status()
        return str(response.json()["id"])


async def attack(
    base: str,
    attackers: int,
    streams: int,
    half_open: int,
    deadline: float,
    only: tuple[str, ...] = (),
) -> Outcomes:
    """Run every attack (or ``only`` those named) until ``deadline`` (time.monotonic())."""
    out = Outcomes()
    limits = httpx.get(base + "/api/limits", timeout=30).json()
    bomb = bomb_webp(int(limits["max_image_pixels"]))
    out.notes["bomb_bytes"] = len(bomb)
    run_id = await asyncio.to_thread(long_run, base)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    chosen = tuple(a for a in Attacker.ATTACKS if not only or a in only)
    tasks = []
    if chosen:
        tasks += [
            Attacker(i, base, bomb, run_id, out, deadline, chosen).live() for i in range(attackers)
        ]
    if not only or "streams" in only:
        tasks.append(hold_streams(base, run_id, streams, out, deadline))
    if not only or "half_open" in only:
        tasks.append(hold_half_open(host, int(port), half_open, out, deadline))
    try:
        await asyncio.gather(*tasks)
    finally:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                await client.post(f"/api/runs/{run_id}/cancel")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.attack BASE SECONDS OUT.json [options]``: the attack alone, as the load
    test runs it in a process of its own (so the attackers' own work does not delay the honest
    learners' measurements in the driver's event loop)."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m bench.attack", description=main.__doc__)
    parser.add_argument("base")
    parser.add_argument("seconds", type=float)
    parser.add_argument("out", type=Path)
    parser.add_argument("--attackers", type=int, default=8)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--half-open", type=int, default=100)
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.seconds
    out = asyncio.run(
        attack(args.base, args.attackers, args.streams, args.half_open, deadline, tuple(args.only))
    )
    args.out.write_text(json.dumps(out.summary(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
