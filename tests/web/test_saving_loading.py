"""The Saving and loading lesson over HTTP: the page's worked example, a real run resumed
through the API (the chain, continuing steps and epochs, the files inspected and evaluated), bad
input; and the checkpoint API: real runs' files round-trip through plain torch.load, inspect and
evaluate agree with plain torch, and every hostile or broken upload gets a clear 4xx while the
server keeps answering."""

from __future__ import annotations

import html
import io
import json
import pickle
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs.classifier import DigitsCNN, digits_split
from app.jobs.transfer import DigitsNet, target_data
from app.lessons import saving_loading as saving
from app.main import create_app
from tests.jobs.test_checkpoints import RunsCommand, saved, would_run
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
    assert 'torch.save(model.state_dict(), "model_params.pth")' in (shown(page.text))
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
    assert run["family"][1]["label"] == f"{with_state[:8]} · epochs 3–4 · + optimizer state"
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


# == the checkpoint API: /api/checkpoints/inspect and /api/checkpoints/evaluate ===================

INSPECT = "/api/checkpoints/inspect"
EVALUATE = "/api/checkpoints/evaluate"


def upload(data: bytes, name: str = "model.pth") -> dict[str, Any]:
    return {"file": (name, data, "application/octet-stream")}


def app_client(tmp: Path, **overrides: Any) -> TestClient:
    settings = Settings(data_dir=tmp / "data", program_prewarm=False, **overrides)
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """One app with a finished digits-cnn run and a finished transfer run."""
    with app_client(tmp_path_factory.mktemp("checkpoints")) as client:
        ids = {
            "digits-cnn": launch(client, "digits-cnn", {"epochs": 2, "channels": 6, "seed": 1}),
            "transfer": launch(client, "transfer", {"epochs": 3, "mode": "finetune", "seed": 2}),
        }
        for run_id in ids.values():
            run = finished(client, run_id, timeout=240)
            assert run["status"] == "completed", run["error"]
        yield client, ids


@pytest.fixture
def checkpoint_client(tmp_path: Path) -> Iterator[TestClient]:
    """The checkpoint tests' own app (app_client's settings), not the shared ``client``."""
    with app_client(tmp_path) as test_client:
        yield test_client


def download(client: TestClient, run_id: str, what: str, tmp: Path) -> tuple[bytes, Any]:
    """The artefact's bytes, and what plain torch.load (outside the app) makes of the file."""
    response = client.get(f"/api/runs/{run_id}/{what}")
    assert response.status_code == 200
    path = tmp / f"{run_id}-{what}.pth"
    path.write_bytes(response.content)
    return response.content, torch.load(path, weights_only=True)


def predictions(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(images).argmax(dim=1).numpy()


# -- round trips ---------------------------------------------------------------------------------


def test_a_digits_run_round_trips_through_plain_torch_load(
    runs: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    client, ids = runs
    run_id = ids["digits-cnn"]
    config = client.get(f"/api/runs/{run_id}").json()["config"]
    images, labels = digits_split(config["seed"])[1].tensors
    for what in ("state_dict", "checkpoint"):
        data, loaded = download(client, run_id, what, tmp_path)
        state = loaded if what == "state_dict" else loaded["model"]
        model = DigitsCNN(config["channels"])
        model.load_state_dict(state)
        expected = predictions(model, images)

        body = {"config": json.dumps(config)} if what == "state_dict" else {}
        response = client.post(EVALUATE, files=upload(data), data=body)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["task"] == "digits-cnn" and result["config"] == config
        assert np.array_equal(result["predicted"], expected)
        assert np.array_equal(result["labels"], labels.numpy())
        assert result["accuracy"] == pytest.approx(np.mean(expected == labels.numpy()))
        assert result["accuracy"] > 0.8  # two real epochs learn the digits
        assert result["n"] == len(labels) == 359
    assert result["format"] == "checkpoint" and result["epoch"] == 2


def test_a_transfer_run_round_trips_through_plain_torch_load(
    runs: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    client, ids = runs
    run_id = ids["transfer"]
    config = client.get(f"/api/runs/{run_id}").json()["config"]
    images, labels = target_data(config["examples_per_class"], config["seed"])[1].tensors
    data, loaded = download(client, run_id, "checkpoint", tmp_path)
    model = DigitsNet()
    model.load_state_dict(loaded["model"])
    expected = predictions(model, images)
    # The checkpoint names its task and config: nothing else is sent.
    result = client.post(EVALUATE, files=upload(data)).json()
    assert result["task"] == "transfer" and result["config"]["mode"] == "finetune"
    assert np.array_equal(result["predicted"], expected)
    assert result["accuracy"] == pytest.approx(np.mean(expected == labels.numpy()))

    state_only, _ = download(client, run_id, "state_dict", tmp_path)
    result = client.post(
        EVALUATE, files=upload(state_only), data={"task": "transfer", "config": json.dumps(config)}
    ).json()
    assert np.array_equal(result["predicted"], expected)


def test_inspect_matches_torch_load_and_lists_the_momentum_buffers(
    runs: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    client, ids = runs
    run_id = ids["digits-cnn"]
    data, loaded = download(client, run_id, "checkpoint", tmp_path)
    response = client.post(INSPECT, files=upload(data))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["format"] == "checkpoint" and report["epoch"] == loaded["epoch"] == 2
    assert report["task"] == "digits-cnn" and report["config"] == loaded["config"]
    assert report["bytes"] == len(data) and report["other_keys"] == {}
    model_tensors = loaded["model"]
    assert [t["key"] for t in report["tensors"]] == list(model_tensors)
    for entry in report["tensors"]:
        tensor = model_tensors[entry["key"]]
        assert (entry["shape"], entry["numel"]) == (list(tensor.shape), tensor.numel())
        assert entry["dtype"] == str(tensor.dtype).removeprefix("torch.")
    model = DigitsCNN(loaded["config"]["channels"])
    assert report["total_parameters"] == sum(t.numel() for t in model_tensors.values())
    assert report["total_parameters"] == sum(p.numel() for p in model.parameters())

    (group,) = report["optimizer"]["param_groups"]
    assert group["momentum"] == 0.9 and group["lr"] == loaded["config"]["learning_rate"]
    params = list(model.parameters())
    assert group["params"] == list(range(len(params)))
    for entry in report["optimizer"]["state"]:
        (buffer,) = entry["buffers"]
        saved_buffer = loaded["optimizer"]["state"][entry["param"]]["momentum_buffer"]
        assert buffer["name"] == "momentum_buffer"
        assert buffer["shape"] == list(params[entry["param"]].shape) == list(saved_buffer.shape)


def test_a_checkpoint_in_the_notes_spelling_is_inspected(checkpoint_client: TestClient) -> None:
    client = checkpoint_client
    model = DigitsCNN(8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    checkpoint = {"Model": model.state_dict(), "Optim": optimizer.state_dict(), "epoch": 10}
    report = client.post(INSPECT, files=upload(saved(checkpoint))).json()
    assert report["format"] == "checkpoint" and report["epoch"] == 10
    assert report["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert report["optimizer"]["state"] == []  # no step taken: no buffers yet
    assert report["task"] is None and report["config"] is None


# -- wrong architecture, bad fields -------------------------------------------------------------


def test_a_wider_model_is_422_listing_each_mismatched_shape(checkpoint_client: TestClient) -> None:
    client = checkpoint_client
    wide, narrow = DigitsCNN(16).state_dict(), DigitsCNN(8).state_dict()
    response = client.post(EVALUATE, files=upload(saved(wide)), data={"task": "digits-cnn"})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("The state_dict does not fit digits-cnn's model")
    assert "conv.weight: file 16x1x3x3, model 8x1x3x3" in body["detail"]
    assert body["missing"] == [] and body["unexpected"] == []
    differing = {k for k in narrow if narrow[k].shape != wide[k].shape}
    assert {m["key"] for m in body["mismatched"]} == differing
    for m in body["mismatched"]:
        assert m["file"] == list(wide[m["key"]].shape)
        assert m["model"] == list(narrow[m["key"]].shape)


def test_a_transfer_state_dict_evaluated_as_digits_cnn_lists_missing_and_unexpected_keys(
    checkpoint_client: TestClient,
) -> None:
    client = checkpoint_client
    response = client.post(EVALUATE, files=upload(saved(DigitsNet().state_dict())))
    assert response.status_code == 422
    body = response.json()
    assert set(body["missing"]) == set(DigitsCNN(8).state_dict())
    assert set(body["unexpected"]) == set(DigitsNet().state_dict())
    assert body["mismatched"] == []
    for key in body["missing"] + body["unexpected"]:
        assert key in body["detail"]


@pytest.mark.parametrize(
    ("form", "field", "says"),
    [
        ({"task": "resnet"}, "task", "unknown task 'resnet'"),
        ({"config": "{channels: 8"}, "config", "config is not valid JSON"),
        ({"config": "[8]"}, "config", "config must be a JSON object"),
        ({"config": '{"channels": 99}'}, "channels", "less than or equal to 32"),
        ({"config": '{"colour": "red"}'}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_bad_task_or_config_is_422_naming_the_field(
    checkpoint_client: TestClient, form: dict[str, str], field: str, says: str
) -> None:
    client = checkpoint_client
    response = client.post(EVALUATE, files=upload(saved(DigitsCNN(8).state_dict())), data=form)
    assert response.status_code == 422
    assert response.json()["field"] == field and says in response.json()["detail"]


def test_a_missing_file_is_422_naming_the_field(checkpoint_client: TestClient) -> None:
    client = checkpoint_client
    response = client.post(INSPECT, data={"task": "digits-cnn"})
    assert response.status_code == 422 and "file" in response.json()["detail"]


# -- hostile and broken files ---------------------------------------------------------------------


@pytest.mark.parametrize("container", ["torch.save", "pickle.dumps"])
@pytest.mark.parametrize("route", [INSPECT, EVALUATE])
def test_a_malicious_pickle_is_422_and_never_runs(
    checkpoint_client: TestClient, tmp_path: Path, container: str, route: str
) -> None:
    client = checkpoint_client
    marker = tmp_path / "pwned"
    evil = {"model": RunsCommand(f"touch {marker}")}
    data = saved(evil) if container == "torch.save" else pickle.dumps(evil)
    path = tmp_path / "evil.pth"
    path.write_bytes(data)
    would_run(path)  # plain torch.load(weights_only=False) really runs it...
    assert marker.exists()
    marker.unlink()

    response = client.post(route, files=upload(data))  # ...the app does not
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("refused: the file asks to run `posix.system`")
    assert body["refused"] == "posix.system"
    assert not marker.exists()
    assert client.get("/healthz").json() == {"status": "ok"}


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        with archive.open("archive/data/0", "w") as entry:
            for _ in range(200):  # 200 MiB of zeros in about 200 kB
                entry.write(bytes(1024 * 1024))
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: b"", "The file is empty"),
        (lambda: b"not a checkpoint\n" * 10, "The file is text"),
        (lambda: np.random.default_rng(0).bytes(4096), "not a zip archive"),
        (lambda: saved(DigitsCNN(8).state_dict())[:3000], "truncated or damaged"),
        (
            lambda: saved({"w": torch.zeros(2)}, _use_new_zipfile_serialization=False),
            "legacy format",
        ),
        (zip_bomb, "max_checkpoint_unpacked_bytes"),
        (lambda: saved(torch.zeros(3)), "holds a Tensor"),
    ],
    ids=["empty", "text", "random", "truncated", "legacy", "zip-bomb", "bare-tensor"],
)
def test_broken_and_hostile_files_get_a_clear_422_and_the_server_keeps_answering(
    checkpoint_client: TestClient, make: Any, says: str
) -> None:
    client = checkpoint_client
    for route in (INSPECT, EVALUATE):
        response = client.post(route, files=upload(make(), "notes.pth"))
        assert response.status_code == 422, response.text
        assert says in response.json()["detail"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_an_upload_over_the_limit_is_413_naming_it(tmp_path: Path) -> None:
    with app_client(tmp_path, max_checkpoint_bytes=64 * 1024) as client:
        data = saved({"w": torch.zeros(20_000)})  # 80 kB of tensor data
        assert len(data) > 64 * 1024
        for route in (INSPECT, EVALUATE):
            response = client.post(route, files=upload(data))
            assert response.status_code == 413
            detail = response.json()["detail"]
            assert "65536 bytes" in detail and "max_checkpoint_bytes" in detail
        small = saved({"w": torch.zeros(1000)})
        assert client.post(INSPECT, files=upload(small)).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_the_default_limit_is_20_mib(tmp_path: Path) -> None:
    # A multipart body bigger than max_upload_bytes is refused before the route runs; raise it
    # so that this checks the route's own limit.
    with app_client(tmp_path, max_upload_bytes=32 * 1024 * 1024) as client:
        over = bytes(20 * 1024 * 1024 + 1)
        response = client.post(INSPECT, files=upload(over))
        assert response.status_code == 413
        assert "20971520 bytes (setting max_checkpoint_bytes)" in response.json()["detail"]
        assert client.get("/api/limits").json()["max_checkpoint_bytes"] == 20 * 1024 * 1024


# -- the documented shape -----------------------------------------------------------------------


def conforms(value: Any, schema: dict[str, Any], components: dict[str, Any], where: str) -> None:
    """``value`` against the JSON Schema subset FastAPI writes (a check independent of the
    pydantic models that produced the value: it reads /openapi.json only)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                conforms(value, option, components, where)
                return
            except AssertionError as error:
                errors.append(str(error))
        raise AssertionError(f"{where}: matches no anyOf option: {errors}")
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "const" in schema:
        assert value == schema["const"], where
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None:
        assert checks[kind](value), f"{where}: {value!r} is not {kind}"
    if kind == "object":
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name}"
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                conforms(item, properties[name], components, f"{where}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                conforms(item, schema["additionalProperties"], components, f"{where}.{name}")
            else:
                assert schema.get("additionalProperties", True) is not False, where
    if kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            conforms(item, schema["items"], components, f"{where}[{index}]")


def test_the_responses_conform_to_the_documented_schema(
    runs: tuple[TestClient, dict[str, str]],
) -> None:
    client, ids = runs
    openapi = client.get("/openapi.json").json()
    components = openapi["components"]["schemas"]
    data = client.get(f"/api/runs/{ids['digits-cnn']}/checkpoint").content
    for route, required in [
        (INSPECT, {"format", "epoch", "tensors", "total_parameters"}),
        (EVALUATE, {"task", "config", "format", "epoch", "loss", "accuracy", "n", "predicted"}),
    ]:
        operation = openapi["paths"][route]["post"]
        assert "multipart/form-data" in operation["requestBody"]["content"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        model = components[schema["$ref"].rsplit("/", 1)[1]]
        assert required <= set(model["required"])
        assert {"413", "422"} <= set(operation["responses"])
        response = client.post(route, files=upload(data))
        assert response.status_code == 200
        conforms(response.json(), schema, components, route)

    error_schema = openapi["paths"][EVALUATE]["post"]["responses"]["422"]["content"]
    mismatch = client.post(EVALUATE, files=upload(saved(DigitsCNN(16).state_dict()))).json()
    conforms(mismatch, error_schema["application/json"]["schema"], components, "422")

    docs = client.get("/docs").text
    for text in (INSPECT, EVALUATE, "total_parameters", "momentum_buffer"):
        assert text in docs
    limits = client.get("/api/limits").json()
    for name in (
        "max_checkpoint_bytes",
        "max_checkpoint_unpacked_bytes",
        "max_checkpoint_entries",
        "max_checkpoint_pickle_bytes",
        "max_checkpoint_depth",
        "max_checkpoint_items",
    ):
        assert name in limits
