"""Schemathesis over the app's own /openapi.json: every operation, bounded and reproducible.

Each operation gets up to ``EXAMPLES`` generated requests, valid and schema-violating (the
schema's examples and boundary values first), against the real app in-process (its lifespan
runs, so the runs engine and the sandbox workers are live). Every response must be no 5xx, a
documented status code and content type, a body that matches the documented schema, a
schema-violating request refused with a 4xx, and every 4xx must carry a message.

The run event stream (``/api/runs/{run_id}/events``) is fuzzed too: generated ids name no run,
so it answers 404 before any stream starts; a stream of a real run is covered in tests/web.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.main import create_app

# Examples per operation: 28 operations x 25 take about a minute on a 2-core machine.
EXAMPLES = 25

DATA = Path(tempfile.mkdtemp(prefix="explorer-fuzz-"))
APP = create_app(
    Settings(
        data_dir=DATA / "data",
        warm_lessons=False,
        program_prewarm=False,
        # The fuzzer may queue valid runs: keep them few and short, and the queue small enough
        # that its intended 429 is reachable.
        runs_max_queue=2,
        runs_max_seconds=20.0,
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
TESTED: set[str] = set()


@pytest.fixture(scope="module", autouse=True)
def _app_stops() -> Iterator[None]:
    yield
    shutdown_lifespans()
    shutil.rmtree(DATA, ignore_errors=True)


@schemathesis.check
def error_has_detail(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every 4xx answer names its problem in a non-empty string ``detail``."""
    if 400 <= response.status_code < 500:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
        assert isinstance(detail, str) and detail.strip(), (
            f"a {response.status_code} without a message: {response.text[:300]}"
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    error_has_detail,
]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same requests on every run: CI is reproducible
    deadline=None,  # a training-run or sandbox answer may take a second on a busy machine
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_holds_under_fuzzing(case: schemathesis.Case) -> None:
    TESTED.add(f"{case.operation.method.upper()} {case.operation.path}")
    case.call_and_validate(checks=CHECKS)


def test_the_fuzzing_covered_every_operation() -> None:
    documented = {
        f"{method.upper()} {path}"
        for path, item in APP.openapi()["paths"].items()
        for method in item
    }
    assert len(documented) >= 28
    assert documented == TESTED


def test_every_error_status_is_documented_as_an_api_error() -> None:
    for path, item in APP.openapi()["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith(("/ApiError", "ErrorBody")), (method, path, status)
