"""Learners without sign-up (issue 16, item 1): the signed cookie, the header for scripts, display
names, the one-time identity link, the signing secret shared through the store, and each run's
owner. Real apps on real stores (SQLite, and PostgreSQL where the deployment would use it)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itsdangerous import Signer
from sqlalchemy import select, text, update

from app.jobs.store import LearnerLinkRow, RunRow, RunStore
from app.web.identity import COOKIE, COOKIE_MAX_AGE_S, SALT, new_learner_id
from tests import pg
from tests.support import finished

HEADER = "X-Explorer-Learner"


@pytest.fixture
def client(apps: Callable[..., TestClient]) -> TestClient:
    return apps()


def set_cookies(response: Any) -> list[str]:
    return [v for k, v in response.headers.multi_items() if k.lower() == "set-cookie"]


def learner_cookie(response: Any) -> str | None:
    """The ``Set-Cookie`` line for the learner cookie, or None."""
    lines = [line for line in set_cookies(response) if line.startswith(f"{COOKIE}=")]
    assert len(lines) <= 1, lines
    return lines[0] if lines else None


def bare(client: TestClient) -> TestClient:
    """Another client of the same app, with no cookies: a script, or another browser."""
    return TestClient(client.app)


def me(client: TestClient, **kwargs: Any) -> dict[str, Any]:
    response = client.get("/api/me", **kwargs)
    assert response.status_code == 200, response.text
    return dict(response.json())


def flip(token: str, index: int) -> str:
    """The token with one character changed (base64url stays base64url)."""
    char = token[index]
    return token[:index] + ("A" if char != "A" else "B") + token[index + 1 :]


def tampered(token: str) -> list[str]:
    """The token with a character of its signature changed, and with one of its id changed. (The
    signature's last character is left alone: in base64 its low bits are padding, and a change
    there may decode to the very same signature.)"""
    at = token.index(".")
    return [flip(token, at + 1), flip(token, len(token) - 5), flip(token, 0)]


# -- the cookie ------------------------------------------------------------------------------------


def test_first_visit_sets_a_signed_httponly_samesite_lax_cookie(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    line = learner_cookie(response)
    assert line is not None
    attributes = [part.strip().lower() for part in line.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert f"max-age={COOKIE_MAX_AGE_S}" in attributes and COOKIE_MAX_AGE_S >= 365 * 24 * 3600
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    token = line.split(";")[0].split("=", 1)[1]
    learner, _, signature = token.partition(".")
    assert len(learner) == 22 and signature  # 128 bits of base64url, then the signature


def test_the_cookie_is_secure_over_https(client: TestClient) -> None:
    https = TestClient(client.app, base_url="https://testserver")
    line = learner_cookie(https.get("/api/me"))
    assert line is not None and "secure" in [p.strip().lower() for p in line.split(";")]


def test_the_same_learner_comes_back_with_the_cookie(client: TestClient) -> None:
    first = me(client)
    again = client.get("/api/me")
    assert again.json()["learner"] == first["learner"]
    assert learner_cookie(again) is None  # a valid cookie is not set again
    assert client.cookies[COOKIE] == first["token"]
    other = me(bare(client))
    assert other["learner"] != first["learner"]


def test_a_tampered_cookie_is_a_new_learner_never_an_error(client: TestClient) -> None:
    first = me(client)
    for token in tampered(first["token"]):
        browser = bare(client)
        browser.cookies.set(COOKIE, token)
        response = browser.get("/api/me")
        assert response.status_code == 200
        assert response.json()["learner"] not in (first["learner"], token.split(".")[0])
        assert learner_cookie(response) is not None  # a fresh, valid one replaces it


def test_a_cookie_signed_with_another_key_is_a_new_learner(client: TestClient) -> None:
    victim = me(client)["learner"]
    forged = Signer("not the deployment's key", salt=SALT).sign(victim).decode()
    browser = bare(client)
    browser.cookies.set(COOKIE, forged)
    response = browser.get("/api/me")
    assert response.status_code == 200
    assert response.json()["learner"] != victim


@pytest.mark.parametrize(
    "cookie",
    [
        "a" * 60_000,
        f"{COOKIE}=" + "x" * 20_000,
        f'{COOKIE}="";;;=;=={COOKIE}',
        f"{COOKIE}=.; {COOKIE}=...; {COOKIE}=\u00ff\u00fe.\u00e9",
        "; ".join(f"c{i}=v{i}" for i in range(2_000)),
    ],
    ids=["huge", "huge-value", "malformed", "latin1-junk", "many-cookies"],
)
def test_a_huge_or_malformed_cookie_header_is_a_new_learner(
    client: TestClient, cookie: str
) -> None:
    script = bare(client)
    raw = {"Cookie": cookie.encode("latin-1")}  # bytes as a client may send them
    response = script.get("/api/me", headers=raw)
    assert response.status_code == 200
    assert len(response.json()["learner"]) == 22
    assert learner_cookie(response) is not None
    assert script.get("/static/css/app.css", headers=raw).status_code == 200


def test_the_configured_secret_key_signs_the_cookie(apps: Callable[..., TestClient]) -> None:
    key = "a deployment's own secret key, long enough"
    client = apps(secret_key=key)
    mine = me(client)
    assert Signer(key, salt=SALT).unsign(mine["token"]).decode() == mine["learner"]


def test_a_cacheable_answer_never_carries_a_cookie(client: TestClient) -> None:
    """A shared cache must not hand one learner's cookie to the next."""
    fingerprinted = client.app.state.assets.url("css/app.css")
    response = bare(client).get(fingerprinted)
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    assert learner_cookie(response) is None


def test_event_streams_still_stream_through_the_identity(client: TestClient) -> None:
    created = client.post(
        "/api/runs", json={"task": "linear-regression", "config": {"stage": "nn", "epochs": 5}}
    )
    run_id = created.json()["id"]
    finished(client, run_id)
    with bare(client).stream("GET", f"/api/runs/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert learner_cookie(response) is not None
        body = "".join(response.iter_text())
    assert "event: status" in body


# -- the header, for scripts -----------------------------------------------------------------------


def test_a_script_is_the_learner_its_header_names(client: TestClient) -> None:
    browser = me(client)
    script = bare(client)  # no cookies, as httpx or curl
    response = script.get("/api/me", headers={HEADER: browser["token"]})
    assert response.json()["learner"] == browser["learner"]
    assert learner_cookie(response) is None
    assert not script.cookies


def test_another_learners_id_forged_in_the_header_is_ignored(client: TestClient) -> None:
    victim = me(client)["learner"]
    forgeries = [
        victim,  # the bare id, unsigned
        f"{victim}.",
        Signer("guessed key", salt=SALT).sign(victim).decode(),
        Signer(client.app.state.runs.store.secret("learner-cookie")).sign(victim).decode(),
        *tampered(me(client)["token"]),
    ]
    for forged in forgeries:
        response = bare(client).get("/api/me", headers={HEADER: forged})
        assert response.status_code == 200
        assert response.json()["learner"] != victim, forged


def test_the_header_wins_over_the_cookie(client: TestClient) -> None:
    a, b = me(client), me(bare(client))
    assert me(client, headers={HEADER: b["token"]})["learner"] == b["learner"]
    assert me(client)["learner"] == a["learner"]  # and the browser's cookie is unchanged


# -- display names ---------------------------------------------------------------------------------


def test_a_display_name_round_trips(client: TestClient) -> None:
    assert me(client)["name"] is None
    response = client.post("/api/me", json={"name": "  Ada Lovelace  "})
    assert response.status_code == 200
    assert response.json()["name"] == "Ada Lovelace"
    assert me(client)["name"] == "Ada Lovelace"
    client.post("/api/me", json={"name": "Ada"})
    assert me(client)["name"] == "Ada"
    assert me(bare(client))["name"] is None  # another learner's is their own
    assert client.post("/api/me", json={"name": "é" * 40}).status_code == 200


@pytest.mark.parametrize(
    "name",
    ["x" * 41, "", "   ", "Ada\x07", "Ada\nLovelace", "tab\there", "\u202eevil", "a\u2028b"],
    ids=["41-chars", "empty", "spaces", "bell", "newline", "tab", "rtl-override", "line-sep"],
)
def test_a_bad_name_is_a_422_naming_the_40_limit(client: TestClient, name: str) -> None:
    response = client.post("/api/me", json={"name": name})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "40" in detail and detail.startswith("name:"), detail
    assert me(client)["name"] is None


def test_a_name_that_is_not_a_string_is_a_422(client: TestClient) -> None:
    for body in ({"name": 7}, {"name": None}, {}, ["Ada"]):
        assert client.post("/api/me", json=body).status_code == 422


def test_a_name_with_html_is_stored_as_typed_and_shown_escaped(client: TestClient) -> None:
    name = "<script>alert(1)</script>"
    assert client.post("/api/me", json={"name": name}).json()["name"] == name
    assert me(client)["name"] == name
    page = client.get("/me")
    assert page.status_code == 200
    assert name not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_the_me_page_shows_the_learner_and_is_linked_from_the_top_bar(client: TestClient) -> None:
    learner = me(client)["learner"]
    page = client.get("/me")
    assert learner in page.text and 'id="name-form"' in page.text
    assert "/static/js/me." in page.text
    assert 'href="/me"' in client.get("/").text


# -- the one-time identity link --------------------------------------------------------------------


def make_link(client: TestClient) -> str:
    response = client.post("/api/me/link")
    assert response.status_code == 201, response.text
    body = response.json()
    expires = datetime.fromisoformat(body["expires_at"])
    left = expires - datetime.now(UTC)
    assert timedelta(minutes=14) < left <= timedelta(minutes=15, seconds=5)
    assert body["url"].startswith("/me/claim/")
    return str(body["url"])


def test_the_link_makes_another_browser_the_same_learner_once(client: TestClient) -> None:
    client.post("/api/me", json={"name": "Ada"})
    a = me(client)
    url = make_link(client)
    other = bare(client)
    other_before = me(other)["learner"]
    assert other_before != a["learner"]
    # Opening the link asks first, and spends nothing (a chat app's preview opens it too).
    for _ in range(2):
        page = other.get(url)
        assert page.status_code == 200 and "Ada" in page.text and a["learner"] in page.text
    claimed = other.post(url, follow_redirects=False)
    assert claimed.status_code == 303 and claimed.headers["location"] == "/me"
    line = learner_cookie(claimed)
    assert line is not None and "httponly" in line.lower()
    assert me(other) == {**a}
    # A link works once: not again, not from a third browser.
    third = bare(client)
    for refusal in (third.post(url, follow_redirects=False), third.get(url)):
        assert refusal.status_code == 410
        assert "already been used" in refusal.text
    assert me(third)["learner"] != a["learner"]


def test_an_expired_link_is_refused(client: TestClient) -> None:
    url = make_link(client)
    store: RunStore = client.app.state.runs.store
    with store.engine.begin() as conn:
        conn.execute(
            update(LearnerLinkRow).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    other = bare(client)
    for response in (other.get(url), other.post(url, follow_redirects=False)):
        assert response.status_code == 410
        assert "expired" in response.text
    assert me(other)["learner"] != me(client)["learner"]


@pytest.mark.parametrize("token", ["A" * 22, "nope", "x" * 200, "%00" * 8])
def test_an_unknown_link_is_a_404_that_says_so(client: TestClient, token: str) -> None:
    for response in (
        client.get(f"/me/claim/{token}"),
        client.post(f"/me/claim/{token}", follow_redirects=False),
    ):
        assert response.status_code == 404, (token, response.status_code)
    page = client.get("/me/claim/" + "A" * 22)
    assert "not known" in page.text and "text/html" in page.headers["content-type"]


def test_only_the_links_hash_is_stored(client: TestClient) -> None:
    token = make_link(client).rsplit("/", 1)[1]
    store: RunStore = client.app.state.runs.store
    with store.engine.connect() as conn:
        rows = conn.execute(select(LearnerLinkRow.token_hash, LearnerLinkRow.learner)).all()
    assert len(rows) == 1 and token not in rows[0][0] and len(rows[0][0]) == 64
    assert rows[0][1] == me(client)["learner"]


def test_a_link_token_carries_128_random_bits(apps: Callable[..., TestClient]) -> None:
    client = apps(identity_max_links_per_minute=20)  # twenty links at once: not the rate's test
    tokens = {make_link(client).rsplit("/", 1)[1] for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) == 22 for t in tokens)


# -- the signing secret, shared through the store --------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One database two apps share: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    if not pg.pg_available():
        pytest.fail(pg.UNAVAILABLE, pytrace=False)
    with pg.fresh_database() as url:
        yield url


def test_a_cookie_from_one_app_is_valid_on_another_on_the_same_store(
    apps: Callable[..., TestClient], shared_url: str
) -> None:
    a = apps(database_url=shared_url)
    b = apps(database_url=shared_url)
    learner = me(a)
    browser = bare(b)
    browser.cookies.set(COOKIE, learner["token"])
    response = browser.get("/api/me")
    assert response.json()["learner"] == learner["learner"]
    assert learner_cookie(response) is None
    a.post("/api/me", json={"name": "Grace"})
    assert me(b, headers={HEADER: learner["token"]})["name"] == "Grace"


def test_two_stores_starting_at_once_agree_on_the_secret(shared_url: str) -> None:
    stores = [RunStore(shared_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    found: list[str] = []

    def ask(store: RunStore) -> None:
        barrier.wait()
        found.append(store.secret("learner-cookie"))

    threads = [threading.Thread(target=ask, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert len(found) == len(stores) and len(set(found)) == 1
        assert len(found[0]) >= 40  # 256 bits of base64url
        assert stores[0].secret("another") != found[0]
        assert RunStore(shared_url).secret("learner-cookie") == found[0]
    finally:
        for store in stores:
            store.close()


# -- each run's owner ------------------------------------------------------------------------------


def test_a_run_records_its_owner_and_says_whose_it_is(client: TestClient) -> None:
    owner = me(client)["learner"]
    created = client.post(
        "/api/runs", json={"task": "linear-regression", "config": {"stage": "nn", "epochs": 5}}
    )
    assert created.status_code == 202
    run_id = created.json()["id"]
    store: RunStore = client.app.state.runs.store
    with store.engine.connect() as conn:
        stored = conn.execute(select(RunRow.owner).where(RunRow.id == run_id)).scalar_one()
    assert stored == owner and store.get(run_id).owner == owner
    assert finished(client, run_id)["mine"] is True
    other = bare(client)
    answer = other.get(f"/api/runs/{run_id}")
    assert answer.status_code == 200 and answer.json()["mine"] is False
    assert "owner" not in answer.json()  # the API names no learner
    listed = {run["id"]: run["mine"] for run in client.get("/api/runs").json()["runs"]}
    assert listed[run_id] is True
    # Another learner reads it by its link, read-only, and does not see it in their list.
    assert answer.json()["read_only"] is True and finished(client, run_id)["read_only"] is False
    assert run_id not in {run["id"] for run in other.get("/api/runs").json()["runs"]}
    script = other.get(f"/api/runs/{run_id}", headers={HEADER: me(client)["token"]})
    assert script.json()["mine"] is True


def test_runs_made_before_learners_belong_to_nobody(tmp_path: Path) -> None:
    """An existing data dir gains the owner column; its runs have no owner."""
    data_dir = tmp_path / "old"
    store = RunStore(data_dir=data_dir)
    earlier = store.create("linear-regression", {"epochs": 5})
    with store.engine.begin() as conn:  # the runs table as it was before issue 16
        conn.execute(text("DROP INDEX ix_runs_owner"))
        conn.execute(text("ALTER TABLE runs DROP COLUMN owner"))
    store.close()
    reopened = RunStore(data_dir=data_dir)
    try:
        assert reopened.get(earlier.id).owner is None
        learner = new_learner_id()
        assert reopened.create("linear-regression", {"epochs": 5}, owner=learner).owner == learner
        with reopened.engine.connect() as conn:
            indexes = conn.execute(text("PRAGMA index_list(runs)")).all()
        assert "ix_runs_owner" in {row[1] for row in indexes}
    finally:
        reopened.close()


def test_another_sites_page_cannot_spend_a_link_or_sign_a_browser_in(client: TestClient) -> None:
    """Login CSRF: a form on another site posting to the claim URL is refused before it acts."""
    a = me(client)
    url = make_link(client)
    victim = bare(client)
    forged = victim.post(url, headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert forged.status_code == 403
    assert me(victim)["learner"] != a["learner"]
    assert victim.post(url, follow_redirects=False).status_code == 303  # still unspent
    assert me(victim)["learner"] == a["learner"]
