"""A class in real browsers (issue 16, items 2 and 3): a teacher and learners A and B, each in a
browser context of their own. The teacher makes the class, A joins by code on a phone and B by
the link, A launches a run; B opens it read-only and cannot cancel it (403); the teacher's live
table shows both learners' runs and cancels one; and A's identity link makes a fourth browser A.
"""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import DESKTOP, PHONE, Problems, _watched_page

CLASS_NAME = "Tuesday <i>PyTorch</i>"  # names are typed as is and shown as text, never as HTML
A_NAME = "Ada <b>&amp; co</b>"
B_NAME = "Bo <img src=x>"
TINY_RUN = "/runs?task=linear-regression&stage=nn&epochs=5"
# B's run trains for minutes unless cancelled: the teacher cancels it from the class table.
LONG_RUN = {"task": "digits-cnn", "config": {"epochs": 50, "batch_size": 4}}
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


def launch_by_fetch(page: Page, body: dict) -> str:
    """A run launched by the page's own script (as a learner's would), its id."""
    answer = page.evaluate(
        """async (body) => {
            const r = await fetch("/api/runs", {
                method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify(body),
            });
            return {status: r.status, body: await r.json()};
        }""",
        body,
    )
    assert answer["status"] == 202, answer
    return str(answer["body"]["id"])


def row(page: Page, run_id: str, field: str) -> Locator:
    return page.locator(f'#class-runs tr[data-run="{run_id}"] [data-field="{field}"]')


def test_a_teacher_sees_the_class_runs_live_and_cancels_one_learners_stay_apart(
    page: Page, browser: Browser, base_url: str, problems: Problems
) -> None:
    teacher = page
    a_context, a = _watched_page(browser, problems, PHONE)
    b_context, b = _watched_page(browser, problems, DESKTOP)
    contexts = [a_context, b_context]
    b_run = None
    try:
        # The teacher makes the class; the teacher link is shown once, with its warning.
        teacher.goto("/classes/new")
        teacher.get_by_label("Class name").fill(CLASS_NAME)
        teacher.locator("#create-my-name").fill("Ms Rivera")
        teacher.get_by_role("button", name="Make the class").click()
        expect(teacher.locator("#created-name")).to_have_text(CLASS_NAME)
        link = re.escape(base_url) + r"/classes/teach/[\w-]{22}$"
        expect(teacher.locator("#teacher-link")).to_have_value(re.compile(link))
        expect(teacher.locator(".panel.warn")).to_contain_text("shown only now")
        code = teacher.locator("#join-code").inner_text()
        assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", code), code
        join_link = teacher.locator("#join-link").inner_text()
        assert join_link == f"{base_url}/join/{code}"
        teacher.get_by_role("link", name="Open the class page").click()
        expect(teacher.locator("#class-name")).to_have_text(CLASS_NAME)
        expect(teacher.locator("#join-code")).to_have_text(code)
        class_url = teacher.url
        assert re.fullmatch(re.escape(base_url) + r"/classes/[0-9a-f]{32}", class_url)
        expect(teacher.locator("#no-runs")).to_be_visible()

        # A joins on a phone by typing the code, in lower case, and names themselves.
        a.goto("/classes")
        a.get_by_label("Join code").fill(code.lower())
        a.locator("#join-my-name").fill(A_NAME)
        a.locator("#join-my-name").press("Enter")
        expect(a).to_have_url(class_url)
        expect(a.locator("#members")).to_contain_text("Ms Rivera")
        expect(a.get_by_role("button", name="Leave this class")).to_be_visible()
        assert a.evaluate(FITS), "the class page scrolls sideways on a phone"

        # B opens the join link: it asks first, then the button joins.
        b.goto(join_link)
        expect(b.locator("#ask-name")).to_have_text(CLASS_NAME)
        b.locator("#ask-my-name").fill(B_NAME)
        b.get_by_role("button", name="Join this class").click()
        expect(b).to_have_url(class_url)

        # The teacher's page, never reloaded, lists both learners as they join.
        members = teacher.locator("#members li")
        expect(members).to_have_count(3)
        expect(members.nth(1)).to_contain_text(A_NAME)
        expect(members.nth(2)).to_contain_text(B_NAME)
        assert teacher.locator("#members b, #members img, h1 i").count() == 0

        # A launches a tiny run from /runs; B launches a long one.
        a.goto(TINY_RUN)
        a.get_by_role("button", name="Launch run").click()
        expect(a).to_have_url(re.compile(r"/runs/[0-9a-f]{32}$"))
        a_run = a.url.rsplit("/", 1)[1]
        b_run = launch_by_fetch(b, LONG_RUN)

        # B opens A's run by its link: read-only, no Cancel; B's cancel POST is a 403.
        b.goto(f"/runs/{a_run}")
        expect(b.locator("#read-only")).to_be_visible()
        expect(b.locator("#cancel-run")).to_have_count(0)
        problems.expect(403, f"/api/runs/{a_run}/cancel")
        refused = b.evaluate(
            """async (id) => {
                const r = await fetch(`/api/runs/${id}/cancel`, {method: "POST"});
                return {status: r.status, body: await r.json()};
            }""",
            a_run,
        )
        assert refused["status"] == 403, refused
        assert "another learner's" in refused["body"]["detail"]

        # The teacher's live table shows both runs with who launched them, then cancels B's.
        expect(row(teacher, a_run, "who")).to_have_text(A_NAME)
        expect(row(teacher, b_run, "who")).to_have_text(B_NAME)
        expect(teacher.locator("#no-runs")).to_be_hidden()
        first = teacher.locator("#class-runs tbody tr").first
        expect(first).to_have_attribute("data-run", b_run)  # newest first
        cancel = teacher.locator(f'#class-runs tr[data-run="{b_run}"] .cancel-run')
        cancel.focus()
        teacher.keyboard.press("Enter")
        expect(row(teacher, b_run, "status")).to_have_text("cancelled")
        expect(cancel).to_have_count(0)
        expect(row(teacher, a_run, "status")).to_have_text("completed")
        expect(row(teacher, a_run, "progress")).to_have_text("100%")

        # Ticking runs puts them in the URL and in the Compare link.
        for run_id in (a_run, b_run):
            teacher.locator(f'#class-runs tr[data-run="{run_id}"] .compare-pick').check()
        expect(teacher).to_have_url(f"{class_url}?runs={b_run},{a_run}")
        compare = teacher.get_by_role("link", name="Compare selected runs")
        expect(compare).to_have_attribute("href", f"/lessons/tracking?runs={b_run},{a_run}")
        teacher.reload()
        expect(teacher.locator(f'tr[data-run="{a_run}"] .compare-pick')).to_be_checked()
        expect(compare).to_have_attribute("href", f"/lessons/tracking?runs={b_run},{a_run}")

        # A's identity link, opened in a fourth browser, makes it A: it lists A's run.
        a.goto("/me")
        a.get_by_role("button", name="Make a one-time link").click()
        link_field = a.get_by_label("Your link")
        expect(link_field).to_have_value(re.compile(re.escape(base_url) + r"/me/claim/[\w-]{22}$"))
        identity = link_field.input_value()
        d_context, d = _watched_page(browser, problems, DESKTOP)
        contexts.append(d_context)
        d.goto(identity)
        d.get_by_role("button", name="Continue as this learner").click()
        expect(d).to_have_url(f"{base_url}/me")
        d.goto("/runs")
        expect(d.locator(f'#runs-table tr[data-run="{a_run}"]')).to_be_visible()
        expect(d.locator(f'#runs-table tr[data-run="{b_run}"]')).to_have_count(0)
        d.goto("/classes")
        expect(d.locator("#class-list")).to_contain_text(CLASS_NAME)
    finally:
        if b_run is not None:  # never leave a long run training for the next test
            b_context.request.post(f"{base_url}/api/runs/{b_run}/cancel")
        for context in contexts:  # the page fixture then fails the test on what any saw
            context.close()
