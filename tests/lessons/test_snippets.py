"""Every lesson's "try it yourself" snippet, run as a script in a fresh Python, prints the numbers
its page shows.

For each lesson of the registry: its snippet for the default params and for one other set is
written to a temporary folder and run with the project's Python; each printed line the table
below names must carry, number by number, the page's values (``LessonView.build``: the lesson's
``explore()`` result and figures), equal at the precision the line prints them.

Pages and scripts run on one torch thread, as the web process does (``Settings.torch_threads``):
float sums split over another number of threads differ in their last bits (about 1e-7 after a few
epochs of training), which no printed digit shows but which could, rarely, tip one across a
rounding boundary. One thread each also keeps two scripts at once from fighting over two cores.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from app.config import Settings
from app.jobs import transfer as transfer_task
from app.lessons import transfer_learning
from app.lessons.registry import LESSONS, SUBPAGES
from app.web.views import VIEWS

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180  # one snippet; the slowest (transfer: pretraining and three runs) takes ~5 s
WORKERS = 2  # snippets running at once, each in its own process

Page = Mapping[str, Any]  # LessonView.build's context: params, result, figures, snippet
Rows = list[list[float | None]]  # the numbers of each matching printed line; None: not compared


@dataclass(frozen=True)
class Printed:
    """The printed lines that start with ``line`` (or the line at that index), with the page's
    numbers each one must carry, in the order printed."""

    line: str | int
    rows: Callable[[Page], Rows]
    # Beyond the printed precision: for numbers float32 cannot give twice to that many digits.
    absolute: float = 0.0


@dataclass(frozen=True)
class Output:
    """Everything printed, compared as text: for a program whose output the page shows."""

    text: Callable[[Page], str]


@dataclass(frozen=True)
class Expect:
    slug: str
    other: dict[str, str]  # the non-default params, as the page's URL holds them
    lines: tuple[Printed | Output, ...]
    from_project: bool = False  # the snippet imports the app's own classes (shown as such)
    page: Callable[[str, Mapping[str, str], Settings], Page] | None = None  # None: the page


def flat(matrix: list[list[float]]) -> list[float]:
    return [v for row in matrix for v in row]


def program_output(result: Mapping[str, Any]) -> str:
    return "".join(s.get("stdout") or "" for s in result["steps"]) + result["stdout_after"]


def batch_rows(result: Mapping[str, Any]) -> Rows:
    epochs, per = len(result["epochs"]), result["batches_per_epoch"]
    features = len(result["feature_names"])
    return [
        [e + 1, epochs, i + 1, per, len(rows), features, len(rows), *rows]
        for e, epoch in enumerate(result["epochs"])
        for i, rows in enumerate(epoch)
    ]


def resume_gap(page: Page) -> Rows:
    """The page charts each resumed step's loss minus the unbroken run's; the snippet prints the
    largest gap over the epochs it resumes."""
    example, params = page["result"]["example"], page["params"]
    resume = example["resume"]
    done = resume["epoch"]
    compared = resume["with_vs_unbroken" if params.optimizer else "without_vs_unbroken"]
    last_step = (done + params.epochs) * resume["steps_per_epoch"]
    gaps = [abs(d) for s, d in zip(compared["steps"], compared["difference"], strict=True)]
    within = [g for s, g in zip(compared["steps"], gaps, strict=True) if s <= last_step]
    assert compared["steps"][-1] >= last_step, "the page's example resumes fewer epochs"
    return [[done + 1, done + params.epochs, max(within)]]


def tracking_rows(page: Page) -> Rows:
    result, scalars = page["result"], page["figures"]["scalars"]["data"]
    rows: Rows = []
    for i, (run, curve) in enumerate(zip(result["runs"], result["curves"], strict=True)):
        smoothed = scalars[2 * i + 1]["y"][-1]  # each run's raw line, then its smoothed one
        at = curve["at"]
        final = run["final"][result["metric"]]
        rate = run["config"]["learning_rate"]
        rows.append([rate, final, smoothed, result["cls"], result["threshold"]])
        rows[-1] += [at["precision"], at["recall"]]
    return rows


def transfer_page(slug: str, query: Mapping[str, str], settings: Settings) -> Page:
    """The page; for other examples or epochs than its example runs', the page once the learner
    has trained the three modes at those settings (its "Train" buttons), here in-process."""
    view = VIEWS[slug]
    page = view.build(query, settings)
    params = page["params"]
    defaults = transfer_learning.DEFAULTS
    if (params.examples, params.epochs) != (defaults.examples_per_class, defaults.epochs):
        runs = [
            transfer_learning.train_mode(mode, params.examples, params.epochs)
            for mode in transfer_task.MODES
        ]
        page = {**page, "result": transfer_learning.explore(params, runs, examples=False)}
    return page


def transfer_mode(mode: str) -> Printed:
    def rows(page: Page) -> Rows:
        result = page["result"]
        run = next(r for r in result["runs"] if r["mode"] == mode)
        return [[result["frozen"]["modes"][mode]["trainable"], run["final"], run["mean"]]]

    return Printed(f"{mode} ", rows)


def feature_map_maps(page: Page) -> Rows:
    result = page["result"]
    return [[result["layer"], *result["layers"][result["layer"] - 1]["output_shape"]]]


def feature_map_top(page: Page) -> Rows:
    result = page["result"]
    response = next(r for r in result["responses"] if r["channel"] == result["channel"])
    return [[result["channel"], *[top["label"] for top in response["top"]]]]


def last_stage(page: Page) -> Rows:
    stage = page["result"]["stages"][-1]
    return [[*stage["shape"], stage["min"], stage["max"]]]


EXPECTED: tuple[Expect, ...] = (
    Expect(
        "tensors",
        {"example": "numpy"},
        (Output(lambda page: program_output(page["result"])),),
    ),
    Expect(
        "autograd",
        {"learning_rate": "0.02", "epochs": "30"},
        (
            Printed("x.grad =", lambda page: [[page["result"]["leaf_grads"][0]["grad"]]]),
            Printed(
                "w = ",
                lambda page: [
                    [
                        page["result"]["descent"]["final_weight"],
                        page["result"]["descent"]["final_loss"],
                    ]
                ],
            ),
        ),
    ),
    Expect(
        "training-pipeline",
        {"epochs": "30", "learning_rate": "0.4", "seed": "9", "epoch": "30"},
        (
            Printed(
                "epoch {epoch}:",
                lambda page: [
                    [
                        page["result"]["epoch"],
                        page["result"]["current"]["loss"],
                        page["result"]["current"]["w"],
                        page["result"]["current"]["b"],
                    ]
                ],
            ),
        ),
    ),
    Expect(
        "datasets",
        {"batch_size": "32", "drop_last": "true", "num_workers": "2", "seed": "7"},
        (
            Printed(
                0,
                lambda page: [
                    [
                        page["result"]["size"],
                        *page["result"]["item"]["sample_shape"],
                        page["result"]["item"]["target"],
                    ]
                ],
            ),
            Printed("epoch ", lambda page: batch_rows(page["result"])),
        ),
    ),
    Expect(
        "transforms",
        {"p": "resize:32x32,to_tensor", "sample": "shapes"},
        (
            Printed("torch.Size", last_stage),
            Printed(
                1,
                lambda page: [
                    [len(page["result"]["dataset"]), page["result"]["dataset"][0]["target"]]
                ],
            ),
        ),
        from_project=True,
    ),
    Expect(
        "softmax-cross-entropy",
        {"logits": "0.5, 2.5, -1, 3", "target": "2", "temperature": "0.5"},
        (
            Printed(
                "tensor(",
                lambda page: [
                    [
                        *page["result"]["probabilities"],
                        page["result"]["loss"],
                        *page["result"]["gradient"],
                    ]
                ],
            ),
        ),
    ),
    Expect(
        "activations",
        {"name": "leaky_relu", "x_min": "-3", "x_max": "2", "negative_slope": "0.2"},
        (
            Printed(
                "tensor(",
                lambda page: [
                    [*page["result"]["curve"]["y"][:5], *page["result"]["curve"]["derivative"][:5]]
                ],
            ),
        ),
    ),
    Expect(
        "cnn",
        {"stride": "2", "padding": "1", "pool_size": "3", "pool_stride": "1"}
        | {"out_channels": "4", "layer_kernel": "2", "layer_padding": "1", "seed": "3"},
        (
            Printed(
                "tensor(",
                lambda page: [
                    flat(page["result"]["window"]["output"]),
                    *[flat(page["result"]["pooling"]["outputs"][k]) for k in ("max", "min", "avg")],
                ],
            ),
            Printed(
                "torch.Size",
                lambda page: [
                    [
                        *page["result"]["layer"]["weight_shape"],
                        1,
                        *page["result"]["layer"]["out_shape"],
                    ]
                ],
            ),
        ),
    ),
    Expect(
        "cnn-feature-maps",
        {"image": "3", "layer": "2", "channel": "5"},
        (
            Printed(
                "digit ",
                lambda page: [
                    [
                        page["result"]["input"]["label"],
                        *page["result"]["prediction"]["probabilities"],
                    ]
                ],
                # The page runs the one digit, the snippet every held-out digit at once: other
                # kernels, so a 1e-11 probability differs in its 5th digit (printed 1.0000e+00
                # and 2.3705e-11 in one tensor, to 4 decimals of the largest).
                absolute=5e-5,
            ),
            Printed("layer ", feature_map_maps),
            Printed("channel ", feature_map_top),
        ),
    ),
    Expect(
        "transfer-learning",
        {"examples": "5", "epochs": "3"},
        (
            Printed("source model", lambda page: [[page["result"]["source"]["accuracy"]]]),
            *(transfer_mode(mode) for mode in transfer_task.MODES),
        ),
        page=transfer_page,
    ),
    Expect(
        "tracking",
        {"smoothing": "0.9", "cls": "5", "threshold": "0.8", "metric": "val_loss"},
        (Printed("lr=", tracking_rows),),
    ),
    Expect(
        "saving-loading",
        {"epochs": "2", "optimizer": "false"},
        (
            Printed(
                "OrderedDict",
                lambda page: [
                    flat([r["shape"] for r in page["result"]["example"]["state_dict"]["rows"]])
                ],
            ),
            Printed(
                "held-out accuracy",
                lambda page: [
                    [
                        page["result"]["example"]["round_trip"]["accuracy"],
                        page["result"]["example"]["round_trip"]["identical"],
                        page["result"]["example"]["round_trip"]["n"],
                    ]
                ],
            ),
            Printed(
                "param ",
                lambda page: [
                    [b["param"], *b["shape"]]
                    for b in page["result"]["example"]["checkpoint"]["optimizer"]["buffers"]
                ],
            ),
            Printed("epochs ", resume_gap),
        ),
    ),
)

BY_SLUG = {expect.slug: expect for expect in EXPECTED}
CASES = [
    pytest.param(expect, query, id=f"{expect.slug}-{'default' if not query else 'other'}")
    for expect in EXPECTED
    for query in ({}, expect.other)
]


def test_the_table_names_every_lesson_of_the_registry() -> None:
    slugs = {lesson.slug for lesson in (*LESSONS, *SUBPAGES)}
    assert set(BY_SLUG) == slugs == set(VIEWS)


# -- the scripts, run in the background while the pages are computed ---------------------------


@dataclass
class Scripts:
    settings: Settings
    pool: ThreadPoolExecutor
    runs: dict[tuple[str, tuple[tuple[str, str], ...]], Future[str]] = field(default_factory=dict)

    def output(self, expect: Expect, query: Mapping[str, str]) -> str:
        return self.runs[(expect.slug, tuple(sorted(query.items())))].result()


def run_snippet(code: str, from_project: bool, threads: int) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if from_project:
        env["PYTHONPATH"] = str(ROOT)  # "run it from the project folder"
    with tempfile.TemporaryDirectory(prefix="snippet-") as folder:
        path = Path(folder) / "snippet.py"
        path.write_text(code)
        done = subprocess.run(
            [sys.executable, str(path)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=folder,
            env=env,
        )
    assert done.returncode == 0, (
        f"the snippet failed:\n{done.stderr[-3000:]}\n--- its code:\n{code}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scripts]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), warm_lessons=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.torch_threads)
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            state = Scripts(settings, pool)
            for expect in EXPECTED:
                view = VIEWS[expect.slug]
                for query in ({}, expect.other):
                    code = view.snippet(view.parse(query, settings))
                    key = (expect.slug, tuple(sorted(query.items())))
                    state.runs[key] = pool.submit(
                        run_snippet, code, expect.from_project, settings.torch_threads
                    )
            yield state
    finally:
        torch.set_num_threads(threads)


# -- reading what they print --------------------------------------------------------------------

NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)
NAME = re.compile(r"(?<!\d)[A-Za-z_]\w*")  # words, dtypes (torch.float32): no numbers of the page


def printed_lines(stdout: str) -> list[str]:
    """One entry per printed value: a tensor's repr goes on over indented lines."""
    lines: list[str] = []
    for text in stdout.splitlines():
        if lines and text.startswith(" "):
            lines[-1] += " " + text.strip()
        else:
            lines.append(text)
    return lines


def numbers(line: str) -> list[str]:
    """The numbers of a printed line as printed, without the ones in names and grad_fn=<...>."""
    bare = re.sub(r"<[^>]*>", " ", line)
    return NUMBER.findall(NAME.sub(" ", bare))


def same_at_printed_precision(printed: str, value: float, absolute: float = 0.0) -> bool:
    """``value`` printed to as many digits as ``printed`` has would read the same (or is within
    ``absolute`` of it)."""
    mantissa, _, exponent = printed.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    half_unit = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
    return math.isclose(float(printed), value, rel_tol=1e-12) or (
        abs(float(printed) - value) <= max(half_unit * (1 + 1e-9), absolute)
    )


def chosen(lines: list[str], which: str | int, page: Page) -> list[str]:
    if isinstance(which, int):
        return [lines[which]]
    prefix = which.format(**vars(page["params"]))
    return [line for line in lines if line.startswith(prefix)]


# -- the check ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expect", "query"), CASES)
def test_the_snippet_prints_the_numbers_its_page_shows(
    expect: Expect, query: dict[str, str], scripts: Scripts
) -> None:
    view = VIEWS[expect.slug]
    page = (expect.page or (lambda slug, q, s: view.build(q, s)))(
        expect.slug, query, scripts.settings
    )
    code = page["snippet"]
    if not expect.from_project:  # plain PyTorch: it runs pasted into any Python with torch
        assert not re.search(r"^\s*(from|import) app\b", code, re.MULTILINE), code
    stdout = scripts.output(expect, query)
    lines = printed_lines(stdout)
    for check in expect.lines:
        if isinstance(check, Output):
            assert stdout == check.text(page)
            continue
        picked = chosen(lines, check.line, page)
        rows = check.rows(page)
        assert len(picked) == len(rows), f"{check.line!r}: printed {picked}, the page has {rows}"
        for line, row in zip(picked, rows, strict=True):
            found = numbers(line)
            assert len(found) == len(row), f"{line!r} against the page's {row}"
            for text, value in zip(found, row, strict=True):
                if value is not None:
                    assert same_at_printed_precision(text, float(value), check.absolute), (
                        f"{line!r}: printed {text}, the page shows {value}"
                    )
