"""The playground in Chromium: how long a learner waits for a 2,000-step program to be drawn, and
for each step after it, next to what the server itself spends on the same program.

The program is a loop of 666 iterations with two statements (each iteration records its header
and both statements) between an assignment and a print: 2,000 steps, exactly
``program_max_steps_recorded``, so nothing is cut. Four numbers:

- Run to the first step drawn, in the page: from a click on Run (``performance.mark`` just before
  it) to the ``playground:drawn`` mark the page's script sets once it has drawn the answer;
- step to step in the page: an ArrowRight keydown, the page's synchronous redraw and a forced
  layout, timed with ``performance.now()`` (a frame is let by between presses, as between a
  learner's presses), with the time to the next frame alongside;
- the server's time for the same program: ``POST /api/tensors/run`` (steps "changes") timed from
  Python against the same server, and ``run_program`` in this process, so the rows read as the
  browser's share, the HTTP and worker share and the interpreter's share.

The page's step count and the answers are checked first: the page must say "Step 1 of 2000" and
the server's answer must equal the in-process one step for step.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from app.config import Settings
from app.sandbox.interpreter import run_program
from app.web.code_url import encode_code
from app.web.routes.programs import sandbox_limits
from bench.common import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Context,
    Row,
    Timing,
    chromium_available,
    compare,
    serve,
)

GROUP = "playground, 2,000-step program (median of n; ratio = app / bare)"
STEPS = 2_000
PROGRAM = """total = 0
for i in range(666):
    total = total + i
    last = i * 2
print(total)
"""
TIMEOUT_MS = 120_000  # a cold server on a busy two-core machine

# Click Run and answer the seconds from the click to the page's "playground:drawn" mark, and to
# the frame after it (the drawing on screen).
RUN_AND_TIME = """async () => {
    const body = document.body;
    const runs = Number(body.dataset.runs || 0);
    const done = new Promise((resolve) => {
        const seen = new MutationObserver(() => {
            if (Number(body.dataset.runs || 0) > runs) {
                seen.disconnect();
                resolve();
            }
        });
        seen.observe(body, {attributes: true, attributeFilter: ["data-runs"]});
    });
    performance.clearMarks("playground:drawn");
    const clicked = performance.mark("bench:run").startTime;
    document.getElementById("run").click();
    await done;
    const drawn = performance.getEntriesByName("playground:drawn").pop().startTime;
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    return {drawn: (drawn - clicked) / 1000, frame: (performance.now() - clicked) / 1000,
            label: document.getElementById("step-label").textContent};
}"""

# Press ArrowRight `n` times: the seconds each redraw took (handler and layout), and to the frame.
STEP_AND_TIME = """async (n) => {
    const nextFrame = () => new Promise((resolve) => {
        requestAnimationFrame(() => setTimeout(resolve, 0));
    });
    const redraw = [];
    const frame = [];
    for (let i = 0; i < n; i++) {
        await nextFrame();
        const started = performance.now();
        const key = new KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true});
        document.body.dispatchEvent(key);
        document.getElementById("frames").getBoundingClientRect();  // the layout it needs
        redraw.push((performance.now() - started) / 1000);
        await nextFrame();
        frame.push((performance.now() - started) / 1000);
    }
    return {redraw, frame, label: document.getElementById("step-label").textContent};
}"""


def quantile(samples: list[float], q: float) -> float:
    """The sample at quantile ``q`` (nearest rank), as Timing.p90 picks its own."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@contextlib.contextmanager
def playground_page(base: str) -> Iterator[Any]:
    """The playground in Chromium with PROGRAM run once; page errors fail the benchmark."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.goto(f"{base}/playground?code={encode_code(PROGRAM)}")
            page.wait_for_selector("body[data-runs='1']", state="attached", timeout=TIMEOUT_MS)
            label = page.locator("#step-label").text_content()
            if label != f"Step 1 of {STEPS}":
                raise RuntimeError(f"the playground shows {label!r}, not Step 1 of {STEPS}")
            yield page
            if errors:
                raise RuntimeError(f"the playground reported errors: {errors}")
        finally:
            browser.close()


def run_in_page(page: Any) -> tuple[float, float]:
    """Seconds from a click on Run to the page's drawn mark, and to the frame after it."""
    sample = page.evaluate(RUN_AND_TIME)
    if sample["label"] != f"Step 1 of {STEPS}":
        raise RuntimeError(f"after Run the playground shows {sample['label']!r}")
    return sample["drawn"], sample["frame"]


def steps_in_page(page: Any, presses: int) -> tuple[list[float], list[float]]:
    """Seconds each of ``presses`` ArrowRight redraws took, and each to its next frame."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Home")
    steps = page.evaluate(STEP_AND_TIME, presses)
    if steps["label"] != f"Step {presses + 1} of {STEPS}":
        raise RuntimeError(f"after {presses} steps the playground shows {steps['label']!r}")
    return steps["redraw"], steps["frame"]


def run(ctx: Context) -> list[Row]:
    settings = Settings(data_dir=ctx.tmp / "playground-in-process")
    limits = sandbox_limits(settings)
    local = run_program(PROGRAM, limits, steps="changes")
    if len(local["steps"]) != STEPS or local["truncated"] or local["error"]:
        raise RuntimeError(f"the program recorded {len(local['steps'])} steps, not {STEPS}")

    def in_process() -> object:
        return run_program(PROGRAM, limits, steps="changes")

    browser = ctx.browser and chromium_available()
    rows: list[Row] = []
    with serve(ctx.tmp / "data-playground") as base, httpx.Client(timeout=60) as client:
        body = {"code": PROGRAM, "steps": "changes"}

        def post() -> httpx.Response:
            response = client.post(f"{base}/api/tensors/run", json=body)
            response.raise_for_status()
            return response

        answer = post().json()  # the first waits for a sandbox worker to start
        if answer["steps"] != local["steps"] or answer["stdout_after"] != local["stdout_after"]:
            raise RuntimeError("the server's answer differs from run_program's in this process")
        size = len(post().content)
        if not browser:
            server, local_t = compare(post, in_process, ctx.repeat(30), 2, ctx.budget(8.0))
            assert local_t is not None
            rows.append(server_row(server, local_t, size))
            return rows
        with playground_page(base) as page:
            # The page's Run, the POST and run_program in turns, so all three see the same
            # machine (the server's workers may still be starting in the first rounds).
            samples: list[tuple[float, float, float, float]] = []
            warmup, repeat = 3, 5 if ctx.quick else 15
            for _ in range(warmup + repeat):
                drawn_s, frame_s = run_in_page(page)
                samples.append((drawn_s, frame_s, timed(post), timed(in_process)))
            samples = samples[warmup:]
            redraw, to_frame = steps_in_page(page, 50 if ctx.quick else 300)
    drawn, frame, server, local_t = (Timing(tuple(column)) for column in zip(*samples, strict=True))
    rows.append(server_row(server, local_t, size))
    rows.append(
        Row.timed(
            GROUP,
            "browser: Run to the first step drawn",
            drawn,
            server,
            f"bare = the POST from Python; to the next frame {frame.median * 1e3:.0f} ms; "
            f"{drawn.median / local_t.median:.1f}x run_program in process",
            to_next_frame=frame.median,
            ratio_to_in_process=drawn.median / local_t.median,
        )
    )
    rows.append(
        Row(
            GROUP,
            "browser: step to step (ArrowRight, redraw + layout)",
            "s",
            statistics.median(redraw),
            app_p90=quantile(redraw, 0.9),
            notes=f"p95 {quantile(redraw, 0.95) * 1e3:.3g} ms; to the next frame: median "
            f"{statistics.median(to_frame) * 1e3:.3g} ms, "
            f"p95 {quantile(to_frame, 0.95) * 1e3:.3g} ms",
            n=len(redraw),
            extra={
                "p95": quantile(redraw, 0.95),
                "frame_median": statistics.median(to_frame),
                "frame_p95": quantile(to_frame, 0.95),
            },
        )
    )
    return rows


def server_row(server: Timing, local: Timing, size: int) -> Row:
    """POST /api/tensors/run from Python next to run_program in this process."""
    return Row.timed(
        GROUP,
        'POST /api/tensors/run from Python (steps "changes")',
        server,
        local,
        "bare = run_program in this process; server == in process, step for step",
        answer_bytes=size,
    )
