"""The Saving and loading lesson in a real browser: a run trained through the API, its checkpoint
downloaded from the page and uploaded back through the file input (inspected, then loaded and
evaluated), a resume launched from the page and followed until its curve joins the original's,
the state in the URL, and a phone."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import torch
from playwright.sync_api import Page, expect

LESSON = "/lessons/saving-loading"
PHONE_WIDTH = 390
TRAINING_TIMEOUT_MS = 120_000  # small CNN runs on a busy two-core machine
STEPS_PER_EPOCH = 45  # 1,438 training digits in batches of 32


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def train(base_url: str, config: dict, page: Page | None = None) -> dict:
    """A digits-cnn run through the API, waited for; the run with its metrics. With ``page``, the
    run is that browser's learner's (their signed token in the script's header), so they may
    resume it."""
    headers = {}
    if page is not None:
        headers["X-Explorer-Learner"] = page.request.get(f"{base_url}/api/me").json()["token"]
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as api:
        response = api.post("/api/runs", json={"task": "digits-cnn", "config": config})
        assert response.status_code == 202, response.text
        run_id = response.json()["id"]
        deadline = time.monotonic() + TRAINING_TIMEOUT_MS / 1000
        while (run := api.get(f"/api/runs/{run_id}").json())["status"] not in (
            "completed",
            "failed",
            "cancelled",
            "interrupted",
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} did not finish in time")
            time.sleep(0.2)
    assert run["status"] == "completed", run
    return run


def test_download_upload_inspect_evaluate_and_resume_a_run(
    page: Page, plots, problems, base_url: str, tmp_path: Path
) -> None:
    run = train(base_url, {"epochs": 2}, page)
    page.goto(f"{LESSON}?run={run['id']}")
    plots.wait_drawn(page, "fig-chain", "fig-resume", "fig-difference")
    expect(page.locator("#run-status-text")).to_have_text("completed")
    expect(page.locator("#run")).to_have_value(run["id"])

    # The run's checkpoint, downloaded through the page's link: plain torch opens it.
    with page.expect_download() as download:
        page.locator("#download-checkpoint").click()
    path = tmp_path / "checkpoint.pth"
    download.value.save_as(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["task"] == "digits-cnn"

    # Uploaded back through the file input: the inspect table lists its keys and shapes.
    page.locator("#upload-file").set_input_files(str(path))
    expect(page.locator("#upload-tensors")).to_contain_text("fc.weight")
    keys = page.locator("#upload-tensors tbody tr td:first-child").all_inner_texts()
    assert keys == [*checkpoint["model"], "total"]
    shapes = page.locator("#upload-tensors tbody tr td:nth-child(2)").all_inner_texts()[:-1]
    assert shapes == [" × ".join(map(str, t.shape)) for t in checkpoint["model"].values()]
    total = sum(t.numel() for t in checkpoint["model"].values())
    expect(page.locator("#upload-total")).to_contain_text(f"{total} numbers")
    expect(page.locator("#upload-facts")).to_contain_text("epoch 2")
    buffers = page.locator("#upload-buffers tbody tr")
    expect(buffers).to_have_count(len(checkpoint["optimizer"]["state"]))
    expect(buffers.first).to_contain_text("momentum_buffer")

    # Load into the model and evaluate: the accuracy the run logged at its last epoch.
    page.locator("#upload-evaluate").click()
    expect(page.locator("#upload-accuracy")).to_be_visible()
    shown = float(page.locator("#upload-accuracy").inner_text().rstrip("%"))
    logged = run["metrics"]["val_accuracy"][-1][1] * 100
    assert shown == pytest.approx(logged, abs=1e-3)
    expect(page.locator("#lesson-error")).to_be_hidden()

    # Into another task's model it does not fit: the 422's lists, and the banner says why.
    problems.expect(422, "/api/checkpoints/evaluate")
    page.locator("#upload-task").select_option("transfer")
    page.locator("#upload-evaluate").click()
    expect(page.locator("#lesson-error")).to_contain_text("does not fit transfer")
    missing = page.locator("#upload-evaluation").get_by_text("Missing keys")
    expect(missing).to_be_visible()
    expect(page.locator("#upload-evaluation")).to_contain_text("features.0.weight")
    expect(page.locator("#upload-evaluation")).to_contain_text("conv.weight")  # unexpected
    page.locator("#upload-task").select_option("digits-cnn")
    page.locator("#upload-evaluate").click()
    expect(page.locator("#upload-accuracy")).to_be_visible()
    expect(page.locator("#lesson-error")).to_be_hidden()

    # The resume controls live in the URL; the arrow keys step the epochs.
    page.locator("#epochs").fill("1")
    page.wait_for_function("() => location.search.includes('epochs=1')")
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('epochs=2')")
    page.locator("#optimizer-box").uncheck()
    page.wait_for_function("() => location.search.includes('optimizer=off')")
    page.locator("#optimizer-box").check()
    page.wait_for_function("() => location.search.includes('optimizer=on')")

    # Resume: a new run from the checkpoint, followed live until it completes.
    page.locator("#resume").click()
    page.wait_for_url(lambda url: "run=" in url and run["id"] not in url)
    resumed = state(page)["run"][0]
    assert state(page)["epochs"] == ["2"] and state(page)["optimizer"] == ["on"]
    expect(page.locator("#run-status-text")).to_have_text("completed", timeout=TRAINING_TIMEOUT_MS)
    plots.wait_drawn(page, "fig-chain")
    page.wait_for_function(
        "n => document.getElementById('fig-chain').data[1].x.length === n",
        arg=2 * STEPS_PER_EPOCH,
    )
    original, continued = plots.traces(page, "fig-chain")
    assert original["x"] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert continued["x"][0] == original["x"][-1] + 1  # the curve joins the original's
    assert continued["x"][-1] == 4 * STEPS_PER_EPOCH
    assert "epochs 3–4" in continued["name"] and "+ optimizer state" in continued["name"]
    with httpx.Client(base_url=str(base_url), timeout=30) as api:
        stored = api.get(f"/api/runs/{resumed}").json()
    assert stored["resume_from"] == run["id"] and stored["config"]["resume_optimizer"] is True
    assert [v for _, v in stored["metrics"]["epoch"]] == [3, 4]
    assert continued["y"] == pytest.approx([v for _, v in stored["metrics"]["loss"]])
    assert state(page)["run"] == [resumed]

    page.reload()  # the shared link opens the same view
    expect(page.locator("#run")).to_have_value(resumed)
    expect(page.locator("#epochs")).to_have_value("2")
    expect(page.locator("#optimizer-box")).to_be_checked()


def test_the_phone_layout_has_no_horizontal_overflow(phone_page: Page, plots, base_url) -> None:
    run = train(base_url, {"epochs": 1})
    phone_page.goto(f"{LESSON}?run={run['id']}")
    plots.wait_drawn(phone_page, "fig-chain", "fig-resume", "fig-difference")
    expect(phone_page.locator("#run-tensors")).to_contain_text("conv.weight")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH + 1, f"{LESSON} is {width}px wide on a {PHONE_WIDTH}px screen"
