"""run_program_isolated: same answers as in-process, and a runaway worker is killed and replaced."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.sandbox import (
    SandboxLimitExceeded,
    SandboxLimits,
    SandboxRefused,
    run_program,
    run_program_isolated,
)
from app.sandbox.isolation import KILL_MARGIN_SECONDS, configure_pool, shutdown_pool

# A program the interpreter cannot stop in time: one statement of three matmuls, 384 GFLOP of C
# (4 s on a core with AVX-512, where one matmul alone once finished inside max_seconds plus the
# kill margin), so the worker is killed. The allocation before it is kept small (0.1 s) so that
# the interpreter's own deadline check, between statements, does not catch it first.
RUNAWAY_PROGRAM = "a = torch.ones(4000, 4000, dtype=torch.float64)\nb = a @ a @ a @ a\n"
RUNAWAY_LIMITS = SandboxLimits(
    max_seconds=0.5, max_tensor_elements=30_000_000, max_total_bytes=1024**3
)


@pytest.fixture(scope="module", autouse=True)
def pool() -> Iterator[None]:
    configure_pool(size=1).warm(1)
    yield
    shutdown_pool()


def test_isolated_run_gives_the_same_steps_as_in_process() -> None:
    code = "a = torch.ones(2, 2)\nb = a.view(4, -1)\nprint(b.shape)\n"
    assert run_program_isolated(code) == run_program(code)


def test_isolated_graph_gives_the_contract_answer() -> None:
    code = "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\n"
    graph = run_program_isolated(code, kind="graph", backward="z")
    assert graph["variables"]["x"]["grad"] == 6.0


def test_refusals_and_limits_come_back_as_the_same_exceptions() -> None:
    with pytest.raises(SandboxRefused) as refused:
        run_program_isolated("x = 1\neval('1')\n")
    assert refused.value.line == 2 and "eval" in refused.value.reason
    with pytest.raises(SandboxLimitExceeded) as limit:
        run_program_isolated("x = torch.ones(100000, 100000)")
    assert limit.value.limit == "max_tensor_elements"


def test_a_runaway_worker_is_killed_past_max_seconds_and_the_next_call_works() -> None:
    # Float64 matmuls of 384 GFLOP in one statement (seconds even on one fast core): the
    # interpreter cannot stop a library call, the worker process is killed instead.
    limits, code = RUNAWAY_LIMITS, RUNAWAY_PROGRAM
    started = time.monotonic()
    with pytest.raises(SandboxLimitExceeded) as info:
        run_program_isolated(code, limits)
    elapsed = time.monotonic() - started
    assert elapsed < limits.max_seconds + KILL_MARGIN_SECONDS + 1.0
    assert info.value.limit == "max_seconds"
    assert "max_seconds" in str(info.value)
    result = run_program_isolated("x = torch.ones(3)\n")
    assert result["error"] is None and result["steps"][0]["variables"]["x"]["shape"] == [3]


@pytest.mark.parametrize("steps", ["full", "changes"])
def test_an_encoded_answer_is_the_json_of_the_same_answer_made_in_the_worker(steps: str) -> None:
    import json

    code = "a = torch.ones(2)\nb = a * 2\ndel a\nprint('<b>', b)\n"
    body = run_program_isolated(code, SandboxLimits(), "run", None, steps, True)  # type: ignore[arg-type]
    assert isinstance(body, bytes) and body.isascii() and b"<" not in body  # safe in a page
    answer = run_program(code, steps=steps)  # type: ignore[arg-type]
    assert json.loads(body) == answer
    graph = run_program_isolated(code, SandboxLimits(), "graph", "b", "full", True)
    assert json.loads(graph)["notices"] == []


def test_a_request_that_finds_only_a_worker_being_replaced_is_refused_within_the_wait() -> None:
    """After a runaway program's worker is killed, its replacement may take seconds to start: a
    request then is refused (429) within the pool's wait, never held in line for the start."""
    from app.sandbox.isolation import SandboxBusy

    pool = configure_pool(size=1, wait_seconds=0.3)
    pool.warm(1)
    with pytest.raises(SandboxLimitExceeded):
        run_program_isolated(RUNAWAY_PROGRAM, RUNAWAY_LIMITS)
    started = time.monotonic()
    try:  # refused within the wait, or (a replacement forked that fast) served
        assert run_program_isolated("x = 1\n")["error"] is None
    except SandboxBusy as busy:
        assert "busy" in str(busy)
    assert time.monotonic() - started < 0.3 + 1.0
    # The replacement comes up in the background, and then programs run again.
    deadline = time.monotonic() + 120
    while True:
        try:
            assert run_program_isolated("x = 1\n")["error"] is None
            break
        except SandboxBusy:
            assert time.monotonic() < deadline, "the replacement worker never came up"
            time.sleep(0.2)
    configure_pool(size=1).warm(1)  # the module's pool, as the fixture made it


def test_a_worker_past_its_share_of_programs_serves_on_until_its_replacement_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers are replaced after MAX_TASKS_PER_WORKER programs; the old one serves until its
    replacement has started, so the pool is never a worker short (no 429 for it)."""
    from app.workers import pool as pool_module

    monkeypatch.setattr(pool_module, "MAX_TASKS_PER_WORKER", 3)
    pool = configure_pool(size=1, wait_seconds=0.3)
    pool.warm(1)
    first = pool._idle[0].process.pid
    for _ in range(10):  # far past 3, quicker than a worker starts: all on the first worker
        assert run_program_isolated("x = 1\n")["error"] is None
    deadline = time.monotonic() + 120
    while pool._idle[0].process.pid == first:
        assert time.monotonic() < deadline, "the replacement never took over"
        time.sleep(0.1)
        assert run_program_isolated("x = 1\n")["error"] is None
    assert run_program_isolated("x = 2\n")["error"] is None
    configure_pool(size=1).warm(1)  # the module's pool, as the fixture made it
