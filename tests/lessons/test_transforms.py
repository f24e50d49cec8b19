"""Transforms: every class checked against an independent NumPy or Pillow computation."""

from __future__ import annotations

import base64
import contextlib
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from app.lessons import transforms as T
from app.lessons.errors import LessonInputError, LimitExceeded
from app.lessons.images import sample_image
from app.lessons.transform_classes import (
    CLASSES,
    PICTURES,
    CenterCrop,
    Compose,
    Grayscale,
    HorizontalFlip,
    MultiplyTransform,
    Normalize,
    PictureDataset,
    RandomCrop,
    Resize,
    Rotate,
    ToTensor,
    Transform,
)
from app.lessons.transform_pipeline import (
    Step,
    TransformLimits,
    check_pipeline,
    pipeline_from_url,
    pipeline_to_url,
)

LIMITS = TransformLimits()


def picture(height: int = 6, width: int = 8, seed: int = 0) -> Image.Image:
    """A random RGB picture (H x W), so that no two pixels agree by accident."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def steps(text: str, limits: TransformLimits | None = LIMITS) -> list[Step]:
    return check_pipeline(pipeline_from_url(text), limits)


# ---- each transform against NumPy / Pillow ------------------------------------------------------


def test_to_tensor_is_the_hwc_array_transposed_to_chw_over_255() -> None:
    image = picture(5, 7)
    x = ToTensor()(image)
    expected = np.asarray(image).transpose(2, 0, 1) / 255
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 5, 7)
    np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-7)


def test_to_tensor_of_a_grayscale_picture_has_one_channel() -> None:
    gray = picture(4, 6).convert("L")
    x = ToTensor()(gray)
    assert tuple(x.shape) == (1, 4, 6)
    np.testing.assert_allclose(x[0].numpy(), np.asarray(gray) / 255, atol=1e-7)


def test_to_tensor_refuses_a_tensor() -> None:
    with pytest.raises(LessonInputError, match="already"):
        ToTensor()(torch.zeros(3, 2, 2))


def test_normalize_is_x_minus_mean_over_std_per_channel() -> None:
    x = ToTensor()(picture())
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = Normalize(mean, std)(x)
    expected = (x.numpy() - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)
    one = Normalize([0.5], [0.25])(x)  # one value for every channel
    np.testing.assert_allclose(one.numpy(), (x.numpy() - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_normalize_with_the_wrong_number_of_channels_says_how_many() -> None:
    gray = ToTensor()(picture().convert("L"))
    with pytest.raises(LessonInputError, match="3 values for mean.*1 channel"):
        Normalize([0.5, 0.5, 0.5], [0.5])(gray)


def test_normalize_on_an_image_says_to_put_it_after_to_tensor() -> None:
    with pytest.raises(LessonInputError, match="Normalize works on tensors.*after to_tensor"):
        Normalize([0.5], [0.5])(picture())


def test_grayscale_is_pillows_itu_r_601_2_luma() -> None:
    image = picture(9, 11, seed=3)
    rgb = np.asarray(image).astype(np.int64)
    gray = pixels(Grayscale()(image))
    # Pillow's fixed-point L = R*299/1000 + G*587/1000 + B*114/1000, rounded
    fixed = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    np.testing.assert_array_equal(gray, fixed)
    exact = rgb[..., 0] * 299 / 1000 + rgb[..., 1] * 587 / 1000 + rgb[..., 2] * 114 / 1000
    assert np.abs(gray - exact).max() <= 0.5 + 1e-9
    assert Grayscale()(image).mode == "L"


def test_resize_to_height_width_and_by_the_shorter_side() -> None:
    image = picture(64, 96)  # H 64, W 96
    assert pixels(Resize((20, 30))(image)).shape == (20, 30, 3)
    # an int is the shorter side, the aspect ratio kept: 64 -> 48 and 96 -> 72
    assert pixels(Resize(48)(image)).shape == (48, 72, 3)
    assert pixels(Resize(48)(picture(96, 64))).shape == (72, 48, 3)


def test_resize_keeps_a_flat_colour_and_same_size_is_the_identity() -> None:
    flat = Image.new("RGB", (40, 30), (12, 200, 99))
    assert (pixels(Resize((7, 13))(flat)) == (12, 200, 99)).all()
    image = picture(10, 12)
    np.testing.assert_array_equal(pixels(Resize((10, 12))(image)), pixels(image))


def test_center_crop_is_the_centred_numpy_slice() -> None:
    image = picture(7, 10)
    a = pixels(image)
    np.testing.assert_array_equal(pixels(CenterCrop((3, 4))(image)), a[2:5, 3:7])
    np.testing.assert_array_equal(pixels(CenterCrop(5)(image)), a[1:6, 2:7])


def test_center_crop_bigger_than_the_picture_pads_with_black_like_torchvision() -> None:
    image = picture(4, 4)
    padded = np.pad(pixels(image), ((1, 2), (2, 2), (0, 0)))  # 7x8: (7-4)//2 = 1 on top
    np.testing.assert_array_equal(pixels(CenterCrop((7, 8))(image)), padded)


def test_random_crop_is_a_window_of_the_picture_and_its_seed_replays_it() -> None:
    image = picture(12, 15)
    a = pixels(image)
    crop = pixels(RandomCrop((4, 5), seed=7)(image))
    windows = [
        (top, left)
        for top in range(12 - 4 + 1)
        for left in range(15 - 5 + 1)
        if np.array_equal(a[top : top + 4, left : left + 5], crop)
    ]
    assert len(windows) == 1
    # torchvision's draw: top then left, from torch's generator seeded with the seed
    generator = torch.Generator().manual_seed(7)
    top = int(torch.randint(0, 12 - 4 + 1, (1,), generator=generator))
    left = int(torch.randint(0, 15 - 5 + 1, (1,), generator=generator))
    assert windows == [(top, left)]
    np.testing.assert_array_equal(pixels(RandomCrop((4, 5), seed=7)(image)), crop)
    draws = {pixels(RandomCrop((4, 5), seed=s)(image)).tobytes() for s in range(6)}
    assert len(draws) > 1


def test_random_crop_bigger_than_the_picture_is_refused() -> None:
    with pytest.raises(LessonInputError, match="at least 9×9.*6×8"):
        RandomCrop(9)(picture(6, 8))


def test_rotate_90_is_numpy_rot90_and_30_keeps_the_shape_with_black_corners() -> None:
    square = picture(9, 9)
    np.testing.assert_array_equal(pixels(Rotate(90)(square)), np.rot90(pixels(square)))
    flat = Image.new("RGB", (20, 20), (250, 250, 250))
    turned = pixels(Rotate(30)(flat))
    assert turned.shape == (20, 20, 3)
    assert (turned[0, 0] == 0).all() and (turned[10, 10] == 250).all()


def test_horizontal_flip_mirrors_images_and_tensors_like_numpy() -> None:
    image = picture(5, 6)
    np.testing.assert_array_equal(pixels(HorizontalFlip()(image)), pixels(image)[:, ::-1])
    x = ToTensor()(image)
    np.testing.assert_array_equal(HorizontalFlip()(x).numpy(), x.numpy()[:, :, ::-1])


def test_multiply_scales_a_tensor_and_refuses_an_image() -> None:
    x = ToTensor()(picture())
    np.testing.assert_allclose(MultiplyTransform(2.5)(x).numpy(), x.numpy() * 2.5, rtol=1e-6)
    with pytest.raises(LessonInputError, match="after to_tensor"):
        MultiplyTransform(2)(picture())


@pytest.mark.parametrize(
    "transform",
    [Resize(4), CenterCrop(2), RandomCrop(2), Rotate(10), Grayscale()],
    ids=repr,
)
def test_image_transforms_refuse_a_tensor_and_name_the_order(transform: Transform) -> None:
    name = type(transform).__name__
    with pytest.raises(LessonInputError, match=f"{name} works on images.*before to_tensor"):
        transform(torch.zeros(3, 4, 4))


# ---- Compose and the Dataset -----------------------------------------------------------------


def test_compose_applies_the_transforms_in_list_order() -> None:
    image = picture(8, 8)
    x = Compose([Grayscale(), ToTensor()])(image)
    assert tuple(x.shape) == (1, 8, 8)
    with pytest.raises(LessonInputError, match="Grayscale works on images"):
        Compose([ToTensor(), Grayscale()])(image)
    a = np.asarray(image).transpose(2, 0, 1) / 255
    norm, times = Normalize([0.5], [0.5]), MultiplyTransform(2)
    np.testing.assert_allclose(
        Compose([ToTensor(), norm, times])(image).numpy(), (a - 0.5) / 0.5 * 2, atol=1e-6
    )
    np.testing.assert_allclose(
        Compose([ToTensor(), times, norm])(image).numpy(), (a * 2 - 0.5) / 0.5, atol=1e-6
    )


def test_compose_stages_are_each_intermediate_and_end_where_call_ends() -> None:
    image = picture(10, 10)
    compose = Compose([Resize((6, 6)), Grayscale(), ToTensor()])
    stages = list(compose.stages(image))
    assert [type(s).__name__ for s in stages] == ["Image", "Image", "Tensor"]
    assert stages[0].size == (6, 6) and stages[1].mode == "L"
    assert torch.equal(stages[-1], compose(image))
    assert repr(compose) == "Compose([Resize((6, 6)), Grayscale(), ToTensor()])"


def test_dataset_getitem_returns_the_transformed_sample_and_its_target() -> None:
    transform = Compose([Resize((16, 16)), ToTensor()])
    dataset = PictureDataset(transform=transform)
    assert len(dataset) == len(PICTURES) == 4
    for index, (name, label) in enumerate(PICTURES):
        sample, target = dataset[index]
        assert torch.equal(sample, transform(sample_image(name)))
        assert target == CLASSES.index(label)
    raw, target = PictureDataset()[0]
    assert isinstance(raw, Image.Image) and target == 0


def test_a_dataloader_batches_the_transformed_samples() -> None:
    dataset = PictureDataset(transform=Compose([Resize((8, 8)), ToTensor()]))
    batches = list(DataLoader(dataset, batch_size=2))
    assert len(batches) == 2
    samples, targets = batches[0]
    assert tuple(samples.shape) == (2, 3, 8, 8)  # (N, C, H, W)
    assert targets.tolist() == [dataset[0][1], dataset[1][1]]


# ---- pipelines: JSON, URL, limits ------------------------------------------------------------


def test_the_url_string_reads_as_the_api_json_and_round_trips() -> None:
    text = (
        "resize:64x48,center_crop:40,random_crop:32x30:7,rotate:-22.5,horizontal_flip,"
        "grayscale,to_tensor,normalize:0.5:0.25,multiply:2"
    )
    assert pipeline_from_url(text)[:3] == [
        {"name": "resize", "size": [64, 48]},
        {"name": "center_crop", "size": 40},
        {"name": "random_crop", "size": [32, 30], "seed": 7},
    ]
    parsed = steps(text)
    assert pipeline_to_url(parsed) == text
    three = steps("to_tensor,normalize:0.485_0.456_0.406:0.229_0.224_0.225")
    assert three[1].kwargs == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert pipeline_to_url(three) == "to_tensor,normalize:0.485_0.456_0.406:0.229_0.224_0.225"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "grayscale"}, "must be a JSON list"),
        ([{"name": "sharpen"}], "Stage 1: there is no transform 'sharpen'"),
        (["grayscale"], 'Stage 1: each transform is an object with a "name"'),
        ([{"name": "resize"}], r"Stage 1 \(resize\): needs size"),
        ([{"name": "resize", "size": "big"}], r"Stage 1 \(resize\): size must be"),
        ([{"name": "resize", "size": [0, 4]}], "at least 1 pixel"),
        ([{"name": "resize", "size": True}], "size must be"),
        ([{"name": "grayscale", "size": 3}], "unknown parameter 'size'; it takes no parameters"),
        ([{"name": "rotate", "degrees": "x"}], "degrees must be a number"),
        ([{"name": "rotate", "degrees": 400}], "between -360 and 360"),
        ([{"name": "normalize", "mean": [0.5], "std": [0]}], "every std must be above 0"),
        ([{"name": "normalize", "mean": [1, 2, 3, 4], "std": [1]}], "1 to 3 numbers"),
        ([{"name": "random_crop", "size": 4, "seed": -1}], "seed must be a whole number"),
    ],
)
def test_bad_pipelines_are_refused_naming_the_stage_and_the_problem(
    raw: object, message: str
) -> None:
    with pytest.raises(LessonInputError, match=message):
        check_pipeline(raw, LIMITS)


def test_limits_are_named_with_the_value_they_got() -> None:
    with pytest.raises(LimitExceeded, match="13, over the limit of 12.*max_pipeline_stages"):
        check_pipeline([{"name": "grayscale"}] * 13, LIMITS)
    with pytest.raises(LimitExceeded, match="2000, over the limit of 1024.*max_resize_side"):
        check_pipeline([{"name": "resize", "size": [2000, 10]}], LIMITS)
    with pytest.raises(LimitExceeded, match="max_multiply_factor"):
        check_pipeline([{"name": "multiply", "factor": -5000}], LIMITS)


def test_a_shorter_side_resize_of_a_long_picture_is_refused_before_it_runs() -> None:
    long = Image.new("RGB", (400, 10))  # 10 high: shorter side 100 makes it 4000 wide
    with pytest.raises(LimitExceeded, match="100×4000.*4000, over the limit of 1024"):
        T.run_pipeline(long, steps("resize:100"), LIMITS)


def test_values_that_overflow_float32_are_a_clear_error_not_inf() -> None:
    image = picture()
    text = "to_tensor,normalize:0.5:1e-39,multiply:1000"
    with pytest.raises(LessonInputError, match=r"Stage 2 \(normalize\).*overflowed float32"):
        T.run_pipeline(image, steps(text), LIMITS, stop_at_error=True)


# ---- what each stage shows ---------------------------------------------------------------------


def test_every_stage_is_described_as_numpy_sees_it() -> None:
    image = picture(8, 8, seed=5)
    run = T.run_pipeline(image, steps("grayscale,to_tensor,normalize:0.5:0.5"), LIMITS)
    gray = np.asarray(image.convert("L"))
    tensor = gray[None] / 255
    normal = (tensor - 0.5) / 0.5
    expected = [
        ("grayscale", "image", [8, 8, 1], "HWC", "uint8", gray.min(), gray.max()),
        ("to_tensor", "tensor", [1, 8, 8], "CHW", "float32", tensor.min(), tensor.max()),
        ("normalize", "tensor", [1, 8, 8], "CHW", "float32", normal.min(), normal.max()),
    ]
    for stage, (name, kind, shape, layout, dtype, low, high) in zip(
        run["stages"], expected, strict=True
    ):
        assert (stage["name"], stage["kind"], stage["shape"]) == (name, kind, shape)
        assert (stage["layout"], stage["dtype"]) == (layout, dtype)
        assert stage["min"] == pytest.approx(low, abs=1e-6)
        assert stage["max"] == pytest.approx(high, abs=1e-6)
    assert run["input"]["shape"] == [8, 8, 3] and run["input"]["mode"] == "RGB"
    assert run["error"] is None


def test_histograms_count_like_numpy() -> None:
    image = picture(12, 9, seed=2)
    run = T.run_pipeline(image, steps("to_tensor,normalize:0.2:0.3"), LIMITS)
    rgb = np.asarray(image)
    hist = run["input"]["histogram"]
    assert hist["channels"] == ["R", "G", "B"]
    for c in range(3):
        assert hist["counts"][c] == np.histogram(rgb[..., c], bins=32, range=(0, 256))[0].tolist()
    x = (rgb.transpose(2, 0, 1) / 255 - 0.2) / 0.3
    last = run["stages"][-1]["histogram"]
    edges = np.linspace(x.min(), x.max(), 33)
    np.testing.assert_allclose(last["edges"], edges, atol=1e-5)
    for c in range(3):
        counts = np.histogram(x[c], bins=32, range=(x.min(), x.max()))[0]
        assert np.abs(np.array(last["counts"][c]) - counts).sum() <= 2  # float32 vs float64 edges


def test_a_tensor_in_0_1_is_previewed_times_255_and_others_min_max_per_channel() -> None:
    image = picture(6, 6)
    run = T.run_pipeline(image, steps("to_tensor,normalize:0.5:0.5"), LIMITS)
    as_is, scaled = run["stages"]
    assert as_is["display"].startswith("values × 255")
    np.testing.assert_array_equal(decode(as_is["preview"]), np.asarray(image))
    assert scaled["display"].startswith("min-max scaled per channel")
    x = (np.asarray(image).astype(np.float64) / 255 - 0.5) / 0.5
    lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    expected = np.round((x - lo) / (hi - lo) * 255)
    assert np.abs(decode(scaled["preview"]).astype(int) - expected).max() <= 1


def test_large_stages_are_previewed_shrunk_and_say_so() -> None:
    run = T.run_pipeline(picture(300, 100), steps("to_tensor"), LIMITS, preview_side=64)
    stage = run["stages"][0]
    assert stage["shape"] == [3, 300, 100] and stage["preview_size"] == [64, 21]
    assert decode(stage["preview"]).shape == (64, 21, 3)
    assert "shrunk to fit 64 px" in stage["display"]


def test_the_page_shows_how_far_a_wrongly_ordered_pipeline_got() -> None:
    run = T.run_pipeline(picture(), steps("grayscale,normalize:0.5:0.5,to_tensor"), LIMITS)
    assert [s["name"] for s in run["stages"]] == ["grayscale"]
    assert run["error"] == {
        "stage": 2,
        "message": "Stage 2 (normalize): Normalize works on tensors, but it got an image: "
        "put it after to_tensor.",
    }


def test_explore_shows_the_dataset_through_the_pipeline() -> None:
    params = T.TransformParams(p="resize:16x16,grayscale,to_tensor", stage=2)
    result = T.explore(params, LIMITS, 256)
    assert result["stage"] == 2 and result["p"] == params.p
    assert result["classes"] == ["Resize", "Grayscale", "ToTensor"]
    assert [item["shape"] for item in result["dataset"]] == [[1, 16, 16]] * 4
    assert [item["target"] for item in result["dataset"]] == [0, 1, 2, 2]


def test_the_snippet_runs_and_computes_what_the_page_shows() -> None:
    params = T.TransformParams(p="resize:32x32,random_crop:16x16:3,to_tensor,multiply:2")
    code = T.snippet(params)
    assert "Compose([" in code and "RandomCrop((16, 16), seed=3)," in code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "snippet", "exec"), {})
    shape_line = printed.getvalue().splitlines()[0]
    page = T.explore(params, LIMITS, 256)["stages"][-1]
    assert shape_line.startswith("torch.Size([3, 16, 16]) torch.float32")
    low, high = map(float, shape_line.split()[-2:])
    assert low == pytest.approx(page["min"]) and high == pytest.approx(page["max"])
