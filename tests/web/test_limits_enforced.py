"""Issue 7: every limit that ``GET /api/limits`` lists is enforced over HTTP, naming itself.

Three tables cover the limits between them, and a meta-test checks that together they list
exactly what ``/api/limits`` lists, so a limit added later without a test here fails:

- ``REFUSALS``: limits a request can pass. Each case lowers the limit where the default is too
  big to pass cheaply, sends the smallest request over it, and expects a 4xx whose ``detail``
  (or ``limit`` extra) names the setting (for the sandbox's ``program_*`` settings, the short
  name the sandbox uses: ``program_max_statements`` -> ``max_statements``); where cheap, a
  request just under the limit succeeds.
- ``BOUNDS``: limits that bound the answer rather than refuse the request (what a program's
  response records, how many runs are listed, a run's wall time): each case checks the bound.
- ``EXEMPT``: not request limits, with the reason and where they are covered.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.main import create_app
from tests.support import wait_for
from tests.web.limit_helpers import (  # the requests and checks every case uses
    Make,
    batches,
    convolve,
    curve,
    inspect,
    ok,
    picture,
    png,
    program,
    refused,
    sandbox_refuses,
    saved,
    softmax,
    square,
    transform,
    view,
)

# ---- limits a request can pass: 4xx naming the limit ------------------------------------------


def case_max_json_bytes(make: Make) -> None:
    c = make(max_json_bytes=2048)
    refused(softmax(c, [0.5] * 600), "max_json_bytes", 413)  # about 3 kB of JSON
    ok(softmax(c, [0.5] * 100))


def case_max_upload_bytes(make: Make) -> None:
    c = make(max_upload_bytes=4096)
    refused(picture(c, png(8, 8) + bytes(5000)), "max_upload_bytes", 413)
    ok(picture(c, png(8, 8)))


def case_max_image_pixels(make: Make) -> None:
    c = make(max_image_pixels=64)
    refused(picture(c, png(9, 8)), "max_image_pixels", 413)
    assert ok(picture(c, png(8, 8)))["input_shape"] == [3, 8, 8]


def case_max_logits(make: Make) -> None:
    c = make(max_logits=3)
    refused(softmax(c, [1.0, 2.0, 3.0, 4.0]), "max_logits")
    assert sum(ok(softmax(c, [1.0, 2.0, 3.0]))["probabilities"]) == pytest.approx(1.0)


def case_max_batch_rows(make: Make) -> None:
    c = make(max_batch_rows=2)
    refused(softmax(c, [[1.0, 2.0]] * 3), "max_batch_rows")
    ok(softmax(c, [[1.0, 2.0]] * 2))


def case_max_abs_logit(make: Make) -> None:
    c = make()
    refused(softmax(c, [2e6, 0.0]), "max_abs_logit")
    ok(softmax(c, [1e5, 0.0]))


def case_min_temperature(make: Make) -> None:
    c = make()
    refused(softmax(c, [1.0, 2.0], temperature=0.005), "min_temperature")
    ok(softmax(c, [1.0, 2.0], temperature=0.01))


def case_max_temperature(make: Make) -> None:
    c = make()
    refused(softmax(c, [1.0, 2.0], temperature=101.0), "max_temperature")
    ok(softmax(c, [1.0, 2.0], temperature=100.0))


def case_max_points(make: Make) -> None:
    c = make(max_points=11)
    refused(curve(c, points=12), "max_points")
    assert len(ok(curve(c, points=11))["x"]) == 11


def case_max_abs_x(make: Make) -> None:
    c = make()
    refused(curve(c, x_min=-1001, x_max=0), "max_abs_x")
    refused(curve(c, x_min=0, x_max=1001), "max_abs_x")
    ok(curve(c, x_min=-1000, x_max=1000, points=3))


def case_max_depth(make: Make) -> None:
    c = make(max_depth=3)
    vanishing = {"activation": "sigmoid", "width": 4}
    refused(c.post("/api/activations/vanishing", json={**vanishing, "depth": 4}), "max_depth")
    body = ok(c.post("/api/activations/vanishing", json={**vanishing, "depth": 3}))
    assert len(body["layers"]) == 3


def case_max_width(make: Make) -> None:
    c = make(max_width=4)
    vanishing = {"activation": "tanh", "depth": 2}
    refused(c.post("/api/activations/vanishing", json={**vanishing, "width": 5}), "max_width")
    ok(c.post("/api/activations/vanishing", json={**vanishing, "width": 4}))


def case_max_train_steps(make: Make) -> None:
    c = make(max_train_steps=3)
    refused(c.post("/api/activations/dead-relu", json={"steps": 4}), "max_train_steps")
    ok(c.post("/api/activations/dead-relu", json={"steps": 3}))


def case_max_matrix_side(make: Make) -> None:
    c = make()
    refused(convolve(c, square(13), [[1.0]]), "max_matrix_side")
    assert len(ok(convolve(c, square(12), [[1.0]]))["output"]) == 12


def case_max_kernel_size(make: Make) -> None:
    c = make(max_kernel_size=2)
    refused(convolve(c, square(4), square(3)), "max_kernel_size")
    assert ok(convolve(c, square(4), square(2)))["output_shape"] == [3, 3]


def case_max_conv_channels(make: Make) -> None:
    c = make(max_conv_channels=2)
    refused(convolve(c, [square(2)] * 3, [square(1)] * 3), "max_conv_channels")
    # Two channels of ones, a 1×1 kernel of ones per channel: each output is 1 + 1.
    assert ok(convolve(c, [square(2)] * 2, [square(1)] * 2))["output"] == square(2, 2.0)


def case_max_stride(make: Make) -> None:
    c = make(max_stride=1)
    refused(convolve(c, square(4), square(2), stride=2), "max_stride")
    ok(convolve(c, square(4), square(2), stride=1))


def case_max_padding(make: Make) -> None:
    c = make(max_padding=1)
    refused(convolve(c, square(3), square(2), padding=2), "max_padding")
    assert ok(convolve(c, square(3), square(2), padding=1))["output_shape"] == [4, 4]


def case_max_dilation(make: Make) -> None:
    c = make(max_dilation=1)
    refused(convolve(c, square(5), square(2), dilation=2), "max_dilation")
    ok(convolve(c, square(5), square(2), dilation=1))


def case_max_out_channels(make: Make) -> None:
    c = make(max_out_channels=2)
    refused(view(c, "cnn", out_channels=3), "max_out_channels")


def case_max_pool_size(make: Make) -> None:
    c = make(max_pool_size=2)
    pool = {"input": square(4), "kind": "max"}
    refused(c.post("/api/cnn/pool", json={**pool, "size": 3}), "max_pool_size")
    refused(c.post("/api/cnn/pool", json={**pool, "size": 2, "stride": 3}), "max_pool_size")
    assert ok(c.post("/api/cnn/pool", json={**pool, "size": 2}))["output_shape"] == [2, 2]


def case_max_pipeline_stages(make: Make) -> None:
    c = make(max_pipeline_stages=2)
    refused(transform(c, [{"name": "horizontal_flip"}] * 3), "max_pipeline_stages")
    assert len(ok(transform(c, [{"name": "horizontal_flip"}] * 2))["stages"]) >= 2


def case_max_resize_side(make: Make) -> None:
    c = make(max_resize_side=8)
    refused(transform(c, [{"name": "resize", "size": [9, 8]}]), "max_resize_side")
    # A whole-number size keeps the aspect ratio: checked against the picture's real shape.
    ok(transform(c, [{"name": "resize", "size": [8, 8]}]))


def case_max_multiply_factor(make: Make) -> None:
    c = make(max_multiply_factor=2.0)
    stages: list[dict[str, Any]] = [{"name": "to_tensor"}, {"name": "multiply", "factor": -2.5}]
    refused(transform(c, stages), "max_multiply_factor")
    ok(transform(c, [{"name": "to_tensor"}, {"name": "multiply", "factor": 2.0}]))


def case_autograd_max_epochs(make: Make) -> None:
    c = make(autograd_max_epochs=5)
    refused(view(c, "autograd", epochs=6), "autograd_max_epochs")


def case_autograd_max_learning_rate(make: Make) -> None:
    c = make()
    refused(view(c, "autograd", learning_rate=1.5), "autograd_max_learning_rate")


def case_autograd_max_abs_x(make: Make) -> None:
    c = make()
    refused(view(c, "autograd", chain_x=-101), "autograd_max_abs_x")


def case_max_dataset_size(make: Make) -> None:
    c = make(max_dataset_size=5)
    refused(batches(c, size=6, batch_size=2), "max_dataset_size")
    assert ok(batches(c, size=5, batch_size=2))["epochs"] == [[[0, 1], [2, 3], [4]]]


def case_max_batch_epochs(make: Make) -> None:
    c = make(max_batch_epochs=2)
    refused(batches(c, size=4, batch_size=2, epochs=3), "max_batch_epochs")
    assert len(ok(batches(c, size=4, batch_size=2, epochs=2))["epochs"]) == 2


def case_max_batches_listed(make: Make) -> None:
    c = make(max_batches_listed=4)
    refused(batches(c, size=5, batch_size=1), "max_batches_listed")  # 5 batches
    ok(batches(c, size=4, batch_size=1))


def case_max_num_workers(make: Make) -> None:
    c = make(max_num_workers=1)
    refused(view(c, "datasets", num_workers=2), "max_num_workers")


def case_runs_max_queue(make: Make) -> None:
    c = make(runs_max_concurrent=1, runs_max_queue=0)
    sleepy = {"task": "test-sleepy", "config": {"steps": 100_000}}
    first = c.post("/api/runs", json=sleepy)
    assert first.status_code == 202, first.text
    run_id = first.json()["id"]
    try:
        wait_for(lambda: c.get(f"/api/runs/{run_id}").json()["status"] == "running")
        body = refused(c.post("/api/runs", json=sleepy), "runs_max_queue", 429)
        assert body["limit"] == "runs_max_queue"
        assert len(c.get("/api/runs").json()["runs"]) == 1
    finally:
        c.post(f"/api/runs/{run_id}/cancel")


def case_runs_max_per_learner(make: Make) -> None:
    c = make(runs_max_concurrent=1, runs_max_per_learner=2)
    sleepy = {"task": "test-sleepy", "config": {"steps": 100_000}}
    ids = [c.post("/api/runs", json=sleepy).json()["id"] for _ in range(2)]
    try:
        body = refused(c.post("/api/runs", json=sleepy), "runs_max_per_learner", 429)
        assert body["limit"] == "runs_max_per_learner"
        c.cookies.clear()  # another learner: their share is their own
        other = c.post("/api/runs", json=sleepy)
        assert other.status_code == 202, other.text
        ids.append(other.json()["id"])
    finally:
        for run_id in ids:
            c.post(f"/api/runs/{run_id}/cancel")


def case_tracking_max_runs(make: Make) -> None:
    c = make(tracking_max_runs=2)
    refused(view(c, "tracking", runs="a,b,c"), "tracking_max_runs")


def case_max_checkpoint_bytes(make: Make) -> None:
    c = make(max_checkpoint_bytes=4096)
    big, small = saved({"w": torch.zeros(1500)}), saved({"w": torch.zeros(2)})
    assert len(big) > 4096 > len(small)
    refused(inspect(c, big), "max_checkpoint_bytes", 413)
    assert ok(inspect(c, small))["total_parameters"] == 2


def case_max_checkpoint_unpacked_bytes(make: Make) -> None:
    c = make(max_checkpoint_unpacked_bytes=2048)
    refused(inspect(c, saved({"w": torch.zeros(1000)})), "max_checkpoint_unpacked_bytes")
    assert ok(inspect(c, saved({"w": torch.zeros(10)})))["total_parameters"] == 10


def case_max_checkpoint_entries(make: Make) -> None:
    c = make(max_checkpoint_entries=8)
    many = {f"w{i}": torch.zeros(1) for i in range(10)}  # one storage entry each
    refused(inspect(c, saved(many)), "max_checkpoint_entries")
    ok(inspect(c, saved({"w": torch.zeros(1)})))


def case_max_checkpoint_pickle_bytes(make: Make) -> None:
    c = make(max_checkpoint_pickle_bytes=1024)
    many = {f"layer{i}.weight": torch.zeros(1) for i in range(40)}
    refused(inspect(c, saved(many)), "max_checkpoint_pickle_bytes")
    ok(inspect(c, saved({"w": torch.zeros(1)})))


def case_max_checkpoint_depth(make: Make) -> None:
    c = make(max_checkpoint_depth=4)
    nested: Any = torch.zeros(1)
    for _ in range(6):
        nested = {"x": nested}
    refused(inspect(c, saved(nested)), "max_checkpoint_depth")
    ok(inspect(c, saved({"w": torch.zeros(1)})))


def case_max_checkpoint_items(make: Make) -> None:
    c = make(max_checkpoint_items=100)
    wide = {f"w{i}": torch.zeros(1) for i in range(150)}
    refused(inspect(c, saved(wide)), "max_checkpoint_items")
    assert ok(inspect(c, saved({"w": torch.zeros(3)})))["total_parameters"] == 3


def case_program_max_code_chars(make: Make) -> None:
    sandbox_refuses(make, "program_max_code_chars", 20, "x = 1\ny = 2\nz = 3\nw = 4\n", "x = 1\n")


def case_program_max_statements(make: Make) -> None:
    sandbox_refuses(make, "program_max_statements", 3, "x = 1\n" * 4, "x = 1\n" * 3)


def case_program_max_loop_iterations(make: Make) -> None:
    loop = "for i in range({})\n    x = i\n".replace(")", "):")
    sandbox_refuses(make, "program_max_loop_iterations", 3, loop.format(4), loop.format(3))


def case_program_max_tensor_elements(make: Make) -> None:
    sandbox_refuses(
        make, "program_max_tensor_elements", 10, "x = torch.ones(11)", "x = torch.ones(10)"
    )


def case_program_max_total_bytes(make: Make) -> None:
    over = "x = torch.ones(200)\ny = torch.ones(200)"  # 1600 bytes of float32
    sandbox_refuses(make, "program_max_total_bytes", 1024, over, "x = torch.ones(10)")


def case_program_max_int_bits(make: Make) -> None:
    sandbox_refuses(make, "program_max_int_bits", 64, "x = 2 ** 100", "x = 2 ** 10")


def case_program_max_sequence_items(make: Make) -> None:
    sandbox_refuses(make, "program_max_sequence_items", 5, "x = [0] * 6", "x = [0] * 5")


def case_program_max_string_chars(make: Make) -> None:
    sandbox_refuses(make, "program_max_string_chars", 5, "s = 'a' * 6", "s = 'a' * 5")


def case_program_max_nesting_depth(make: Make) -> None:
    deep = "x = " + "[" * 10 + "]" * 10  # ten lists, one inside the next
    sandbox_refuses(make, "program_max_nesting_depth", 5, deep, "x = [[]]")


def case_program_max_seconds(make: Make) -> None:
    c = make(
        program_max_seconds=0.5,
        program_max_statements=10**9,
        program_max_loop_iterations=10**9,
    )
    slow = "x = torch.ones(200, 200)\nfor i in range(10**8):\n    y = x @ x\n"
    body = refused(program(c, slow), "max_seconds")
    assert body["limit"] == "max_seconds"
    assert ok(program(c, "x = 1"))["error"] is None


# Later issues keep their cases in modules of their own beside this one (``limits_<area>.py``,
# each with ``case_``/``bound_`` functions and an optional ``EXEMPT`` dict), gathered here.
AREAS = [
    importlib.import_module(f"tests.web.{path.stem}")
    for path in sorted(Path(__file__).parent.glob("limits_*.py"))
]


def _gathered(prefix: str) -> dict[str, Callable[[Make], None]]:
    found: dict[str, Callable[[Make], None]] = {}
    for namespace in [dict(globals()), *(vars(area) for area in AREAS)]:
        for name, fn in namespace.items():
            if name.startswith(prefix) and callable(fn):
                key = name.removeprefix(prefix)
                assert key not in found or found[key] is fn, f"{name} is defined twice"
                found[key] = fn
    return found


REFUSALS: dict[str, Callable[[Make], None]] = _gathered("case_")


# ---- limits that bound the answer instead of refusing the request -----------------------------


def bound_program_max_display_elements(make: Make) -> None:
    c = make(program_max_display_elements=4)
    shown = ok(program(c, "x = torch.ones(4)\ny = torch.ones(5)"))["steps"][-1]["variables"]
    assert shown["x"]["values"] == [1.0] * 4 and shown["x"]["shape"] == [4]
    assert shown["y"]["values"] is None and shown["y"]["shape"] == [5]


def bound_program_max_steps_recorded(make: Make) -> None:
    c = make(program_max_steps_recorded=2)
    body = ok(program(c, "x = 1\ny = 2\nz = 3\n"))
    assert len(body["steps"]) == 2 and body["truncated"] is True
    assert any("max_steps_recorded" in notice for notice in body["notices"])
    assert ok(program(c, "x = 1\ny = 2\n"))["truncated"] is False


def bound_program_max_stdout_chars(make: Make) -> None:
    c = make(program_max_stdout_chars=5)
    body = ok(program(c, "print('abcdefghij')"))
    printed = "".join(step["stdout"] for step in body["steps"])
    assert printed.startswith("abcde") and "fghij" not in printed
    assert any("max_stdout_chars" in notice for notice in body["notices"])


def bound_program_max_recorded_numbers(make: Make) -> None:
    c = make(program_max_recorded_numbers=30)
    # Each step records every variable: 10 numbers, then 20, then 30, then 40 (over 30).
    code = "a = torch.ones(10)\nb = torch.ones(10)\nc = torch.ones(10)\nd = torch.ones(10)\n"
    body = ok(program(c, code))
    assert body["truncated"] is True and len(body["steps"]) < 4
    assert body["error"] is None
    assert any("max_recorded_numbers" in notice for notice in body["notices"])


def bound_program_max_graph_nodes(make: Make) -> None:
    c = make(program_max_graph_nodes=2)
    code = "x = torch.ones(2, requires_grad=True)\ny = x * 2\nz = y + 1\nw = z.sum()\n"
    body = ok(c.post("/api/autograd/graph", json={"code": code, "backward": "w"}))
    functions = [n for n in body["nodes"] if n["kind"] == "function"]
    assert len(functions) == 2 and body["truncated"] is True
    wide = make().post("/api/autograd/graph", json={"code": code, "backward": "w"}).json()
    assert len([n for n in wide["nodes"] if n["kind"] == "function"]) == 4  # Sum, Add, Mul, Acc


def bound_runs_max_listed(make: Make) -> None:
    c = make(runs_max_listed=2, runs_max_concurrent=1)
    sleepy = {"task": "test-sleepy", "config": {"steps": 100_000}}
    ids = [c.post("/api/runs", json=sleepy).json()["id"] for _ in range(3)]
    try:
        listed = [run["id"] for run in c.get("/api/runs").json()["runs"]]
        assert listed == ids[:0:-1]  # the newest two, newest first
    finally:
        for run_id in ids:
            c.post(f"/api/runs/{run_id}/cancel")


def bound_runs_max_seconds(make: Make) -> None:
    c = make(runs_max_seconds=1.0, runs_max_concurrent=1)
    sleepy = {"task": "test-sleepy", "config": {"steps": 100_000}}  # about 2000 s of sleeps
    run_id = c.post("/api/runs", json=sleepy).json()["id"]
    wait_for(lambda: c.get(f"/api/runs/{run_id}").json()["status"] == "failed", timeout=30)
    error = c.get(f"/api/runs/{run_id}").json()["error"]
    # The run's error says the time limit, its value and the setting.
    assert "time limit" in error and "1 s (setting runs_max_seconds)" in error


BOUNDS: dict[str, Callable[[Make], None]] = _gathered("bound_")

EXEMPT: dict[str, str] = {
    "classes_max_joins_per_minute": "the join attempts of one learner: tests/web/test_classes.py "
    "(test_join_codes_guessed_at_speed_are_429_on_the_11th_attempt)",
    "classes_max_joins_per_minute_per_address": "join attempts from one address, whoever the "
    "learner: tests/web/test_classes.py (test_guesses_from_one_address_are_counted_...)",
    "classes_max_per_teacher": "classes one learner teaches: tests/web/test_classes.py "
    "(test_past_classes_max_per_teacher_a_class_is_a_429_naming_it)",
    "runs_max_concurrent": "a worker count, not a request limit: runs over it wait in the queue "
    "(tests/jobs/test_runner.py, tests/web/test_runs_api.py use runs_max_concurrent=1)",
    "runs_max_attempts": "a class deployment's starts of one run before a silent worker's run "
    "ends interrupted, not a request limit: tests/jobs/test_store.py (sweep), "
    "tests/jobs/test_class_runner.py and tests/deploy/test_class_faults.py (a worker killed "
    "twice) hit it",
}
for _area in AREAS:
    EXEMPT.update(getattr(_area, "EXEMPT", {}))


# ---- fixtures and tests -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("limits") / "data"
    settings = Settings(data_dir=data, warm_lessons=False, program_prewarm=False)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def make(tmp_path: Path, default_client: TestClient) -> Iterator[Make]:
    """``make()`` is the shared app with default limits; ``make(limit=small)`` a fresh app."""
    opened: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        if not overrides:
            return default_client
        settings = Settings(
            data_dir=tmp_path / f"data{len(opened)}",
            warm_lessons=False,
            program_prewarm=False,
            **overrides,
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        opened.append(client)
        for name, value in overrides.items():
            assert client.get("/api/limits").json().get(name, value) == value
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


def test_every_listed_limit_is_tested_or_exempt(default_client: TestClient) -> None:
    listed = set(default_client.get("/api/limits").json())
    covered = [*REFUSALS, *BOUNDS, *EXEMPT]
    assert len(covered) == len(set(covered)), "a limit is in two tables"
    assert set(covered) == listed, {
        "untested": sorted(listed - set(covered)),
        "not a limit": sorted(set(covered) - listed),
    }
    # issue 13 added eight program_ limits (limits_programs.py), issue 15 runs_max_attempts,
    # issue 16 runs_max_per_learner, runs_max_bytes_per_learner, identity_max_links_per_minute
    # and program_max_per_minute (limits_fair_share.py), and classes_max_joins_per_minute,
    # classes_max_joins_per_minute_per_address and classes_max_per_teacher (test_classes.py)
    assert len(listed) == 83


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_request_over_the_limit_is_refused_naming_it(name: str, make: Make) -> None:
    REFUSALS[name](make)
    assert make().get("/healthz").status_code == 200


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_the_limit_bounds_the_answer(name: str, make: Make) -> None:
    BOUNDS[name](make)
