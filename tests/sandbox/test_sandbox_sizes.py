"""Sizes given as any whole number (tensor, NumPy integer, 0-d array, bool) are checked first.

Every size argument of the whitelisted functions is turned into a Python int and checked before
the call (issue 11: ``torch.linspace(0, 1, torch.tensor(400000000))`` allocated 1.6 GB before
being refused, ``torch.randperm(torch.tensor(200000000))`` ran until the worker was killed).
Oracles: plain PyTorch/NumPy for the values allowed at the limit and for the error messages of
wrong types, the worker's peak memory (VmHWM in /proc) for the refusals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from app.config import Settings
from app.main import create_app
from app.sandbox import (
    SandboxLimitExceeded,
    SandboxLimits,
    SandboxRefused,
    run_program,
    run_program_isolated,
)
from app.sandbox.isolation import get_pool
from app.sandbox.values import clean_nested
from tests.support import peak_rss

BIG = 10**9

# How a program can spell a whole number: (name, source with {n}).
KINDS = [
    ("int", "{n}"),
    ("tensor", "torch.tensor({n})"),
    ("int32 tensor", "torch.tensor({n}, dtype=torch.int32)"),
    ("one-element tensor", "torch.tensor([{n}])"),
    ("NumPy integer", "np.array([{n}])[0]"),
    ("0-d array", "np.array({n})"),
]
KIND_IDS = [name for name, _ in KINDS]

# (program with {N} for the size, the limit it must name): every sized function of the whitelist.
OVER = [
    ("x = torch.ones({N})", "max_tensor_elements"),
    ("x = torch.zeros(({N}, 2))", "max_tensor_elements"),
    ("x = torch.rand({N}, 1)", "max_tensor_elements"),
    ("x = torch.randn(size=({N},))", "max_tensor_elements"),
    ("x = torch.empty([{N}])", "max_tensor_elements"),
    ("x = torch.full(({N},), 1.0)", "max_tensor_elements"),
    ("x = torch.randint(0, 5, ({N},))", "max_tensor_elements"),
    ("x = torch.randint(5, size=({N},))", "max_tensor_elements"),
    ("x = torch.arange({N})", "max_tensor_elements"),
    ("x = torch.arange(0, {N}, 1)", "max_tensor_elements"),
    ("x = torch.arange(end={N})", "max_tensor_elements"),
    ("x = torch.linspace(0, 1, {N})", "max_tensor_elements"),
    ("x = torch.linspace(0, 1, steps={N})", "max_tensor_elements"),
    ("x = torch.eye({N})", "max_tensor_elements"),
    ("x = torch.eye(2, {N})", "max_tensor_elements"),
    ("x = torch.eye(n={N})", "max_tensor_elements"),
    ("x = torch.randperm({N})", "max_tensor_elements"),
    ("m = nn.Linear({N}, 2)", "max_tensor_elements"),
    ("m = nn.Linear(2, {N})", "max_tensor_elements"),
    ("m = nn.Linear(in_features={N}, out_features={N})", "max_tensor_elements"),
    ("x = np.ones({N})", "max_tensor_elements"),
    ("x = np.zeros(({N}, 1))", "max_tensor_elements"),
    ("x = np.zeros(shape=[{N}])", "max_tensor_elements"),
    ("x = np.arange({N})", "max_tensor_elements"),
    ("x = np.arange(0, {N})", "max_tensor_elements"),
    ("x = np.linspace(0, 1, {N})", "max_tensor_elements"),
    ("x = np.linspace(0, 1, num={N})", "max_tensor_elements"),
    ("x = torch.ones(2).repeat({N})", "max_tensor_elements"),
    ("x = torch.ones(1, 1).repeat(1, {N})", "max_tensor_elements"),
    ("x = torch.ones(1).expand({N})", "max_tensor_elements"),
    ("x = torch.ones(1, 1).expand(2, {N})", "max_tensor_elements"),
    ("x = torch.ones(1, 1).expand([{N}, 1])", "max_tensor_elements"),
]
# Python repeats a list or string by any whole number except an array (which broadcasts).
SEQUENCES = [
    ("x = [0] * {N}", "max_sequence_items"),
    ("x = {N} * [0]", "max_sequence_items"),
    ("x = (1,) * {N}", "max_sequence_items"),
    ("x = 'a' * {N}", "max_string_chars"),
]


def _refused_fast(code: str, limit: str, line: int = 1) -> SandboxLimitExceeded:
    started = time.monotonic()
    with pytest.raises(SandboxLimitExceeded) as info:
        run_program(code)
    assert time.monotonic() - started < 1.0, code
    assert info.value.limit == limit, (code, str(info.value))
    assert f"over the limit of {getattr(SandboxLimits(), limit)} ({limit})" in str(info.value)
    assert info.value.line == line, code
    return info.value


@pytest.mark.parametrize("kind", [source for _, source in KINDS], ids=KIND_IDS)
@pytest.mark.parametrize(("template", "limit"), OVER)
def test_a_size_of_any_whole_number_type_is_refused_before_the_call_and_names_the_limit(
    template: str, limit: str, kind: str
) -> None:
    code = template.format(N=kind.format(n=BIG))
    error = _refused_fast(code, limit)
    assert "elements" in error.reason


@pytest.mark.parametrize("kind", [s for n, s in KINDS if n != "0-d array"], ids=KIND_IDS[:-1])
@pytest.mark.parametrize(("template", "limit"), SEQUENCES)
def test_a_list_or_string_repeated_by_a_tensor_or_numpy_integer_is_refused_first(
    template: str, limit: str, kind: str
) -> None:
    _refused_fast(template.format(N=kind.format(n=BIG)), limit)


@pytest.mark.parametrize(
    "code",
    [
        "x = torch.linspace(0, 1, torch.tensor(400000000))",
        "x = torch.randperm(torch.tensor(200000000))",
        "x = torch.eye(torch.tensor(100000))",
        "n = np.array([100000])[0]\nm = nn.Linear(torch.tensor(100000), n)",
        "n = np.array([10**9])[0]\nx = np.linspace(0, 1, n)",
        "x = np.linspace(np.zeros(1000), np.ones(1000), 2000)",
        "x = np.linspace(0, np.ones((1000, 1000)), 2)",
        "x = np.arange(10**9, None)",
        "x = np.arange(0, 10**9, None)",
        "x = torch.arange(0.0, 1e300, 1e-300)",
    ],
)
def test_the_issue_reproductions_are_refused_at_once_naming_the_line(code: str) -> None:
    _refused_fast(code, "max_tensor_elements", line=code.count("\n") + 1)


def test_a_bool_shift_is_bounded_like_an_int() -> None:
    _refused_fast("x = True << 10**9", "max_int_bits")


@pytest.mark.parametrize("kind", [source for _, source in KINDS], ids=KIND_IDS)
def test_round_bounds_its_digits_whatever_their_type(kind: str) -> None:
    # round(5, -10**9) would compute 10**(10**9) in C
    started = time.monotonic()
    with pytest.raises(SandboxRefused) as info:
        run_program(f"x = round(5, -{kind.format(n=BIG)})")
    assert time.monotonic() - started < 1.0
    assert "100 digits" in str(info.value)


# -- at the limit: still allowed, and the same as plain PyTorch/NumPy -----------------------------

SMALL = SandboxLimits(max_tensor_elements=300)

Oracle = Callable[[int], Any]
# (program with {N}, N at the limit of 300 elements, N one step over, plain library call)
AT_LIMIT: list[tuple[str, int, int, Oracle]] = [
    ("x = torch.linspace(0, 1, {N})", 300, 301, lambda n: torch.linspace(0, 1, n)),
    ("x = torch.linspace(-2, 5, steps={N})", 300, 301, lambda n: torch.linspace(-2, 5, steps=n)),
    ("x = torch.arange({N})", 300, 301, lambda n: torch.arange(n)),
    ("x = torch.arange(0, {N}, 2)", 600, 601, lambda n: torch.arange(0, n, 2)),
    ("x = torch.eye({N}, 30)", 10, 11, lambda n: torch.eye(n, 30)),
    ("x = torch.eye(30, m={N})", 10, 11, lambda n: torch.eye(30, m=n)),
    ("x = torch.randperm({N})", 300, 301, lambda n: torch.randperm(n)),
    ("x = torch.ones({N})", 300, 301, lambda n: torch.ones(n)),
    ("x = torch.zeros(({N}, 3))", 100, 101, lambda n: torch.zeros((n, 3))),
    ("x = torch.rand(3, {N})", 100, 101, lambda n: torch.rand(3, n)),
    ("x = torch.randn(size=[{N}])", 300, 301, lambda n: torch.randn(size=[n])),
    ("x = torch.full(({N},), 7.0)", 300, 301, lambda n: torch.full((n,), 7.0)),
    ("x = torch.randint(0, 10, ({N},))", 300, 301, lambda n: torch.randint(0, 10, (n,))),
    ("x = torch.randint(9, size=({N}, 2))", 150, 151, lambda n: torch.randint(9, size=(n, 2))),
    ("x = torch.ones(3).repeat({N})", 100, 101, lambda n: torch.ones(3).repeat(n)),
    ("x = torch.ones(3, 1).expand(3, {N})", 100, 101, lambda n: torch.ones(3, 1).expand(3, n)),
    ("x = np.linspace(0, 1, {N})", 300, 301, lambda n: np.linspace(0, 1, n)),
    ("x = np.linspace([0, 1], 2, num={N})", 150, 151, lambda n: np.linspace([0, 1], 2, num=n)),
    ("x = np.ones(({N}, 2))", 150, 151, lambda n: np.ones((n, 2))),
    ("x = np.zeros({N})", 300, 301, lambda n: np.zeros(n)),
    ("x = np.arange({N})", 300, 301, lambda n: np.arange(n)),
    ("x = np.arange(2, {N})", 302, 303, lambda n: np.arange(2, n)),
]


def _plain(oracle: Oracle, n: int) -> Any:
    torch.manual_seed(0)  # every sandbox run starts from seed 0 (interpreter.SEED)
    return oracle(n)


def _values(value: dict[str, Any]) -> Any:
    return value["values"]


@pytest.mark.parametrize("kind", [source for _, source in KINDS], ids=KIND_IDS)
@pytest.mark.parametrize(("template", "at", "over", "oracle"), AT_LIMIT)
def test_a_size_at_the_limit_given_as_any_whole_number_gives_the_libraries_own_result(
    template: str, at: int, over: int, oracle: Oracle, kind: str
) -> None:
    result = run_program(template.format(N=kind.format(n=at)), SMALL)
    assert result["error"] is None, result["error"]
    value = result["steps"][-1]["variables"]["x"]
    expected = _plain(oracle, at)
    assert value["shape"] == list(expected.shape)
    assert _values(value) == clean_nested(expected.tolist())
    with pytest.raises(SandboxLimitExceeded) as info:
        run_program(template.format(N=kind.format(n=over)), SMALL)
    assert info.value.limit == "max_tensor_elements"


@pytest.mark.parametrize("kind", [source for _, source in KINDS], ids=KIND_IDS)
def test_nn_linear_sized_by_tensors_is_plain_pytorchs_layer_with_int_features(kind: str) -> None:
    code = f"m = nn.Linear({kind.format(n=30)}, {kind.format(n=10)})\nk = m.in_features\n"
    result = run_program(code, SMALL)
    assert result["error"] is None, result["error"]
    last = result["steps"][-1]["variables"]
    # the layer got the checked Python int, not the tensor (plain nn.Linear keeps a tensor)
    assert last["k"] == {"kind": "number", "value": 30, "type": "int"}
    expected = _plain(lambda _: nn.Linear(30, 10), 0)
    weight = last["m"]["parameters"]["weight"]
    assert weight["values"] == clean_nested(expected.weight.tolist())
    with pytest.raises(SandboxLimitExceeded):
        run_program(f"m = nn.Linear({kind.format(n=31)}, 10)", SMALL)


def test_bools_count_as_zero_and_one() -> None:
    result = run_program("a = torch.ones(True, 3)\nb = torch.zeros(False)\nc = np.ones(True)")
    assert result["error"] is None, result["error"]
    last = result["steps"][-1]["variables"]
    assert last["a"]["shape"] == [1, 3]
    assert last["b"]["shape"] == [0]
    assert last["c"]["shape"] == [1]


# -- wrong types: refused by the library itself, with its own message ------------------------------

# The plain libraries, typed loosely: these calls are wrong on purpose.
T: Any = torch
N: Any = np
NN: Any = nn

# (sandbox program, the same call in plain PyTorch/NumPy)
WRONG_TYPES: list[tuple[str, Callable[[], Any]]] = [
    ("torch.ones(2.5)", lambda: T.ones(2.5)),
    ("torch.ones(torch.tensor(2.0))", lambda: T.ones(T.tensor(2.0))),
    ("torch.ones(torch.tensor([2, 3]))", lambda: T.ones(T.tensor([2, 3]))),
    ("torch.zeros((2.5, 2))", lambda: T.zeros((2.5, 2))),
    ("torch.ones(np.array([2.0])[0])", lambda: T.ones(N.float64(2.0))),
    ("torch.ones(np.array([3]))", lambda: T.ones(N.array([3]))),
    ("torch.ones(None)", lambda: T.ones(None)),
    ("torch.full((2.5,), 1.0)", lambda: T.full((2.5,), 1.0)),
    ("torch.randint(0, 5, (2.5,))", lambda: T.randint(0, 5, (2.5,))),
    ("torch.linspace(0, 1, 2.5)", lambda: T.linspace(0, 1, 2.5)),
    ("torch.linspace(0, 1, torch.tensor(3.0))", lambda: T.linspace(0, 1, T.tensor(3.0))),
    ("torch.randperm(3.0)", lambda: T.randperm(3.0)),
    ("torch.randperm(torch.tensor(3.0))", lambda: T.randperm(T.tensor(3.0))),
    ("torch.eye(torch.tensor(3.0))", lambda: T.eye(T.tensor(3.0))),
    ("torch.eye(3, 2.0)", lambda: T.eye(3, 2.0)),
    ("torch.arange(torch.tensor([2, 3]))", lambda: T.arange(T.tensor([2, 3]))),
    ("torch.arange('5')", lambda: T.arange("5")),
    ("nn.Linear(3.0, 2)", lambda: NN.Linear(3.0, 2)),
    ("nn.Linear(torch.tensor(3.0), 2)", lambda: NN.Linear(T.tensor(3.0), 2)),
    ("np.ones(2.5)", lambda: N.ones(2.5)),
    ("np.ones(torch.tensor(2.0))", lambda: N.ones(T.tensor(2.0))),
    ("np.zeros((torch.tensor(2.0),))", lambda: N.zeros((T.tensor(2.0),))),
    ("np.ones(np.array([2.0, 3.0]))", lambda: N.ones(N.array([2.0, 3.0]))),
    ("np.linspace(0, 1, 2.5)", lambda: N.linspace(0, 1, 2.5)),
    ("np.linspace(0, 1, num=np.array(2.0))", lambda: N.linspace(0, 1, num=N.array(2.0))),
    ("np.arange(np.array([2, 3]))", lambda: N.arange(N.array([2, 3]))),
    ("torch.ones(2).repeat(2.5)", lambda: T.ones(2).repeat(2.5)),
    ("torch.ones(1).expand(2.5)", lambda: T.ones(1).expand(2.5)),
    (
        "torch.randint(0, 5, size=torch.tensor([2, 3]))",
        lambda: T.randint(0, 5, size=T.tensor([2, 3])),
    ),
    ("np.zeros(np.array([[2, 3]]))", lambda: N.zeros(N.array([[2, 3]]))),
]


def _plain_error(call: Callable[[], Any]) -> str:
    try:
        call()
    except Exception as exc:  # the library's own refusal
        return f"{type(exc).__name__}: {exc}"[:2000]
    raise AssertionError("plain PyTorch/NumPy accepted this size")


@pytest.mark.parametrize(("code", "plain"), WRONG_TYPES, ids=[c for c, _ in WRONG_TYPES])
def test_a_size_of_the_wrong_type_gets_the_libraries_own_error(
    code: str, plain: Callable[[], Any]
) -> None:
    result = run_program(f"x = {code}")
    assert result["error"] is not None, code
    message = result["error"]["message"]
    assert message.removesuffix("...") == _plain_error(plain)[: len(message.removesuffix("..."))]


@pytest.mark.parametrize("code", ["torch.ones([[2, 3]])", "np.ones(range(3))", "torch.eye([3])"])
def test_a_size_that_is_not_a_number_is_an_error_before_the_call(code: str) -> None:
    result = run_program(f"x = {code}")
    assert result["error"] is not None
    assert "TypeError" in result["error"]["message"]
    assert "must be a whole number" in result["error"]["message"]


# -- through the worker: refused before the memory or time is spent --------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "x = torch.linspace(0, 1, torch.tensor(400000000))",
        "x = torch.randperm(torch.tensor(200000000))",
        "x = np.linspace(0, 1, np.array([400000000])[0])",
        "x = torch.ones(torch.tensor([20000, 20000]).prod())",
    ],
)
def test_the_worker_refuses_a_tensor_size_before_allocating(one_worker: int, code: str) -> None:
    before = peak_rss(one_worker)
    started = time.monotonic()
    with pytest.raises(SandboxLimitExceeded) as info:
        run_program_isolated(code)
    elapsed = time.monotonic() - started
    assert info.value.limit == "max_tensor_elements"
    assert info.value.line == 1
    assert elapsed < 2.0  # well under max_seconds (5 s): nothing ran to the kill
    assert get_pool()._idle[0].process.pid == one_worker  # the same worker, still alive
    grown = peak_rss(one_worker) - before
    assert grown < 100 * 1024**2, f"the worker's peak memory grew by {grown} bytes"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("sizes") / "data"
    settings = Settings(data_dir=data, warm_lessons=False, program_max_per_minute=100_000)
    with TestClient(create_app(settings)) as test_client:
        # the first program waits for a worker to start (seconds): not part of what is timed
        assert test_client.post("/api/tensors/run", json={"code": "x = 1"}).status_code == 200
        yield test_client


@pytest.mark.parametrize(
    "code",
    [
        "x = torch.linspace(0, 1, torch.tensor(400000000))",
        "x = torch.randperm(torch.tensor(200000000))",
        "x = torch.eye(torch.tensor(100000))",
        "n = np.array([100000])[0]\nm = nn.Linear(torch.tensor(100000), n)",
        "n = np.array([10**9])[0]\nx = np.linspace(0, 1, n)",
    ],
)
def test_over_http_a_tensor_size_is_a_422_naming_the_limit_and_line(
    client: TestClient, code: str
) -> None:
    started = time.monotonic()
    response = client.post("/api/tensors/run", json={"code": code})
    assert time.monotonic() - started < 3.0
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["limit"] == "max_tensor_elements"
    assert body["line"] == code.count("\n") + 1
    assert "over the limit of 1000000 (max_tensor_elements)" in body["detail"]
    assert client.get("/healthz").json() == {"status": "ok"}
