"""Classes (issue 16, item 3): a teacher makes a class, learners join with its code or link and
can leave, the teacher sees every member's runs in one table and cancels them; join codes cannot
be guessed at speed, and names with HTML in them are shown as text. Real apps on real SQLite,
with each learner a TestClient of their own (their own cookie jar)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.jobs.store import ClassRow, RunStore
from app.web.routes.classes import size_text
from tests.support import finished

CODE = re.compile(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}")
HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def teacher(apps: Callable[..., TestClient]) -> TestClient:
    return apps()


def browser(client: TestClient, address: str = "testclient") -> TestClient:
    """Another browser on the same app, with no cookies yet (a learner of its own)."""
    return TestClient(client.app, client=(address, 50000))


def store_of(client: TestClient) -> RunStore:
    store: RunStore = client.app.state.runs.store
    return store


def learner_id(client: TestClient) -> str:
    return str(client.get("/api/me").json()["learner"])


def named(client: TestClient, name: str) -> TestClient:
    assert client.post("/api/me", json={"name": name}).status_code == 200
    return client


def make_class(client: TestClient, name: str = "PyTorch, Tuesday") -> dict[str, Any]:
    response = client.post("/api/classes", json={"name": name})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


def join(client: TestClient, code: str) -> dict[str, Any]:
    response = client.post("/api/classes/join", json={"code": code})
    assert response.status_code == 200, response.text
    return dict(response.json())


def view(client: TestClient, class_id: str) -> dict[str, Any]:
    response = client.get(f"/api/classes/{class_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def run_of(client: TestClient, task: str = "linear-regression") -> str:
    """A queued run owned by ``client``'s learner, straight in the store (nothing trains)."""
    return store_of(client).create(task, {"epochs": 5}, owner=learner_id(client)).id


# -- making a class -----------------------------------------------------------------------------


def test_a_teacher_makes_a_class_with_a_code_a_join_link_and_a_private_teacher_link(
    teacher: TestClient,
) -> None:
    made = make_class(teacher, "  Intro to PyTorch  ")
    assert made["name"] == "Intro to PyTorch"
    assert re.fullmatch(r"[0-9a-f]{32}", made["id"])
    assert CODE.fullmatch(made["code"]), made["code"]
    assert made["join_url"] == f"/join/{made['code']}"
    assert made["url"] == f"/classes/{made['id']}"
    token = made["teacher_url"].removeprefix("/classes/teach/")
    assert re.fullmatch(r"[\w-]{22}", token)
    listed = teacher.get("/api/classes").json()["classes"]
    assert listed == [
        {
            "id": made["id"],
            "name": "Intro to PyTorch",
            "code": made["code"],
            "role": "teacher",
            "url": made["url"],
            "join_url": made["join_url"],
        }
    ]
    with store_of(teacher).engine.connect() as conn:
        row = conn.execute(select(ClassRow)).one()
    assert token not in " ".join(str(value) for value in row)  # only its hash is kept
    page = teacher.get(made["url"]).text
    assert made["code"] in page and token not in page  # shown once, at creation only
    assert "teacher link" in page


@pytest.mark.parametrize(
    "name",
    ["x" * 81, "", "   ", "bell\x07", "two\nlines", "\u202eevil", 7],
    ids=["81-chars", "empty", "spaces", "bell", "newline", "rtl-override", "not-text"],
)
def test_a_bad_class_name_is_a_422_naming_the_80_limit(teacher: TestClient, name: Any) -> None:
    response = teacher.post("/api/classes", json={"name": name})
    assert response.status_code == 422
    if isinstance(name, str):
        assert "80" in response.json()["detail"], response.json()
    assert teacher.get("/api/classes").json()["classes"] == []


def test_an_80_character_name_is_fine(teacher: TestClient) -> None:
    assert make_class(teacher, "é" * 80)["name"] == "é" * 80


def test_past_classes_max_per_teacher_a_class_is_a_429_naming_it(
    apps: Callable[..., TestClient],
) -> None:
    teacher = apps(classes_max_per_teacher=2)
    make_class(teacher, "one")
    make_class(teacher, "two")
    refused = teacher.post("/api/classes", json={"name": "three"})
    assert refused.status_code == 429
    assert refused.json()["limit"] == "classes_max_per_teacher"
    assert "classes_max_per_teacher = 2" in refused.json()["detail"]
    assert refused.headers["retry-after"]
    assert len(teacher.get("/api/classes").json()["classes"]) == 2
    other = browser(teacher)  # another learner has classes of their own to make
    make_class(other, "three")
    form = teacher.post("/classes/new", data={"name": "four"})
    assert form.status_code == 429 and "classes_max_per_teacher" in form.text


def test_the_create_form_shows_the_teacher_link_once_and_refuses_a_bad_name_in_place(
    teacher: TestClient,
) -> None:
    page = teacher.get("/classes/new")
    assert page.status_code == 200 and 'action="/classes/new"' in page.text
    refused = teacher.post("/classes/new", data={"name": "x" * 81})
    assert refused.status_code == 422
    assert "1 to 80 characters, not 81" in refused.text and 'aria-invalid="true"' in refused.text
    made = teacher.post("/classes/new", data={"name": "Evening class", "my_name": "Ms Rivera"})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    link = re.search(r'value="(http://testserver/classes/teach/[\w-]{22})"', made.text)
    assert link is not None, made.text
    assert "shown only now" in made.text
    (info,) = teacher.get("/api/classes").json()["classes"]
    assert info["code"] in made.text and info["name"] == "Evening class"
    assert teacher.get("/api/me").json()["name"] == "Ms Rivera"
    # The link works: it makes another browser a teacher of the class.
    other = browser(teacher)
    assert other.post(link.group(1), follow_redirects=False).status_code == 303
    assert view(other, info["id"])["role"] == "teacher"


# -- joining and leaving ------------------------------------------------------------------------


def test_a_join_link_asks_first_and_its_button_joins_with_a_name(teacher: TestClient) -> None:
    named(teacher, "Ms Rivera")
    made = make_class(teacher, "Tuesday")
    learner = browser(teacher)
    url = made["join_url"]
    for _ in range(2):  # a link preview opens it too: nothing changes
        page = learner.get(url)
        assert page.status_code == 200
        assert "Join class" in page.text and "Tuesday" in page.text and "Ms Rivera" in page.text
        assert 'name="my_name"' in page.text  # no name yet: the page asks for one
    assert learner.get("/api/classes").json()["classes"] == []
    joined = learner.post(url, data={"my_name": "Ada"}, follow_redirects=False)
    assert joined.status_code == 303 and joined.headers["location"] == made["url"]
    assert learner.get("/api/me").json()["name"] == "Ada"
    assert [c["role"] for c in learner.get("/api/classes").json()["classes"]] == ["learner"]
    assert "already in this class" in learner.get(url).text
    members = view(teacher, made["id"])["members"]
    assert [(m["name"], m["role"]) for m in members] == [
        ("Ms Rivera", "teacher"),
        ("Ada", "learner"),
    ]


def test_a_bad_name_on_the_join_page_is_refused_in_place_and_joins_no_one(
    teacher: TestClient,
) -> None:
    made = make_class(teacher)
    learner = browser(teacher)
    refused = learner.post(made["join_url"], data={"my_name": "x" * 41})
    assert refused.status_code == 422 and "1 to 40 characters" in refused.text
    assert learner.get("/api/classes").json()["classes"] == []


def test_the_api_joins_by_code_typed_in_any_case_with_or_without_the_dash(
    teacher: TestClient,
) -> None:
    made = make_class(teacher, "Tuesday")
    a, b = browser(teacher), browser(teacher)
    answer = join(a, made["code"].lower().replace("-", ""))
    assert answer == {"id": made["id"], "name": "Tuesday", "role": "learner", "url": made["url"]}
    assert join(b, f" {made['code'][:4]} {made['code'][5:]} ".lower())["role"] == "learner"
    assert join(a, made["code"])["role"] == "learner"  # joining again changes nothing
    assert join(teacher, made["code"])["role"] == "teacher"  # a teacher stays a teacher
    assert len(view(teacher, made["id"])["members"]) == 3


def test_the_classes_page_form_joins_and_a_wrong_code_is_a_404_that_says_so(
    teacher: TestClient,
) -> None:
    made = make_class(teacher, "Tuesday")
    learner = browser(teacher)
    page = learner.get("/classes")
    assert page.status_code == 200 and 'action="/classes/join"' in page.text
    assert "You are in no class yet" in page.text
    wrong = learner.post("/classes/join", data={"code": "ZZZZ-ZZZZ"})
    assert wrong.status_code == 404 and "No class has the code" in wrong.text
    joined = learner.post("/classes/join", data={"code": made["code"]}, follow_redirects=False)
    assert joined.status_code == 303 and joined.headers["location"] == made["url"]
    assert "Tuesday" in learner.get("/classes").text
    api = learner.post("/api/classes/join", json={"code": "ZZZZ-ZZZZ"})
    assert api.status_code == 404 and "join code" in api.json()["detail"]
    link = learner.get("/join/ZZZZ-ZZZZ")
    assert link.status_code == 404 and "no such class" in link.text


def test_the_teacher_link_asks_then_makes_that_browser_a_teacher(teacher: TestClient) -> None:
    made = make_class(teacher)
    colleague = browser(teacher)
    url = made["teacher_url"]
    page = colleague.get(url)
    assert page.status_code == 200 and "Teach class" in page.text
    assert colleague.get("/api/classes").json()["classes"] == []  # asking changed nothing
    done = colleague.post(url, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == made["url"]
    assert view(colleague, made["id"])["role"] == "teacher"
    for token in ("A" * 22, "nope", "x" * 200):
        assert colleague.get(f"/classes/teach/{token}").status_code == 404
        assert colleague.post(f"/classes/teach/{token}").status_code == 404


def test_a_learner_who_left_is_no_longer_shown_nor_their_runs(teacher: TestClient) -> None:
    made = make_class(teacher)
    a, b = named(browser(teacher), "Ada"), named(browser(teacher), "Bo")
    join(a, made["code"])
    join(b, made["code"])
    a_run, b_run = run_of(a), run_of(b)
    assert {r["id"] for r in view(teacher, made["id"])["runs"]} == {a_run, b_run}
    page = a.get(made["url"]).text
    assert 'id="leave-class"' in page and 'id="class-runs"' not in page
    left = a.post(f"/api/classes/{made['id']}/leave")
    assert left.status_code == 200 and left.json() == {"id": made["id"], "left": True}
    after = view(teacher, made["id"])
    assert [r["id"] for r in after["runs"]] == [b_run]
    assert "Ada" not in [m["name"] for m in after["members"]]
    assert a.get("/api/classes").json()["classes"] == []
    assert a.get(f"/api/classes/{made['id']}").status_code == 403
    refused = teacher.post(f"/api/runs/{a_run}/cancel")
    assert refused.status_code == 403  # no longer the teacher of that learner
    # The page's Leave button (a form) does the same, then goes back to /classes.
    gone = b.post(f"/classes/{made['id']}/leave", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/classes"
    assert view(teacher, made["id"])["runs"] == []
    assert a.post(f"/api/classes/{made['id']}/leave").json()["left"] is False


def test_the_only_teacher_cannot_leave_but_one_of_two_can(teacher: TestClient) -> None:
    made = make_class(teacher)
    refused = teacher.post(f"/api/classes/{made['id']}/leave")
    assert refused.status_code == 409 and "only teacher" in refused.json()["detail"]
    colleague = browser(teacher)
    colleague.post(made["teacher_url"])
    assert colleague.post(f"/api/classes/{made['id']}/leave").json()["left"] is True
    assert teacher.get(f"/api/classes/{made['id']}").json()["role"] == "teacher"


# -- the class page: runs, members, access -------------------------------------------------------


def test_a_teacher_sees_both_learners_runs_and_cancels_one_a_learner_cannot(
    teacher: TestClient,
) -> None:
    named(teacher, "Ms Rivera")
    made = make_class(teacher, "Tuesday")
    a, b = named(browser(teacher), "Ada"), browser(teacher)  # B gives no name
    before = run_of(a)  # launched before joining: A's alone
    join(a, made["code"])
    join(b, made["code"])
    launched = a.post(
        "/api/runs", json={"task": "linear-regression", "config": {"stage": "nn", "epochs": 5}}
    )
    assert launched.status_code == 202
    a_run = launched.json()["id"]
    finished(a, a_run)
    b_run = run_of(b)
    seen = view(teacher, made["id"])
    assert seen["role"] == "teacher" and seen["code"] == made["code"]
    runs = {r["id"]: r for r in seen["runs"]}
    assert set(runs) == {a_run, b_run} and before not in runs
    assert [r["id"] for r in seen["runs"]] == [b_run, a_run]  # newest first
    b_name = f"learner {learner_id(b)[:6]}"
    assert runs[a_run]["owner_name"] == "Ada" and runs[b_run]["owner_name"] == b_name
    assert runs[a_run]["status"] == "completed" and runs[a_run]["progress"] == 1.0
    assert runs[a_run]["config_text"].startswith("stage=nn · epochs=5")
    assert runs[b_run]["read_only"] is False and runs[b_run]["mine"] is False
    assert [(m["name"], m["role"]) for m in seen["members"]] == [
        ("Ms Rivera", "teacher"),
        ("Ada", "learner"),
        (b_name, "learner"),
    ]
    assert "learner" not in runs[a_run] and "owner" not in runs[a_run]  # no learner ids
    # A learner of the class cannot cancel another's run; the teacher can.
    refused = a.post(f"/api/runs/{b_run}/cancel")
    assert refused.status_code == 403 and refused.json()["read_only"] is True
    assert store_of(teacher).get(b_run).status == "queued"
    cancelled = teacher.post(f"/api/runs/{b_run}/cancel")
    assert cancelled.status_code == 200 and cancelled.json() == {"status": "cancelled"}
    statuses = {r["id"]: r["status"] for r in view(teacher, made["id"])["runs"]}
    assert statuses == {a_run: "completed", b_run: "cancelled"}
    # The teacher cannot cancel the run A launched before joining.
    assert teacher.post(f"/api/runs/{before}/cancel").status_code == 403
    # A learner's own view: the teachers and their own runs in the class, nobody else's.
    own = view(a, made["id"])
    assert own["role"] == "learner"
    assert [m["name"] for m in own["members"]] == ["Ms Rivera"]
    assert [r["id"] for r in own["runs"]] == [a_run]


def test_best_accuracy_is_the_highest_val_accuracy_else_accuracy(teacher: TestClient) -> None:
    made = make_class(teacher)
    learner = browser(teacher)
    join(learner, made["code"])
    store = store_of(teacher)
    held_out, trained, neither = run_of(learner), run_of(learner), run_of(learner)
    store.add_metrics(
        held_out,
        [(1, "val_accuracy", 0.5), (2, "val_accuracy", 0.9), (3, "val_accuracy", 0.7)]
        + [(3, "accuracy", 0.99)],
    )
    store.add_metrics(trained, [(1, "accuracy", 0.4), (2, "accuracy", 0.6), (3, "accuracy", 0.55)])
    store.add_metrics(neither, [(1, "loss", 0.3)])
    best = {r["id"]: r["best_accuracy"] for r in view(teacher, made["id"])["runs"]}
    assert best == {held_out: 0.9, trained: 0.6, neither: None}
    page = teacher.get(made["url"]).text
    assert ">0.9<" in page and ">0.6<" in page


def test_the_space_used_sums_the_runs_stored_bytes_and_counts_those_still_training(
    teacher: TestClient,
) -> None:
    made = make_class(teacher)
    learner = browser(teacher)
    join(learner, made["code"])
    store = store_of(teacher)
    first, second, running = run_of(learner), run_of(learner), run_of(learner)
    for run_id, size in ((first, 1024 * 1024), (second, 512 * 1024)):
        store.finish(run_id, "completed")
        store.set_stored_bytes(run_id, size)
    seen = view(teacher, made["id"])
    assert seen["stored_bytes"] == 1536 * 1024 and seen["uncounted"] == 1
    assert seen["stored_text"] == "1.5 MB"
    assert {r["id"]: r["stored_bytes"] for r in seen["runs"]} == {
        first: 1024 * 1024,
        second: 512 * 1024,
        running: 0,  # still queued: counted as it is now (no files, no metrics yet)
    }
    page = teacher.get(made["url"]).text
    assert "1.5 MB" in page and "still training" in page


def test_the_table_lists_the_newest_runs_and_the_space_used_counts_them_all(
    apps: Callable[..., TestClient],
) -> None:
    teacher = apps(runs_max_listed=2)
    made = make_class(teacher)
    learner = browser(teacher)
    join(learner, made["code"])
    store = store_of(teacher)
    ids = [run_of(learner) for _ in range(3)]
    for run_id in ids:
        store.finish(run_id, "completed")
        store.set_stored_bytes(run_id, 1000)
    seen = view(teacher, made["id"])
    assert [r["id"] for r in seen["runs"]] == ids[:0:-1]  # the newest two
    assert seen["stored_bytes"] == 3000 and seen["uncounted"] == 0
    assert "The table shows the newest 2 runs" in teacher.get(made["url"]).text


def test_size_text_reads_in_powers_of_1024() -> None:
    assert size_text(0) == "0 bytes"
    assert size_text(1023) == "1023 bytes"
    assert size_text(1536) == "1.5 KB"
    assert size_text(5 * 1024**2) == "5.0 MB"
    assert size_text(3 * 1024**3 // 2) == "1.5 GB"
    assert size_text(2 * 1024**4) == "2.0 TB"


def test_non_members_get_a_403_that_says_how_to_join_and_unknown_classes_a_404(
    teacher: TestClient,
) -> None:
    made = make_class(teacher)
    stranger = browser(teacher)
    for url in (made["url"], f"/api/classes/{made['id']}"):
        refused = stranger.get(url)
        assert refused.status_code == 403, url
        assert "join code" in refused.text
    assert made["code"] not in stranger.get(made["url"]).text
    for class_id in ("0" * 32, "not-a-class", "A" * 32):
        assert stranger.get(f"/classes/{class_id}").status_code == 404
        assert stranger.get(f"/api/classes/{class_id}").status_code == 404
        assert stranger.post(f"/api/classes/{class_id}/leave").status_code == 404


def test_the_class_page_shows_the_code_members_runs_and_the_picked_runs(
    teacher: TestClient,
) -> None:
    made = make_class(teacher, "Tuesday")
    learner = named(browser(teacher), "Ada")
    join(learner, made["code"])
    first, second = run_of(learner), run_of(learner)
    page = teacher.get(f"{made['url']}?runs={first},nonsense,{first}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    text = page.text
    assert 'class="join-code" id="join-code"' in text and made["code"] in text
    assert f"http://testserver{made['join_url']}" in text
    assert f'data-run="{first}"' in text and f'data-run="{second}"' in text
    assert f'value="{first}" aria-label="Compare run {first} of Ada" checked' in text
    assert f'value="{second}" aria-label="Compare run {second} of Ada">' in text
    assert f'href="/lessons/tracking?runs={first}"' in text
    assert text.count('class="cancel-run"') == 2
    assert '<script type="application/json" id="class-data">' in text
    assert "/static/js/classes." in text
    assert "<script>" not in text  # the CSP allows no inline script


def test_names_with_html_are_shown_escaped_on_every_class_page(teacher: TestClient) -> None:
    named(teacher, HOSTILE)
    made = make_class(teacher, f"Class {HOSTILE}")
    learner = named(browser(teacher), HOSTILE)
    join_page = browser(teacher).get(made["join_url"])
    join(learner, made["code"])
    run_of(learner)
    pages = [
        teacher.get(made["url"]),
        learner.get(made["url"]),
        teacher.get("/classes"),
        learner.get("/classes"),
        join_page,
        browser(teacher).get(made["teacher_url"]),
    ]
    for page in pages:
        assert page.status_code == 200, page.url
        assert HOSTILE not in page.text, page.url
        assert HOSTILE_ESCAPED in page.text, page.url
    members = view(teacher, made["id"])["members"]
    assert [m["name"] for m in members] == [HOSTILE, HOSTILE]  # JSON carries the text as typed


# -- guessing codes -----------------------------------------------------------------------------


def test_join_codes_guessed_at_speed_are_429_on_the_11th_attempt(teacher: TestClient) -> None:
    made = make_class(teacher)
    guesser = browser(teacher, "192.0.2.10")
    for attempt in range(10):
        wrong = guesser.post("/api/classes/join", json={"code": f"ZZZZ-ZZ{attempt:02d}"})
        assert wrong.status_code == 404, attempt
    refused = guesser.post("/api/classes/join", json={"code": made["code"]})  # even the right one
    assert refused.status_code == 429
    assert refused.json()["limit"] == "classes_max_joins_per_minute"
    assert "classes_max_joins_per_minute = 10" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert guesser.get("/api/classes").json()["classes"] == []
    for again in (guesser.get(made["join_url"]), guesser.post("/classes/join", data={"code": "x"})):
        assert again.status_code == 429 and "classes_max_joins_per_minute" in again.text
    # The same learner from another address is still at their limit.
    token = guesser.get("/api/me").json()["token"]
    elsewhere = browser(teacher, "192.0.2.11")
    moved = elsewhere.post(
        "/api/classes/join", json={"code": made["code"]}, headers={"X-Explorer-Learner": token}
    )
    assert moved.status_code == 429
    # Another learner elsewhere joins as usual.
    assert join(browser(teacher, "192.0.2.12"), made["code"])["role"] == "learner"


def test_guesses_from_one_address_are_counted_across_learners_and_pages(
    apps: Callable[..., TestClient],
) -> None:
    teacher = apps(classes_max_joins_per_minute_per_address=10)
    made = make_class(teacher)
    address = "198.51.100.7"
    for attempt in range(10):  # a new learner (no cookie) each time, by every way in
        guesser = browser(teacher, address)
        code = f"ZZZZ-ZZ{attempt:02d}"
        way = attempt % 3
        if way == 0:
            answer = guesser.post("/api/classes/join", json={"code": code})
        elif way == 1:
            answer = guesser.get(f"/join/{code}")
        else:
            answer = guesser.post("/classes/join", data={"code": code})
        assert answer.status_code == 404, (attempt, answer.text)
    fresh = browser(teacher, address)
    refused = fresh.post("/api/classes/join", json={"code": made["code"]})
    assert refused.status_code == 429
    assert refused.json()["limit"] == "classes_max_joins_per_minute_per_address"
    # Another address is not held back by this one's guesses.
    assert join(browser(teacher, "198.51.100.8"), made["code"])["role"] == "learner"


def test_a_whole_class_behind_one_address_joins_by_link(teacher: TestClient) -> None:
    """Thirty learners of a school behind one address each open the join link and join (two
    requests each): well within classes_max_joins_per_minute_per_address (120)."""
    made = make_class(teacher)
    for _ in range(30):
        learner = browser(teacher, "203.0.113.50")
        assert learner.get(made["join_url"]).status_code == 200
        joined = learner.post(made["join_url"], follow_redirects=False)
        assert joined.status_code == 303, joined.text
    assert len(teacher.get(f"/api/classes/{made['id']}").json()["members"]) == 31


# -- the pages around it ------------------------------------------------------------------------


def test_the_top_bar_links_the_classes_page(teacher: TestClient) -> None:
    home = teacher.get("/").text
    assert 'href="/classes"' in home
    page = teacher.get("/classes").text
    assert 'href="/classes" aria-current="page"' in page
    assert 'action="/classes/new"' in page and 'action="/classes/join"' in page


def test_a_form_on_another_site_cannot_join_make_or_leave_a_class(teacher: TestClient) -> None:
    made = make_class(teacher)
    victim = browser(teacher)
    join(victim, made["code"])
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    outsider = browser(teacher)
    attempts = [
        outsider.post(made["join_url"], headers=evil),
        outsider.post(made["teacher_url"], headers=evil),
        outsider.post("/classes/new", data={"name": "spam"}, headers=evil),
        victim.post(f"/classes/{made['id']}/leave", headers=evil),
        victim.post(f"/api/classes/{made['id']}/leave", headers=evil),
    ]
    assert [a.status_code for a in attempts] == [403] * len(attempts)
    assert outsider.get("/api/classes").json()["classes"] == []
    assert [c["role"] for c in victim.get("/api/classes").json()["classes"]] == ["learner"]
