"""POST /api/tensors/run and /api/autograd/graph through the app, with the real worker pool."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient


def run(client: TestClient, code: str):
    return client.post("/api/tensors/run", json={"code": code})


def test_the_notes_view_is_four_by_one_and_shares_storage(client: TestClient) -> None:
    r = run(client, "a = torch.ones(2, 2)\nb = a.view(4, -1)\n")
    assert r.status_code == 200
    steps = r.json()["steps"]
    assert [s["line"] for s in steps] == [1, 2]
    a, b = steps[-1]["variables"]["a"], steps[-1]["variables"]["b"]
    assert b["shape"] == [4, 1] and b["stride"] == [1, 1] and a["stride"] == [2, 1]
    assert a["storage"] == b["storage"]
    assert b["values"] == [[1.0], [1.0], [1.0], [1.0]]


def test_numpy_shares_memory_and_an_in_place_add_shows_in_both(client: TestClient) -> None:
    code = "t = torch.ones(3)\nn = t.numpy()\nt.add_(1)\n"
    last = run(client, code).json()["steps"][-1]["variables"]
    assert last["n"]["kind"] == "ndarray" and last["n"]["values"] == [2.0, 2.0, 2.0]
    assert last["n"]["storage"] == last["t"]["storage"]


def test_each_loop_iteration_is_its_own_step(client: TestClient) -> None:
    code = "s = 0\nfor i in range(3):\n    s = s + i\nprint(s)\n"
    steps = run(client, code).json()["steps"]
    values = [s["variables"]["s"]["value"] for s in steps if s["line"] == 3]
    assert values == [0, 1, 3]
    assert steps[-1]["stdout"].strip() == "3"


def test_a_runtime_error_is_200_with_the_steps_so_far_and_pytorchs_message(
    client: TestClient,
) -> None:
    code = "a = torch.ones(2, 3)\nb = torch.ones(4, 5)\nc = a @ b\n"
    r = run(client, code)
    assert r.status_code == 200
    body = r.json()
    assert len(body["steps"]) == 2 and body["error"]["line"] == 3
    assert "cannot be multiplied" in body["error"]["message"]


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("eval('1')\n", "eval"),
        ("x = torch.ones(2)\ny = x.__class__\n", "line 2"),
        ("getattr(torch, 'load')\n", "getattr"),
        ("def f():\n    yield 1\n", "yield"),
        ("x = torch.ones(100000, 100000)\n", "max_tensor_elements"),
        ("x = 2 ** 99999999\n", "int"),
    ],
)
def test_a_refused_program_is_422_naming_the_line_and_reason(
    client: TestClient, code: str, needle: str
) -> None:
    r = run(client, code)
    assert r.status_code == 422
    assert needle in r.json()["detail"] and r.json()["line"] is not None


def test_an_endless_loop_is_stopped_by_the_time_limit_and_the_server_still_answers(
    tmp_path,
) -> None:
    from app.config import Settings
    from app.main import create_app

    settings = Settings(data_dir=tmp_path, program_max_seconds=1.0)
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        r = run(client, "x = 0\nfor i in range(10**12):\n    x = x + 1\n")
        elapsed = time.monotonic() - started
        assert r.status_code == 422
        assert (
            "max_statements" in r.json()["detail"]
            or "max_loop" in r.json()["detail"]
            or ("max_seconds" in r.json()["detail"])
        )
        assert elapsed < 10
        assert client.get("/healthz").status_code == 200
        assert run(client, "y = 1\n").status_code == 200


def test_a_slow_program_does_not_stall_other_requests(client: TestClient) -> None:
    code = "x = torch.ones(300, 300)\nfor i in range(300):\n    y = x @ x\n"
    done = threading.Event()

    def slow() -> None:
        run(client, code)
        done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert client.get("/healthz").status_code == 200
    assert time.monotonic() - started < 1.0
    thread.join(30)


def test_the_graph_of_the_notes_example(client: TestClient) -> None:
    code = "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\n"
    r = client.post("/api/autograd/graph", json={"code": code, "backward": "z"}).json()
    labels = {n["label"] for n in r["nodes"] if n["kind"] == "function"}
    assert {"AddBackward0", "MulBackward0", "AccumulateGrad"} <= labels
    assert float(np.asarray(r["variables"]["x"]["grad"]).reshape(-1)[0]) == pytest.approx(6.0)
    ran = [
        next(n["label"] for n in r["nodes"] if n["id"] == s["node"]) for s in r["backward_steps"]
    ]
    assert ran.index("MulBackward0") < ran.index("AddBackward0") < ran.index("AccumulateGrad")
    ids = {n["id"] for n in r["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in r["edges"])


def test_the_graph_without_backward_names_the_variables(client: TestClient) -> None:
    code = "w = torch.tensor([1., 2.], requires_grad=True)\nloss = (w * 3).sum()\n"
    r = client.post("/api/autograd/graph", json={"code": code}).json()
    assert {"w", "loss"} <= {n["variable"] for n in r["nodes"] if n["kind"] == "tensor"}
    assert r["backward_steps"] == []


def test_backward_on_a_name_that_does_not_exist_is_an_error_not_a_crash(
    client: TestClient,
) -> None:
    r = client.post("/api/autograd/graph", json={"code": "x = 1\n", "backward": "nope"})
    assert r.status_code == 200
    assert "'nope' is not defined" in r.json()["error"]["message"]


def test_programs_are_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/tensors/run", "/api/autograd/graph"):
        assert "requestBody" in paths[path]["post"]
        assert paths[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]


def test_programs_waiting_in_line_do_not_hold_the_threads_that_answer_health_and_pages(
    tmp_path,
) -> None:
    """More programs waiting than the server's thread pool has threads (40): before issue 11
    each waited in one of them, and /healthz and every page waited behind them all."""
    from app.config import Settings
    from app.main import create_app

    settings = Settings(
        data_dir=tmp_path / "data",
        warm_lessons=False,
        program_max_seconds=0.5,
        program_max_statements=10**9,
        program_max_loop_iterations=10**9,
        program_queue_seconds=60.0,
        program_max_waiting=60,
        program_max_per_client=100,  # the TestClient is one client: let it fill the line
    )
    slow = "x = torch.ones(200, 200)\nfor i in range(10**8):\n    y = x @ x\n"
    with TestClient(create_app(settings)) as client:
        assert run(client, "x = 1").status_code == 200  # the workers are up
        gate = client.app.state.program_gate
        answers: list[int] = []
        threads = [
            threading.Thread(target=lambda: answers.append(run(client, slow).status_code))
            for _ in range(45)
        ]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 30
            while gate.admitted < 40 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert gate.admitted >= 40  # two at work, the others waiting for a worker
            for path in ("/healthz", "/lessons/softmax-cross-entropy"):
                started = time.monotonic()
                assert client.get(path).status_code == 200
                assert time.monotonic() - started < 2.0, path
        finally:
            for thread in threads:
                thread.join(120)
        assert answers == [422] * 45  # each ran, and was stopped at max_seconds
