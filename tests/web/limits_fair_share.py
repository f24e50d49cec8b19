"""Issue 16's fair share: the bytes one learner's runs keep, identity links and programs per
minute, each refused over HTTP naming its setting (gathered by test_limits_enforced.py; the
fuller cases, with another learner still served, are in test_quotas.py).
"""

from __future__ import annotations

from tests.support import finished, launch
from tests.web.limit_helpers import Make, ok, program, refused


def case_runs_max_bytes_per_learner(make: Make) -> None:
    c = make(runs_max_bytes_per_learner=1024)
    quick = {"task": "test-sleepy", "config": {"steps": 2}}
    first = launch(c, "test-sleepy", quick["config"])
    assert finished(c, first)["status"] == "completed"  # its files alone are over 1 kB
    body = refused(c.post("/api/runs", json=quick), "runs_max_bytes_per_learner", 413)
    assert body["limit"] == "runs_max_bytes_per_learner"
    assert c.delete(f"/api/runs/{first}").status_code == 200  # space again
    again = c.post("/api/runs", json=quick)
    assert again.status_code == 202, again.text
    finished(c, again.json()["id"])


def case_identity_max_links_per_minute(make: Make) -> None:
    c = make(identity_max_links_per_minute=1)
    assert c.post("/api/me/link").status_code == 201
    body = refused(c.post("/api/me/link"), "identity_max_links_per_minute", 429)
    assert body["limit"] == "identity_max_links_per_minute"


def case_program_max_per_minute(make: Make) -> None:
    c = make(program_max_per_minute=1)
    assert ok(program(c, "x = 1"))["error"] is None
    body = refused(program(c, "x = 1"), "program_max_per_minute", 429)
    assert body["limit"] == "program_max_per_minute"
