"""The Saving and loading page over HTTP: the worked example, a real run resumed through the
API (the chain, continuing steps and epochs, the files inspected and evaluated), bad input."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.jobs.classifier import DigitsCNN, digits_split
from app.lessons import saving
from tests.support import finished, launch

LESSON = "/lessons/saving-loading"
VIEW = "/api/lessons/saving-loading/view"


def values(points: list[list[float]]) -> list[float]:
    return [v for _, v in points]


def shown(markup: str) -> str:
    """The text a reader sees: tags dropped, entities decoded (code is highlighted markup)."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def resume(client: TestClient, run_id: str, config: dict[str, Any]) -> str:
    body = {"task": "digits-cnn", "config": config, "resume_from": run_id}
    response = client.post("/api/runs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_the_page_its_partial_and_its_json_twin_show_the_worked_example(
    client: TestClient,
) -> None:
    page = client.get(LESSON)
    assert page.status_code == 200
    for text in (
        'id="example-tensors"',
        "OrderedDict",
        "&lt;All keys matched successfully&gt;",
        "momentum_buffer",
        "Unsupported global",
        "app.jobs.classifier.DigitsCNN",
        'id="fig-resume"',
        'id="upload-file"',
        'id="train-run"',
    ):
        assert text in page.text, text
    assert 'torch.save(model.state_dict(), os.path.join(folder, "model_params.pth"))' in (
        shown(page.text)
    )
    partial = client.get(f"{LESSON}/partial?epochs=6&optimizer=off")
    assert partial.status_code == 200 and "<html" not in partial.text
    assert "RESUME_EPOCHS = 6" in shown(partial.text)
    assert "WITH_OPTIMIZER = False" in shown(partial.text)

    view = client.get(VIEW).json()
    example = saving.example()
    assert view["params"] == {"run": "", "epochs": 4, "optimizer": "on"}
    assert view["result"]["run"] is None and view["result"]["epochs_max"] == 50
    trip = view["result"]["example"]["round_trip"]
    assert trip["identical"] == trip["n"] == 359
    traces = view["figures"]["resume"]["data"]
    assert [len(t["x"]) for t in traces] == [184, 92, 92, 92]
    for trace, key in zip(traces, ("unbroken", "original", "with", "without"), strict=True):
        assert np.allclose(trace["y"], values(example["resume"][key]))
    # The continuation with the optimizer state lies on the unbroken run.
    assert np.array_equal(traces[2]["y"], traces[0]["y"][92:])
    difference = view["figures"]["difference"]["data"]
    assert max(abs(v) for v in difference[0]["y"]) == 0.0
    assert max(abs(v) for v in difference[1]["y"]) > 0.05


def test_a_run_resumed_through_the_api_continues_and_the_page_shows_the_chain(
    client: TestClient,
) -> None:
    first = launch(client, "digits-cnn", {"epochs": 2})
    assert finished(client, first)["status"] == "completed"
    with_state = resume(client, first, {"epochs": 2})
    without_state = resume(client, first, {"epochs": 2, "resume_optimizer": False})
    unbroken = launch(client, "digits-cnn", {"epochs": 4})
    runs = {i: finished(client, i) for i in (with_state, without_state, unbroken)}
    assert all(run["status"] == "completed" for run in runs.values())
    original = client.get(f"/api/runs/{first}").json()["metrics"]

    for run_id in (with_state, without_state):
        metrics = runs[run_id]["metrics"]
        assert metrics["loss"][0][0] == original["loss"][-1][0] + 1  # the steps carry on
        assert values(metrics["epoch"]) == [3, 4] and values(original["epoch"]) == [1, 2]
        assert runs[run_id]["config"]["epochs"] == 2 and runs[run_id]["resume_from"] == first
    # With the optimizer state, epochs 3-4 are the unbroken run's epochs 3-4; without, not.
    tail = np.array(values(runs[unbroken]["metrics"]["loss"])[len(original["loss"]) :])
    assert np.allclose(values(runs[with_state]["metrics"]["loss"]), tail, rtol=0, atol=1e-5)
    assert np.abs(np.array(values(runs[without_state]["metrics"]["loss"])) - tail).max() > 1e-3

    view = client.get(f"{VIEW}?run={with_state}&epochs=3&optimizer=off").json()
    run = view["result"]["run"]
    assert view["params"] == {"run": with_state, "epochs": 3, "optimizer": "off"}
    assert [m["id"] for m in run["family"]] == [first, with_state, without_state]
    assert [m["continuation"] for m in run["family"]] == [None, "with", "without"]
    assert run["family"][1]["label"] == f"{with_state} · epochs 3–4 · + optimizer state"
    assert run["epochs"] == [3, 4] and run["resumable"] and run["live"] == []
    chain = view["figures"]["chain"]["data"]
    assert chain[0]["x"][-1] + 1 == chain[1]["x"][0] == chain[2]["x"][0]
    assert chain[1]["y"] == pytest.approx(values(runs[with_state]["metrics"]["loss"]))
    choices = [c["id"] for c in view["result"]["choices"]]
    assert {first, with_state, without_state, unbroken} <= set(choices)

    # The checkpoint, inspected and evaluated: epoch 4, and the accuracy the run logged.
    assert run["inspection"]["epoch"] == 4 and run["inspection"]["format"] == "checkpoint"
    assert run["inspection"]["total_parameters"] == 1370
    assert run["evaluation"]["accuracy"] == pytest.approx(run["logged_accuracy"])
    # ... confirmed with plain torch from the downloaded file.
    download = client.get(run["downloads"]["checkpoint"])
    checkpoint = torch.load(io.BytesIO(download.content), weights_only=True)
    assert checkpoint["epoch"] == 4 and checkpoint["task"] == "digits-cnn"
    model = DigitsCNN(checkpoint["config"]["channels"])
    model.load_state_dict(checkpoint["model"])
    model.eval()
    images, labels = digits_split(checkpoint["config"]["seed"])[1].tensors
    with torch.no_grad():
        right = int((model(images).argmax(dim=1) == labels).sum())
    assert run["evaluation"]["correct"] == right
    state = torch.load(io.BytesIO(client.get(run["downloads"]["state_dict"]).content))
    assert all(torch.equal(state[k], checkpoint["model"][k]) for k in checkpoint["model"])

    page = client.get(f"{LESSON}?run={with_state}")
    assert page.status_code == 200
    for text in ('id="run-status"', 'id="fig-chain"', 'id="download-checkpoint"', first):
        assert text in page.text, text


def test_a_linear_regression_run_has_no_optimizer_choice_and_scores_its_line(
    client: TestClient,
) -> None:
    run_id = launch(client, "linear-regression", {"epochs": 30, "stage": "nn"})
    assert finished(client, run_id)["status"] == "completed"
    run = client.get(f"{VIEW}?run={run_id}&epochs=200").json()["result"]["run"]
    assert not run["optimizer_choice"] and run["evaluation"]["accuracy"] is None
    stored = client.get(f"/api/runs/{run_id}").json()["metrics"]
    assert run["evaluation"]["result"]["w"] == pytest.approx(stored["w"][-1][1])
    assert run["evaluation"]["result"]["b"] == pytest.approx(stored["b"][-1][1])
    bad = client.get(f"{VIEW}?run={run_id}&epochs=501")
    assert bad.status_code == 422 and "from 1 to 500 for linear-regression" in bad.json()["detail"]


def test_a_run_still_training_is_listed_live(client: TestClient) -> None:
    run_id = launch(client, "digits-cnn", {"epochs": 50, "batch_size": 1})
    try:
        run = client.get(f"{VIEW}?run={run_id}").json()["result"]["run"]
        assert run["live"] == [run_id] and not run["resumable"] and run["downloads"] is None
        assert client.get(f"{LESSON}/partial?run={run_id}").status_code == 200
    finally:
        client.post(f"/api/runs/{run_id}/cancel")
        finished(client, run_id)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("run=nope", "no run 'nope'"),
        ("run=" + "x" * 80, "not a run id"),
        ("epochs=0", "from 1 to 50"),
        ("epochs=51", "from 1 to 50"),
        ("epochs=abc", "whole number"),
        ("optimizer=maybe", "on or off"),
    ],
)
def test_bad_input_gets_422_naming_the_problem(client: TestClient, query: str, words: str) -> None:
    response = client.get(f"{VIEW}?{query}")
    assert response.status_code == 422 and words in response.json()["detail"]
    page = client.get(f"{LESSON}?{query}")
    assert page.status_code == 422 and "text/html" in page.headers["content-type"]
    assert client.get(f"{LESSON}/partial?{query}").status_code == 422
