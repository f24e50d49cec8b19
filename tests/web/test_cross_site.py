"""Cross-site safety (issue 16, item 6): a change another site's page sends is refused with a 403
that says why, and nothing changes; the app's own pages and scripts without browser headers are
served as before."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from tests.support import wait_for

EVIL = "http://evil.example"


def sleepy_run(client: TestClient) -> str:
    answer = client.post("/api/runs", json={"task": "test-sleepy"})
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["id"]
    wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "running")
    return run_id


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Origin": EVIL}, "it came from http://evil.example"),
        ({"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
        # Another port of the same host is the same site, but another origin: refused too.
        ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),
        ({"Origin": "null"}, "its Origin is null"),
        ({"Origin": "http://testserver.evil.example"}, "not from this site"),
    ],
)
def test_a_cancel_from_another_site_is_refused_and_the_run_goes_on(
    client: TestClient, headers: dict[str, str], why: str
) -> None:
    run_id = sleepy_run(client)
    answer = client.post(f"/api/runs/{run_id}/cancel", headers=headers)
    assert answer.status_code == 403
    detail = answer.json()["detail"]
    assert why in detail and "cross-site" in detail
    assert answer.headers["x-content-type-options"] == "nosniff"  # the app's headers, as always
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "running"
    assert client.post(f"/api/runs/{run_id}/cancel").json() == {"status": "cancelled"}


def test_a_launch_from_another_site_is_refused_before_its_body_is_read(
    client: TestClient,
) -> None:
    before = len(client.get("/api/runs").json()["runs"])
    # A form post: no JSON, and far over the body limit, refused on its headers alone.
    answer = client.post(
        "/api/runs",
        content=b"x" * (9 * 1024 * 1024),
        headers={"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 403
    assert len(client.get("/api/runs").json()["runs"]) == before


def test_an_upload_from_another_site_is_refused(client: TestClient) -> None:
    files = {"file": ("model.pth", io.BytesIO(b"PK\x03\x04"), "application/octet-stream")}
    answer = client.post(
        "/api/checkpoints/inspect", files=files, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a script: no browser headers
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},  # the app's own page
        {"Sec-Fetch-Site": "none"},  # typed in the address bar, a bookmark
        {"Origin": "http://TestServer"},  # hosts compare without case
    ],
)
def test_the_apps_own_pages_and_scripts_still_change_things(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = client.post("/api/softmax", json={"logits": [1.0, 2.0, 3.0]}, headers=headers)
    assert answer.status_code == 200, answer.text
    run_id = sleepy_run(client)
    cancelled = client.post(f"/api/runs/{run_id}/cancel", headers=headers)
    assert cancelled.json() == {"status": "cancelled"}


def test_reads_from_anywhere_are_served(client: TestClient) -> None:
    """Only changes are checked: a GET with another site's headers is served (a browser keeps
    that site's page from reading the answer anyway)."""
    answer = client.get("/api/runs", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 200
    assert "runs" in answer.json()
