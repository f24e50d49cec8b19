"""POST /api/transforms/apply and the Transforms page, through the real app."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.main import create_app

URL = "/api/transforms/apply"
CONTRACT_EXAMPLE = [
    {"name": "resize", "size": [64, 64]},
    {"name": "grayscale"},
    {"name": "rotate", "degrees": 30},
    {"name": "to_tensor"},
    {"name": "normalize", "mean": [0.5], "std": [0.5]},
]


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def picture(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def post(client: TestClient, pipeline: object, data: bytes | None = None, **fields: str):
    form = {"pipeline": pipeline if isinstance(pipeline, str) else json.dumps(pipeline), **fields}
    files = {"file": ("picture.png", data, "image/png")} if data is not None else None
    return client.post(URL, data=form, files=files)


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_the_contract_example_grayscale_then_to_tensor_ends_in_a_1x8x8_tensor(
    client: TestClient,
) -> None:
    body = encoded(picture(8, 8))
    r = post(client, [{"name": "grayscale"}, {"name": "to_tensor"}], body)
    assert r.status_code == 200
    stages = r.json()["stages"]
    assert [s["name"] for s in stages] == ["grayscale", "to_tensor"]
    assert stages[-1]["kind"] == "tensor" and stages[-1]["shape"] == [1, 8, 8]
    assert stages[-1]["dtype"] == "float32"
    assert stages[0]["kind"] == "image" and stages[0]["shape"] == [8, 8, 1]
    assert r.json()["compose"] == "Compose([Grayscale(), ToTensor()])"


def test_every_stage_of_the_api_example_matches_numpy(client: TestClient) -> None:
    image = picture(80, 96, seed=4)
    r = post(client, CONTRACT_EXAMPLE, encoded(image))
    assert r.status_code == 200, r.text
    # the same chain, step by step, with Pillow's primitives and NumPy
    resized = image.resize((64, 64), Image.Resampling.BILINEAR)
    gray = resized.convert("L")
    turned = gray.rotate(30, resample=Image.Resampling.BILINEAR, fillcolor=0)
    tensor = np.asarray(turned, dtype=np.float64)[None] / 255  # (1, H, W)
    normal = (tensor - 0.5) / 0.5
    expected = [
        ("image", [64, 64, 3], "uint8", np.asarray(resized)),
        ("image", [64, 64, 1], "uint8", np.asarray(gray)),
        ("image", [64, 64, 1], "uint8", np.asarray(turned)),
        ("tensor", [1, 64, 64], "float32", tensor),
        ("tensor", [1, 64, 64], "float32", normal),
    ]
    stages = r.json()["stages"]
    assert len(stages) == len(CONTRACT_EXAMPLE)
    for stage, (kind, shape, dtype, values) in zip(stages, expected, strict=True):
        assert (stage["kind"], stage["shape"], stage["dtype"]) == (kind, shape, dtype)
        assert stage["min"] == pytest.approx(values.min(), abs=1e-6)
        assert stage["max"] == pytest.approx(values.max(), abs=1e-6)
        assert decode(stage["preview"]).shape[:2] == (64, 64)
    assert r.json()["input"]["shape"] == [80, 96, 3]
    assert r.json()["pipeline"] == CONTRACT_EXAMPLE


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_and_webp_uploads_are_transformed(client: TestClient, fmt: str) -> None:
    data = encoded(picture(24, 30, seed=1), fmt)
    r = post(client, [{"name": "to_tensor"}], data)
    assert r.status_code == 200, r.text
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # lossy ones too
    got = r.json()
    assert got["input"]["shape"] == [24, 30, 3]
    assert got["stages"][0]["shape"] == [3, 24, 30]
    assert got["stages"][0]["min"] == pytest.approx(decoded.min() / 255, abs=1e-6)
    assert got["stages"][0]["max"] == pytest.approx(decoded.max() / 255, abs=1e-6)
    np.testing.assert_array_equal(decode(got["input"]["preview"]), decoded)


def test_a_sample_can_be_sent_instead_of_a_file(client: TestClient) -> None:
    r = post(client, [{"name": "grayscale"}, {"name": "to_tensor"}], sample="tiny")
    assert r.status_code == 200
    assert r.json()["stages"][-1]["shape"] == [1, 5, 5]


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ("[{name: grayscale}]", r"pipeline is not valid JSON \(Expecting property name"),
        ("", "pipeline: Field required"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"name": "grayscale"}', "must be a JSON list"),
        ('[{"name": "resize", "size": "big"}]', r"Stage 1 \(resize\): size must be"),
        ('[{"name": "normalize", "mean": [0.5]}]', r"Stage 1 \(normalize\): needs std"),
        ('[{"name": "rotate", "degrees": 10, "expand": true}]', "unknown parameter 'expand'"),
    ],
)
def test_a_bad_pipeline_is_422_naming_the_problem(
    client: TestClient, pipeline: str, message: str
) -> None:
    r = post(client, pipeline, encoded(picture(8, 8)))
    assert r.status_code == 422
    assert re.search(message, r.json()["detail"]), r.json()["detail"]


def test_an_unknown_transform_is_422_listing_the_known_ones(client: TestClient) -> None:
    r = post(client, [{"name": "blur"}], encoded(picture(8, 8)))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "no transform 'blur'" in detail and "to_tensor" in detail


def test_too_many_stages_is_422_naming_the_setting(client: TestClient, settings: Settings) -> None:
    too_many = [{"name": "horizontal_flip"}] * (settings.max_pipeline_stages + 1)
    r = post(client, too_many, encoded(picture(8, 8)))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "max_pipeline_stages" in detail and str(settings.max_pipeline_stages + 1) in detail


def test_a_resize_over_the_limit_is_422_naming_the_setting(client: TestClient) -> None:
    r = post(client, [{"name": "resize", "size": [4096, 64]}], encoded(picture(8, 8)))
    assert r.status_code == 422 and "max_resize_side" in r.json()["detail"]


def test_the_limits_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EXPLORER_MAX_PIPELINE_STAGES", "2")
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        assert client.get("/api/limits").json()["max_pipeline_stages"] == 2
        r = post(client, [{"name": "grayscale"}] * 3, sample="tiny")
    assert r.status_code == 422
    assert "3, over the limit of 2 (setting max_pipeline_stages)" in r.json()["detail"]


def test_the_wrong_order_is_422_saying_where_the_transform_goes(client: TestClient) -> None:
    r = post(client, [{"name": "to_tensor"}, {"name": "resize", "size": 4}], sample="tiny")
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "Stage 2 (resize): Resize works on images, but it got a tensor: put it before to_tensor."
    )
    r = post(client, [{"name": "grayscale"}, {"name": "to_tensor"}, {"name": "normalize",
             "mean": [0.5, 0.5, 0.5], "std": [0.5]}], sample="tiny")  # fmt: skip
    assert r.status_code == 422 and "the tensor has 1 channel" in r.json()["detail"]


def test_a_text_file_is_415(client: TestClient) -> None:
    r = client.post(
        URL,
        data={"pipeline": "[]"},
        files={"file": ("notes.png", b"just some text, not a picture\n", "image/png")},
    )
    assert r.status_code == 415 and "PNG, JPEG" in r.json()["detail"]


def test_no_file_and_no_sample_is_422(client: TestClient) -> None:
    r = client.post(URL, data={"pipeline": "[]"})
    assert r.status_code == 422 and "file" in r.json()["detail"]


def test_values_spanning_more_than_float32_holds_get_a_histogram_not_a_500(
    client: TestClient,
) -> None:
    # (x - 0.5) / 2.2e-39 for x in 0..1 spans about 3.7e38: past float32's 3.4e38, where
    # numpy's float32 binning fails. Every value still counts once per channel.
    stages = [{"name": "to_tensor"}, {"name": "normalize", "mean": [0.5], "std": [2.2e-39]}]
    r = post(client, stages, encoded(picture(6, 5)))
    assert r.status_code == 200, r.text
    last = r.json()["stages"][-1]
    assert last["max"] - last["min"] > float(np.finfo(np.float32).max)
    assert [sum(c) for c in last["histogram"]["counts"]] == [30, 30, 30]


def test_an_empty_pipeline_has_no_stages_but_describes_the_input(client: TestClient) -> None:
    r = post(client, [], sample="tiny")
    assert r.status_code == 200
    assert r.json()["stages"] == [] and r.json()["input"]["shape"] == [5, 5, 3]


def test_the_route_and_its_models_are_in_the_openapi_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"][URL]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    stage = schema["components"]["schemas"]["Stage"]["properties"]
    assert {"name", "kind", "shape", "dtype", "min", "max", "preview"} <= set(stage)
    assert {"413", "415", "422", "429"} <= set(operation["responses"])
    assert "picture_max_seconds" in operation["description"]


# ---- the page, its partial and its JSON twin -------------------------------------------------


def test_the_page_shows_every_stage_of_the_default_pipeline(client: TestClient) -> None:
    r = client.get("/lessons/transforms")
    assert r.status_code == 200
    html = r.text
    assert html.count('class="stage-card') == 6  # the input and five transforms
    assert "[1, 64, 64]" in html and "Normalize(mean=[0.5], std=[0.5])" in html
    default = "resize:64x64,grayscale,rotate:30,to_tensor,normalize:0.5:0.5"
    assert f'name="p" id="p" value="{default}"' in html
    text = re.sub(r"<[^>]+>", "", html)  # the source is highlighted: read it as text
    assert "class Resize:" in text and "class PictureDataset(Dataset" in text
    assert "Compose([Resize((64, 64)), Grayscale(), Rotate(30), ToTensor()," in text


def test_the_page_shows_how_far_a_wrongly_ordered_pipeline_got(client: TestClient) -> None:
    r = client.get("/lessons/transforms", params={"p": "grayscale,multiply:2,to_tensor"})
    assert r.status_code == 200
    assert "stage-failed" in r.text and "put it after to_tensor" in r.text


def test_a_bad_pipeline_in_the_url_is_a_422_page(client: TestClient) -> None:
    r = client.get("/lessons/transforms", params={"p": "resize:64x64,sharpen"})
    assert r.status_code == 422 and "no transform" in r.text
    r = client.get("/lessons/transforms", params={"sample": "cat"})
    assert r.status_code == 422 and "Unknown sample" in r.text


def test_the_json_twin_has_the_stages_the_dataset_and_the_histogram(client: TestClient) -> None:
    query = {"p": "resize:16x16,to_tensor", "sample": "shapes", "stage": "1"}
    r = client.get("/api/lessons/transforms/view", params=query)
    assert r.status_code == 200
    body = r.json()
    assert body["params"]["pipeline"] == [
        {"name": "resize", "size": [16, 16]},
        {"name": "to_tensor"},
    ]
    result = body["result"]
    assert [s["shape"] for s in result["stages"]] == [[16, 16, 3], [3, 16, 16]]
    assert [item["target"] for item in result["dataset"]] == [0, 1, 2, 2]
    traces = body["figures"]["histogram"]["data"]
    assert [t["name"] for t in traces] == ["R", "G", "B"]
    assert [t["y"] for t in traces] == result["stages"][0]["histogram"]["counts"]
    partial = client.get("/lessons/transforms/partial", params=query)
    assert partial.status_code == 200 and 'data-slot="dataset"' in partial.text
