"""The training-pipeline lesson in a real browser: step epochs with the keys, read the figures."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

LESSON = "/lessons/training-pipeline"
PHONE_WIDTH = 390


def open_lesson(page: Page, plots, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    expect(page.locator("#controls")).to_have_attribute("data-ready", "true")
    plots.wait_drawn(page)


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def at_epoch(epoch: int) -> re.Pattern[str]:
    """A URL whose query says epoch=<epoch>."""
    return re.compile(rf"[?&]epoch={epoch}(&|$)")


def twin(base_url: str, query: str) -> dict:
    response = httpx.get(f"{base_url}/api/lessons/training-pipeline/view?{query}", timeout=10)
    assert response.status_code == 200
    return response.json()["result"]


def test_arrow_keys_step_the_epoch_and_the_url_and_figures_follow(
    page: Page, plots, base_url: str
) -> None:
    open_lesson(page, plots, "epochs=30&learning_rate=0.4&seed=2&epoch=5")
    expected = twin(base_url, "epochs=30&learning_rate=0.4&seed=2&epoch=7")
    page.locator("h1").click()  # focus outside any input: the page's keys apply
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(at_epoch(7))
    assert state(page)["epoch"] == ["7"] and state(page)["seed"] == ["2"]
    plots.wait_for_number(page, "#w-value", expected["current"]["w"], 1e-5)
    plots.wait_for_number(page, "#grad-w-value", expected["current"]["grad_w"], 1e-5)
    w, b = expected["current"]["w"], expected["current"]["b"]
    plots.wait_for_values(page, "fig-fit", [b, w + b], index=3, tol=1e-5)
    loss_marker = plots.traces(page, "fig-loss")[-1]
    assert loss_marker["x"] == [7]
    surface = plots.traces(page, "fig-surface")
    assert surface[0]["type"] == "contour"
    assert surface[-1]["x"][0] == pytest.approx(w, abs=1e-6)
    expect(page.locator("#step-readout")).to_contain_text("Step with lr = 0.4")

    page.keyboard.press("Home")
    expect(page).to_have_url(at_epoch(0))
    expect(page.locator("#step-readout")).to_contain_text("no step yet")
    page.keyboard.press("End")
    expect(page).to_have_url(at_epoch(30))
    page.locator("#epoch-prev").click()
    expect(page).to_have_url(at_epoch(29))

    page.reload()  # the epoch lives in the URL
    expect(page.locator("#epoch")).to_have_value("29")
    expect(page.locator("h2").first).to_contain_text("Epoch 29 of 30")


def test_controls_pull_the_epoch_back_name_bad_bounds_and_show_divergence(
    page: Page, plots, problems
) -> None:
    problems.expect(422, f"{LESSON}/partial")
    open_lesson(page, plots, "epoch=80")
    page.locator("#epochs").fill("50")
    expect(page).to_have_url(at_epoch(50))
    assert state(page)["epochs"] == ["50"]
    expect(page.locator("#epoch")).to_have_attribute("max", "50")
    expect(page.locator("h2").first).to_contain_text("Epoch 50 of 50")
    stages = plots.traces(page, "fig-stages")
    assert [t["name"] for t in stages] == ["manual", "autograd", "nn"]
    for trace in stages[:2]:
        assert max(abs(a - b) for a, b in zip(trace["y"], stages[2]["y"], strict=True)) < 1e-5
    page.locator('input[name="stage"][value="manual"]').check()
    expect(page.locator('.tp-stage[data-stage="manual"]')).to_have_class("tp-stage current")
    expect(page.locator('.tp-stage[data-stage="shared"]')).to_have_class("tp-stage tp-loop")
    expect(page.locator('#stages-table tr[data-stage="manual"]')).to_have_class("current")

    page.locator("#learning_rate").fill("3")
    banner = page.locator("#lesson-error")
    expect(banner).to_contain_text("learning_rate must be above 0 and at most 1")
    page.locator("#learning_rate").fill("0.95")
    expect(banner).to_be_hidden()
    expect(page.locator("#divergence")).to_contain_text("above 2 / λmax")
    assert state(page)["learning_rate"] == ["0.95"]


def test_phone_layout_stacks_the_stages_without_overflow(phone_page: Page, plots) -> None:
    open_lesson(phone_page, plots)
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH
    columns = phone_page.locator(".tp-stage")
    expect(columns).to_have_count(4)  # the three stages, then the loop stages 2 and 3 share
    boxes = [columns.nth(i).bounding_box() for i in range(3)]
    assert all(box is not None for box in boxes)
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]  # type: ignore[index]
    assert abs(boxes[0]["x"] - boxes[1]["x"]) < 1  # type: ignore[index]


def test_train_as_a_run_launches_the_chosen_stage_and_opens_its_page(
    page: Page, plots, base_url: str
) -> None:
    open_lesson(page, plots, "stage=manual&epochs=30&learning_rate=0.2&seed=4")
    page.locator("#train-run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+"))
    run_id = urlsplit(page.url).path.rsplit("/", 1)[1]
    expect(page.locator("#run-status")).to_have_text("completed", timeout=60_000)
    run = httpx.get(f"{base_url}/api/runs/{run_id}").json()
    assert run["task"] == "linear-regression"
    assert run["config"] == {"stage": "manual", "epochs": 30, "learning_rate": 0.2, "seed": 4}
    # The run retraces the lesson's own path: the same last weight as the page's twin.
    lesson = twin(base_url, "stage=manual&epochs=30&learning_rate=0.2&seed=4")
    assert run["metrics"]["w"][-1][1] == pytest.approx(lesson["stages"]["manual"]["w"][-1])
