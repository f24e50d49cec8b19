"""POST /api/cnn/convolve, /api/cnn/pool and /api/cnn/image: the contract, uploads, limits."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scipy.signal import correlate2d

from app.config import Settings
from app.main import create_app

NOTES_INPUT = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
NOTES_FMAP = [[1, 3, 2, 0], [4, 2, 1, 5], [0, 1, 7, 2], [3, 2, 1, 0]]


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def picture(width: int = 8, height: int = 6, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), "RGB")


def png_bomb(side: int) -> bytes:
    """A real PNG of side×side black pixels: about 140 KB of file, side² bytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + one greyscale byte per pixel
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def post_image(client: TestClient, data: bytes, name: str = "picture.png", **form: object):
    fields = {"kernel": "edge", "pool": "max", "pool_size": "1", **form}
    return client.post(
        "/api/cnn/image",
        files={"file": (name, data, "application/octet-stream")},
        data={k: str(v) for k, v in fields.items()},
    )


@pytest.fixture
def small_app(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose uploads and pictures are small, so the limits are cheap to reach."""
    settings = Settings(
        data_dir=tmp_path / "data",
        max_upload_bytes=4096,
        max_image_pixels=10_000,
        program_prewarm=False,
    )
    with TestClient(create_app(settings)) as client:
        yield client


# ---- the contract's examples -------------------------------------------------------------------


def test_convolve_the_notes_example_gives_6_8_12_14_in_four_steps(client: TestClient) -> None:
    r = client.post("/api/cnn/convolve", json={"input": NOTES_INPUT, "kernel": [[1, 0], [0, 1]]})
    assert r.status_code == 200
    body = r.json()
    assert body["output"] == [[6, 8], [12, 14]]
    assert body["output_shape"] == [2, 2]
    assert len(body["steps"]) == 4
    first = body["steps"][0]
    assert first == {
        **first,
        "row": 0,
        "col": 0,
        "window": [[1, 2], [4, 5]],
        "products": [[1, 0], [0, 5]],
        "sum": 6,
    }
    assert [s["sum"] for s in body["steps"]] == [6, 8, 12, 14]


def test_convolve_with_stride_padding_dilation_matches_scipy(client: TestClient) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 9)).round(2)
    k = rng.normal(size=(3, 2)).round(2)
    body = {"input": x.tolist(), "kernel": k.tolist(), "stride": 2, "padding": 1, "dilation": 2}
    r = client.post("/api/cnn/convolve", json=body)
    assert r.status_code == 200
    dilated = np.zeros((5, 3))
    dilated[::2, ::2] = k
    want = correlate2d(np.pad(x, 1), dilated, mode="valid")[::2, ::2]
    np.testing.assert_allclose(r.json()["output"], want, atol=1e-12)
    assert r.json()["output_shape"] == list(want.shape)
    assert [f["value"] for f in r.json()["formula"]] == list(want.shape)


def test_convolve_a_c_channel_input_sums_over_channels(client: TestClient) -> None:
    x = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    k = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 1]]], dtype=float)
    r = client.post("/api/cnn/convolve", json={"input": x.tolist(), "kernel": k.tolist()})
    want = correlate2d(x[0], k[0], mode="valid") + correlate2d(x[1], k[1], mode="valid")
    np.testing.assert_allclose(r.json()["output"], want)
    assert np.asarray(r.json()["steps"][0]["window"]).shape == (2, 2, 2)


def test_pool_the_notes_4x4_with_size_2_gives_4_5_3_7(client: TestClient) -> None:
    r = client.post("/api/cnn/pool", json={"input": NOTES_FMAP, "kind": "max", "size": 2})
    assert r.status_code == 200
    assert r.json()["output"] == [[4, 5], [3, 7]] and r.json()["output_shape"] == [2, 2]
    r = client.post(
        "/api/cnn/pool", json={"input": NOTES_FMAP, "kind": "min", "size": 2, "stride": 1}
    )
    x = np.asarray(NOTES_FMAP)
    want = [[x[i : i + 2, j : j + 2].min() for j in range(3)] for i in range(3)]
    assert r.json()["output"] == want


def test_a_5x5_rgb_png_with_the_edge_preset_has_75_then_27_features(client: TestClient) -> None:
    r = post_image(client, encode(picture(5, 5), "PNG"))
    assert r.status_code == 200
    body = r.json()
    assert body["feature_counts"] == {"input": 75, "conv": 27, "pooled": 27}
    assert body["input_shape"] == [3, 5, 5]
    assert [c["name"] for c in body["channels"]] == ["R", "G", "B"]
    for channel in body["channels"]:
        assert channel["conv_shape"] == [3, 3] and channel["pooled_shape"] == [3, 3]
        for key in ("conv_png", "pooled_png", "input_png"):
            png = base64.b64decode(channel[key].removeprefix("data:image/png;base64,"))
            assert Image.open(io.BytesIO(png)).format == "PNG"


def test_the_image_maps_are_each_channel_filtered_on_its_own(client: TestClient) -> None:
    image = picture(9, 7, seed=2)
    r = post_image(client, encode(image, "PNG"), kernel="sobel_x", pool_size=2, pool="avg")
    pixels = np.asarray(image, dtype=np.float64)
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    for c, channel in enumerate(r.json()["channels"]):
        want = correlate2d(pixels[..., c], sobel_x, mode="valid")  # (5, 7)
        np.testing.assert_allclose(channel["conv_values"], want, atol=1e-3)
        assert channel["conv_range"] == pytest.approx([want.min(), want.max()], abs=1e-3)
        pooled = want[:4, :6].reshape(2, 2, 3, 2).mean(axis=(1, 3))
        np.testing.assert_allclose(channel["pooled_values"], pooled, atol=1e-3)


def test_a_sample_can_stand_in_for_a_file(client: TestClient) -> None:
    r = client.post("/api/cnn/image", data={"sample": "tiny", "pool_size": "1"})
    assert r.status_code == 200 and r.json()["feature_counts"]["conv"] == 27


def test_typed_kernels_work_as_json(client: TestClient) -> None:
    r = post_image(client, encode(picture(6, 6), "PNG"), kernel="[[0, 0], [0, 1]]")
    assert r.status_code == 200
    assert r.json()["kernel_name"] == "typed" and r.json()["channels"][0]["conv_shape"] == [5, 5]


# ---- uploads: every format, and every way a file can be bad -------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_each_supported_format_uploads(client: TestClient, fmt: str) -> None:
    r = post_image(client, encode(picture(12, 10), fmt), name=f"picture.{fmt.lower()}")
    assert r.status_code == 200, r.text
    assert r.json()["input_shape"] == [3, 10, 12]
    assert r.json()["feature_counts"]["conv"] == 3 * 8 * 10


def test_a_jpeg_named_png_works_because_the_format_is_sniffed(client: TestClient) -> None:
    r = post_image(client, encode(picture(8, 8), "JPEG"), name="holiday.png")
    assert r.status_code == 200 and r.json()["input_shape"] == [3, 8, 8]


def test_a_text_file_named_png_is_415(client: TestClient) -> None:
    r = post_image(client, b"I am not a picture, whatever my name says.\n", name="cat.png")
    assert r.status_code == 415
    assert "PNG, JPEG, GIF, WebP or BMP" in r.json()["detail"]


def test_a_zero_byte_file_is_422(client: TestClient) -> None:
    r = post_image(client, b"", name="empty.png")
    assert r.status_code == 422 and "empty" in r.json()["detail"]


def test_a_truncated_file_is_422(client: TestClient) -> None:
    data = encode(picture(64, 64), "PNG")
    r = post_image(client, data[: len(data) // 2])
    assert r.status_code == 422 and "truncated or corrupt" in r.json()["detail"]


def test_a_decompression_bomb_is_413_and_the_server_stays_up(client: TestClient) -> None:
    bomb = png_bomb(12_000)  # 144 megapixels in about 140 KB
    assert len(bomb) < 1_000_000
    r = post_image(client, bomb, name="bomb.png")
    assert r.status_code == 413
    assert "max_image_pixels" in r.json()["detail"] or "too large" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_huge_dimensions_are_413_naming_the_pixel_limit(small_app: TestClient) -> None:
    r = post_image(small_app, encode(Image.new("RGB", (200, 100)), "PNG"))
    assert r.status_code == 413
    assert "20000 pixels" in r.json()["detail"] and "max_image_pixels" in r.json()["detail"]
    assert small_app.get("/healthz").status_code == 200


def test_an_upload_over_max_upload_bytes_is_413_naming_the_setting(small_app: TestClient) -> None:
    noisy = encode(picture(60, 60, seed=9), "PNG")  # random pixels: about 11 KB
    assert len(noisy) > 4096
    r = post_image(small_app, noisy)
    assert r.status_code == 413
    assert "4096" in r.json()["detail"] and "max_upload_bytes" in r.json()["detail"]
    big = post_image(small_app, noisy * 20)  # over the limit plus multipart slack: refused early
    assert big.status_code == 413 and "max_upload_bytes" in big.json()["detail"]
    assert small_app.get("/healthz").status_code == 200


def test_the_page_partial_answers_an_upload_with_the_panel(client: TestClient) -> None:
    r = client.post(
        "/lessons/cnn/image",
        files={"file": ("p.png", encode(picture(5, 5), "PNG"), "image/png")},
        data={"kernel": "blur", "pool_size": "1"},
    )
    assert r.status_code == 200 and 'data-channel="G"' in r.text
    assert 'data-count="input">75<' in r.text and 'data-count="conv">27<' in r.text
    bad = client.post(
        "/lessons/cnn/image", files={"file": ("x.png", b"nope", "image/png")}, data={}
    )
    assert bad.status_code == 415 and "PNG, JPEG" in bad.text


# ---- bad parameters: 422 naming the problem and the limit ---------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input": NOTES_INPUT, "kernel": [[1] * 8]}, "max_kernel_size"),
        ({"input": [[1] * 13], "kernel": [[1]]}, "max_matrix_side"),
        ({"input": NOTES_INPUT, "kernel": [[1]], "stride": 5}, "max_stride"),
        ({"input": NOTES_INPUT, "kernel": [[1]], "stride": 0}, "at least 1"),
        ({"input": NOTES_INPUT, "kernel": [[1]], "padding": 4}, "max_padding"),
        ({"input": NOTES_INPUT, "kernel": [[1]], "dilation": 9}, "max_dilation"),
        ({"input": [[[1]]] * 5, "kernel": [[1]]}, "max_conv_channels"),
        ({"input": [[1, 2], [3]], "kernel": [[1]]}, "ragged"),
        ({"input": [[1]], "kernel": [[1, 1]]}, "spans 2 columns"),
        ({"input": NOTES_INPUT, "kernel": [[[1]], [[1]]]}, "2 channels"),
        ({"input": "abc", "kernel": [[1]]}, "input"),
        ({"kernel": [[1]]}, "input"),
    ],
)
def test_bad_convolve_requests_are_422_naming_the_problem(
    client: TestClient, body: dict, needle: str
) -> None:
    r = client.post("/api/cnn/convolve", json=body)
    assert r.status_code == 422 and needle in r.json()["detail"]


def test_nan_in_a_matrix_is_422(client: TestClient) -> None:
    r = client.post(
        "/api/cnn/convolve",
        content='{"input": [[NaN, 1]], "kernel": [[1]]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and "finite" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input": NOTES_FMAP, "kind": "max", "size": 17}, "max_pool_size"),
        ({"input": NOTES_FMAP, "kind": "max", "size": 2, "stride": 99}, "max_pool_size"),
        ({"input": NOTES_FMAP, "kind": "max", "size": 0}, "at least 1"),
        ({"input": NOTES_FMAP, "kind": "max", "size": 5}, "spans 5 rows"),
        ({"input": NOTES_FMAP, "kind": "median", "size": 2}, "kind"),
    ],
)
def test_bad_pool_requests_are_422(client: TestClient, body: dict, needle: str) -> None:
    r = client.post("/api/cnn/pool", json=body)
    assert r.status_code == 422 and needle in r.json()["detail"]


@pytest.mark.parametrize(
    ("form", "needle"),
    [
        ({"kernel": "wobble"}, "not a preset"),
        ({"kernel": "[[1, 1, 1, 1, 1, 1, 1, 1]]"}, "max_kernel_size"),
        ({"kernel": "[[1, 2], [3]]"}, "ragged"),
        ({"kernel": "[[1, 2]"}, "not valid JSON"),
        ({"stride": 9}, "max_stride"),
        ({"stride": 0}, "at least 1"),
        ({"stride": "two"}, "stride"),
        ({"padding": 7}, "max_padding"),
        ({"pool_size": 40}, "max_pool_size"),
        ({"pool_size": 6}, "larger than the 4×4 feature map"),
        ({"pool": "median"}, "max, min, avg"),
    ],
)
def test_bad_image_parameters_are_422_naming_the_limit(
    client: TestClient, form: dict, needle: str
) -> None:
    r = post_image(client, encode(picture(6, 6), "PNG"), **form)
    assert r.status_code == 422 and needle in r.json()["detail"], r.json()
    assert client.get("/healthz").status_code == 200


def test_no_file_and_no_sample_is_422(client: TestClient) -> None:
    r = client.post("/api/cnn/image", data={"kernel": "edge"})
    assert r.status_code == 422 and "file" in r.json()["detail"]


def test_an_unknown_sample_is_422(client: TestClient) -> None:
    r = client.post("/api/cnn/image", data={"sample": "cat"})
    assert r.status_code == 422 and "Unknown sample" in r.json()["detail"]


# ---- the page, its JSON twin and the schema -----------------------------------------------------


def test_the_page_and_its_twin_show_the_notes_examples(client: TestClient) -> None:
    page = client.get("/lessons/cnn")
    assert page.status_code == 200 and 'id="window-data"' in page.text
    view = client.get("/api/lessons/cnn/view").json()
    assert view["result"]["window"]["output"] == [[6, 8], [12, 14]]
    assert view["result"]["pooling"]["outputs"]["max"] == [[4, 5], [3, 7]]
    assert view["figures"]["pooling"]["data"][0]["z"] == [[4, 5], [3, 7]]
    assert view["figures"]["window-output"]["data"][0]["z"] == [[6, 8], [12, 14]]
    tiny = client.get("/api/lessons/cnn/view", params={"sample": "tiny", "image_pool_size": 1})
    assert tiny.json()["result"]["image"]["feature_counts"] == {
        "input": 75,
        "conv": 27,
        "pooled": 27,
    }


def test_the_page_state_comes_from_the_url(client: TestClient) -> None:
    query = {
        "matrix": "1 2 3 4; 5 6 7 8",
        "kernel": "1, -1",
        "stride": 2,
        "step": 9,
        "fmap": "1,2;3,4",
        "pool_size": 1,
        "pool_stride": "",
    }
    r = client.get("/api/lessons/cnn/view", params=query)
    window = r.json()["result"]["window"]
    assert window["output"] == [[-1, -1]] and window["step"] == 2  # a step past the end: the last
    assert r.json()["params"]["matrix"] == "1, 2, 3, 4; 5, 6, 7, 8"


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"matrix": "1, 2; 3"}, "ragged"),
        ({"matrix": "1, x"}, "must be a number"),
        ({"matrix": ";".join(["1"] * 13)}, "max_matrix_side"),
        ({"kernel": "1 " * 8}, "max_kernel_size"),
        ({"sample": "cat"}, "Unknown sample"),
        ({"out_channels": 17}, "max_out_channels"),
        ({"layer_kernel": 7}, "spans 7 rows"),
        ({"image_kernel": "nope"}, "not a preset"),
    ],
)
def test_a_bad_page_url_is_422_naming_the_problem(
    client: TestClient, query: dict, needle: str
) -> None:
    r = client.get("/api/lessons/cnn/view", params=query)
    assert r.status_code == 422 and needle in r.json()["detail"]
    assert client.get("/lessons/cnn", params=query).status_code == 422


def test_openapi_describes_the_cnn_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/cnn/convolve", "/api/cnn/pool", "/api/cnn/image"):
        operation = paths[path]["post"]
        assert "requestBody" in operation and "200" in operation["responses"]
    assert "/lessons/cnn/image" not in paths
    limits = client.get("/api/limits").json()
    for name in ("max_matrix_side", "max_kernel_size", "max_stride", "max_pool_size"):
        assert name in limits


def test_openapi_documents_the_picture_routes_limits_413_415_and_429(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/api/cnn/image"]["post"]["responses"]
    assert {"413", "415", "422", "429"} <= set(responses)
    assert "picture_max_memory_bytes" in client.get("/openapi.json").text


def test_booleans_in_a_matrix_are_422_not_ones_and_zeros(client) -> None:
    body = {"input": [[True, False], [1, 2]], "kernel": [[1]]}
    r = client.post("/api/cnn/convolve", json=body)
    assert r.status_code == 422 and "number" in r.json()["detail"]
    pooled = client.post("/api/cnn/pool", json={"input": [[True, 1], [2, 3]], "size": 2})
    assert pooled.status_code == 422
