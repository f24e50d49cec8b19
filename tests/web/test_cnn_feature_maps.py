"""The CNN feature-maps page over HTTP: the page, its partial and JSON twin, a learner's real
finished run (its weights downloaded and the maps recomputed from them), and bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

from app.jobs.classifier import digits_split
from app.lessons import cnn_feature_maps as fm
from tests.support import finished, launch, wait_for

LESSON = "/lessons/cnn-feature-maps"
TWIN = "/api/lessons/cnn-feature-maps/view"


def digit(index: int) -> torch.Tensor:
    return digits_split(0)[1].tensors[0][index : index + 1]  # (1, 1, 8, 8)


def test_the_page_shows_figures_controls_code_and_the_way_back_to_the_cnn_lesson(
    client: TestClient,
) -> None:
    page = client.get(LESSON)
    assert page.status_code == 200
    text = page.text
    for figure in ("prediction", "filters", "maps", "classes", "channel_map", "channel_classes"):
        assert f'id="fig-{figure}"' in text, figure
    for control in ('name="image"', 'name="layer"', 'name="channel"', 'name="run"'):
        assert control in text
    assert "register_forward_hook" in text  # the real source, and the snippet
    assert 'href="/lessons/cnn" rel="prev"' in text
    assert text.count('class="fm-thumb"') == sum(
        len(r["top"]) for r in client.get(TWIN).json()["result"]["responses"]
    )
    assert "js/cnn_feature_maps" in text


def test_the_json_twin_holds_the_maps_the_model_computes(client: TestClient) -> None:
    view = client.get(f"{TWIN}?image=12&layer=1&channel=2").json()
    model = fm.source_model()
    conv = model.features[0]
    with torch.no_grad():
        expected = F.relu(F.conv2d(digit(12), conv.weight, conv.bias, padding=1))[0]
        probabilities = model(digit(12)).softmax(dim=1)[0]
    assert np.allclose(view["result"]["maps"], expected.numpy(), atol=1e-5)
    assert np.allclose(view["result"]["prediction"]["probabilities"], probabilities, atol=1e-6)
    assert view["params"] == {"run": "", "image": 12, "layer": 1, "channel": 2}
    # The figures plot those numbers: channel k's panel is trace k.
    maps = view["figures"]["maps"]["data"]
    assert len(maps) == 8
    assert np.allclose(maps[2]["z"], expected[2].numpy(), atol=1e-5)
    assert view["figures"]["maps"]["data"][0]["zmax"] == pytest.approx(float(expected.max()))
    bars = view["figures"]["prediction"]["data"][0]["y"]
    assert np.allclose(bars, probabilities, atol=1e-6)
    focus = view["figures"]["channel_classes"]["data"][0]["y"]
    assert np.allclose(focus, view["result"]["class_means"][2])


def test_the_partial_is_the_changing_part_only(client: TestClient) -> None:
    partial = client.get(f"{LESSON}/partial?image=30&layer=2&channel=14")
    assert partial.status_code == 200
    assert "<html" not in partial.text and 'id="controls"' not in partial.text
    assert 'data-image="30"' in partial.text
    responses = client.get(f"{TWIN}?layer=2").json()["result"]["responses"]
    dead = [r["channel"] for r in responses if r["dead"]]  # the source model has one
    for channel in dead:
        text = client.get(f"{LESSON}/partial?layer=2&channel={channel}").text
        assert "A dead channel" in text and "no held-out digit makes it fire" in text
    assert "A dead channel" not in client.get(f"{LESSON}/partial?layer=2&channel=12").text
    assert 'id="fig-kernels"' in partial.text  # a deeper layer shows its kernels one by one


def test_a_finished_digits_cnn_run_is_looked_inside_with_its_own_weights(
    client: TestClient,
) -> None:
    run_id = launch(client, "digits-cnn", {"epochs": 1, "channels": 4, "seed": 2})
    assert finished(client, run_id)["status"] == "completed"
    state = torch.load(
        io.BytesIO(client.get(f"/api/runs/{run_id}/state_dict").content), weights_only=True
    )
    view = client.get(f"{TWIN}?run={run_id}&image=5&channel=3").json()
    result = view["result"]
    assert [layer["output_shape"] for layer in result["layers"]] == [[4, 8, 8]]
    expected = F.relu(F.conv2d(digit(5), state["conv.weight"], state["conv.bias"], padding=1))[0]
    assert np.allclose(result["maps"], expected.numpy(), atol=1e-5)
    assert np.allclose(result["filters"], state["conv.weight"][:, 0].numpy())
    logits = F.linear(
        F.max_pool2d(expected[None], 2).flatten(1), state["fc.weight"], state["fc.bias"]
    )
    assert np.allclose(result["prediction"]["probabilities"], logits.softmax(1)[0], atol=1e-5)
    assert result["classes"] == [str(d) for d in range(10)]
    assert result["model"]["task"] == "digits-cnn"
    assert "seed 2" in result["model"]["note"]  # its own split differs from the page's
    page = client.get(f"{LESSON}?run={run_id}")
    assert page.status_code == 200 and f'<option value="{run_id}" selected' in page.text
    assert f'<option value="{run_id}"' in client.get(LESSON).text  # offered in the picker
    assert client.get(f"{TWIN}?run={run_id}&layer=2").status_code == 422  # it has one conv


def test_a_run_of_the_wrong_task_or_unfinished_is_refused_by_name(client: TestClient) -> None:
    linear = launch(client, "linear-regression", {"epochs": 5})
    assert finished(client, linear)["status"] == "completed"
    response = client.get(f"{TWIN}?run={linear}")
    assert response.status_code == 422
    assert f"run {linear} is a linear-regression run" in response.json()["detail"]

    long = launch(client, "digits-cnn", {"epochs": 50, "batch_size": 1})
    response = client.get(f"{TWIN}?run={long}")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"run {long} is" in detail and "not completed" in detail
    client.post(f"/api/runs/{long}/cancel")
    wait_for(lambda: client.get(f"/api/runs/{long}").json()["status"] == "cancelled")
    assert "is cancelled, not completed" in client.get(f"{TWIN}?run={long}").json()["detail"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("image=359", "image must be one of the 359 held-out digits, 0 to 358; got 359"),
        ("image=-3", "got -3"),
        ("image=four", "image must be a whole number"),
        ("layer=3", "layer must be a conv layer of this model, 1 to 2; got 3"),
        ("layer=2&channel=16", "channel must be one of layer 2's 16 channels, 0 to 15"),
        ("channel=x", "channel must be a whole number"),
        ("run=nope", "there is no run 'nope'"),
    ],
)
def test_bad_input_gets_422_naming_the_problem(client: TestClient, query: str, words: str) -> None:
    response = client.get(f"{TWIN}?{query}")
    assert response.status_code == 422 and words in response.json()["detail"]
    page = client.get(f"{LESSON}?{query}")
    assert page.status_code == 422 and "text/html" in page.headers["content-type"]
    assert client.get(f"{LESSON}/partial?{query}").status_code == 422


def test_the_cnn_lesson_links_to_the_feature_maps(client: TestClient) -> None:
    page = client.get("/lessons/cnn")
    assert page.status_code == 200 and f'href="{LESSON}"' in page.text
