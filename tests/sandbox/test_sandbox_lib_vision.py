"""torchvision.transforms as programs get them, against independent computations (NumPy, torch's
own interpolate/rot90/flip, the RNG draws torchvision makes), and every refusal."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from PIL import Image

from app.sandbox import lib_vision
from app.sandbox.guards import Guard
from app.sandbox.library import get_attribute
from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused
from app.sandbox.modules import import_module, member

T = lib_vision.TRANSFORMS.members
MODE = lib_vision.InterpolationMode


def make_guard(**limits: Any) -> Guard:
    guard = Guard(SandboxLimits(**limits))
    guard.call = lambda fn, args, kwargs: fn(*args, **kwargs)  # learner callables stand-in
    return guard


def make(name: str, *args: Any, guard: Guard | None = None, **kwargs: Any) -> Any:
    return T[name].impl(guard or make_guard(), args, kwargs)


def apply(transform: Any, img: Any, guard: Guard | None = None) -> Any:
    return lib_vision.call_transform(guard or make_guard(), transform, (img,), {})


def picture(height: int = 6, width: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_torchvision_modules_are_registered() -> None:
    assert import_module("torchvision.transforms") is lib_vision.TRANSFORMS
    assert member(import_module("torchvision"), "datasets", "torchvision") is lib_vision.DATASETS


def test_first_transform_adds_the_notice_once() -> None:
    guard = make_guard()
    make("ToTensor", guard=guard)
    make("Normalize", [0.5], [0.5], guard=guard)
    assert guard.notices == [lib_vision.NOTICE]


def test_to_tensor_and_normalize_of_an_hwc_array_as_torchvision_computes_them() -> None:
    pixels = picture()
    pipeline = make(
        "Compose", [make("ToTensor"), make("Normalize", (0.5, 0.4, 0.3), (0.2, 0.2, 0.1))]
    )
    out = apply(pipeline, pixels)
    expected = (pixels.transpose(2, 0, 1) / 255.0 - np.array([0.5, 0.4, 0.3])[:, None, None]) / (
        np.array([0.2, 0.2, 0.1])[:, None, None]
    )
    assert out.dtype == torch.float32 and out.shape == (3, 6, 8)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_to_tensor_keeps_other_dtypes_unscaled_and_refuses_tensors() -> None:
    values = np.arange(12.0).reshape(3, 4)
    out = apply(make("ToTensor"), values)
    assert out.dtype == torch.float64 and torch.equal(out, torch.from_numpy(values)[None])
    with pytest.raises(
        TypeError, match="pic should be PIL Image or ndarray. Got <class 'torch.Tensor'>"
    ):
        apply(make("ToTensor"), torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional. Got 1 dimensions."):
        apply(make("ToTensor"), np.zeros(3))


def test_to_tensor_of_a_pil_image_uses_the_lessons_conversion() -> None:
    pixels = picture()
    out = apply(make("ToTensor"), Image.fromarray(pixels))
    np.testing.assert_allclose(out.numpy(), pixels.transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_normalize_refuses_what_torchvision_refuses() -> None:
    normalize = make("Normalize", [0.5], [0.5])
    with pytest.raises(TypeError, match="img should be Tensor Image"):
        apply(normalize, picture())
    with pytest.raises(TypeError, match="Input tensor should be a float tensor. Got torch.uint8."):
        apply(normalize, torch.zeros(1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="std evaluated to zero"):
        apply(make("Normalize", [0.5], [0.0]), torch.zeros(1, 2, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_resize_equals_antialiased_bilinear_interpolation(dtype: torch.dtype) -> None:
    img = (torch.rand(3, 12, 20) * 255).to(dtype)
    out = apply(make("Resize", 6), img)  # shorter side 6: (6, 10)
    expected = torch_f.interpolate(
        img[None].float(), size=[6, 10], mode="bilinear", align_corners=False, antialias=True
    )[0]
    if dtype == torch.uint8:
        expected = expected.round().to(torch.uint8)
    assert out.shape == (3, 6, 10) and out.dtype == dtype
    assert torch.equal(out, expected)
    nearest = apply(make("Resize", (24, 40), interpolation=MODE.NEAREST), img)
    assert torch.equal(nearest, img.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2))


def test_resize_over_the_element_limit_is_refused_before_allocating() -> None:
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        apply(make("Resize", 100_000), torch.zeros(3, 10, 10))


def test_center_crop_slices_the_middle_and_pads_with_zeros() -> None:
    img = torch.arange(2 * 6 * 8.0).view(2, 6, 8)
    assert torch.equal(apply(make("CenterCrop", (2, 4)), img), img[:, 2:4, 2:6])
    padded = apply(make("CenterCrop", 10), img)
    assert padded.shape == (2, 10, 10)
    assert torch.equal(padded[:, 2:8, 1:9], img) and padded.sum() == img.sum()


def test_random_crop_draws_its_corner_from_the_global_rng_as_torchvision_does() -> None:
    img = torch.arange(10 * 12.0).view(1, 10, 12)
    torch.manual_seed(4)
    out = apply(make("RandomCrop", (4, 5)), img)
    torch.manual_seed(4)
    top = int(torch.randint(0, 7, size=(1,)).item())
    left = int(torch.randint(0, 8, size=(1,)).item())
    assert torch.equal(out, img[:, top : top + 4, left : left + 5])
    padded = apply(make("RandomCrop", 14, padding=2), img)
    assert padded.shape == (1, 14, 14) and padded.sum() == img.sum()
    with pytest.raises(ValueError, match="Required crop size \\(20, 20\\) is larger than input"):
        apply(make("RandomCrop", 20), img)
    assert apply(make("RandomCrop", 20, pad_if_needed=True), img).shape == (1, 20, 20)


def test_random_flips_use_one_draw_of_torch_rand() -> None:
    img = torch.arange(6.0).view(1, 2, 3)
    assert torch.equal(apply(make("RandomHorizontalFlip", p=1.0), img), img.flip(-1))
    assert torch.equal(apply(make("RandomVerticalFlip", p=1.0), img), img.flip(-2))
    torch.manual_seed(1)
    out = apply(make("RandomHorizontalFlip"), img)
    after = torch.rand(1)
    torch.manual_seed(1)
    flipped = torch.rand(1) < 0.5
    assert torch.equal(out, img.flip(-1) if flipped else img)
    assert torch.equal(torch.rand(1), after)  # exactly one draw was used


def test_rotation_by_ninety_degrees_equals_rot90() -> None:
    img = torch.arange(3 * 6 * 6.0).view(3, 6, 6)
    out = apply(make("RandomRotation", (90, 90)), img)
    assert torch.equal(out, torch.rot90(img, 1, dims=(-2, -1)))
    filled = apply(make("RandomRotation", (45, 45), fill=7), torch.zeros(1, 8, 8))
    assert filled[0, 0, 0] == 7 and filled[0, 4, 4] == 0


def test_rotation_angle_is_torchvisions_uniform_draw() -> None:
    rotation = make("RandomRotation", 30)
    assert rotation.degrees == [-30.0, 30.0]
    torch.manual_seed(2)
    apply(rotation, torch.zeros(1, 4, 4))
    after = torch.rand(1)
    torch.manual_seed(2)
    torch.empty(1).uniform_(-30.0, 30.0)
    assert torch.equal(torch.rand(1), after)
    with pytest.raises(ValueError, match="If degrees is a single number, it must be positive."):
        make("RandomRotation", -3)


def test_grayscale_uses_torchvisions_weights() -> None:
    img = torch.rand(3, 4, 5)
    expected = (0.2989 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]
    assert torch.allclose(apply(make("Grayscale"), img), expected)
    assert apply(make("Grayscale", num_output_channels=3), img).shape == (3, 4, 5)
    with pytest.raises(TypeError, match="permitted channel values are \\[1, 3\\], but found 2"):
        apply(make("Grayscale"), torch.zeros(2, 4, 5))


def test_lambda_and_learner_callables_in_a_compose() -> None:
    class Double:  # a learner transform class with __call__
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    pipeline = make("Compose", [make("Lambda", lambda x: x + 1), Double()])
    assert torch.equal(apply(pipeline, torch.ones(2)), torch.full((2,), 4.0))
    with pytest.raises(TypeError, match="Argument lambd should be callable, got 'int'"):
        make("Lambda", 3)


def test_a_compose_that_contains_itself_stops_at_the_call_depth_limit() -> None:
    stages: list[Any] = []
    pipeline = make("Compose", stages)
    stages.append(pipeline)
    with pytest.raises(SandboxLimitExceeded, match="max_call_depth"):
        apply(pipeline, torch.zeros(1), make_guard(max_call_depth=20))


def test_transforms_print_as_torchvision_prints_them() -> None:
    pipeline = make(
        "Compose", [make("Resize", 32), make("CenterCrop", 28), make("ToTensor"),
                    make("Normalize", [0.5], [0.5]), make("RandomRotation", 10)]
    )  # fmt: skip
    assert repr(pipeline) == (
        "Compose(\n"
        "    Resize(size=32, interpolation=bilinear, max_size=None, antialias=True)\n"
        "    CenterCrop(size=(28, 28))\n"
        "    ToTensor()\n"
        "    Normalize(mean=[0.5], std=[0.5])\n"
        "    RandomRotation(degrees=[-10.0, 10.0], interpolation=nearest, expand=False, fill=0)\n"
        ")"
    )
    assert get_attribute(pipeline, "transforms")[1].size == (28, 28)


def test_inputs_and_arguments_are_checked_as_torchvision_checks_them() -> None:
    with pytest.raises(TypeError, match="Unexpected type <class 'numpy.ndarray'>"):
        apply(make("Resize", 4), picture())
    with pytest.raises(TypeError, match="img should be PIL Image"):
        apply(make("RandomHorizontalFlip", p=1.0), picture())
    with pytest.raises(TypeError, match="Size should be int or sequence"):
        make("Resize", None)
    with pytest.raises(TypeError, match="Resize.__init__\\(\\) got an unexpected keyword"):
        make("Resize", 4, mode="bilinear")
    with pytest.raises(TypeError, match="takes 2 positional arguments but 3 were given"):
        lib_vision.call_transform(make_guard(), make("ToTensor"), (1, 2), {})
    with pytest.raises(SandboxRefused, match="expand=True"):
        make("RandomRotation", 10, expand=True)


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "ImageFolder"])
def test_datasets_fail_naming_the_bundled_data(name: str) -> None:
    with pytest.raises(RuntimeError, match="load_digits") as caught:
        lib_vision.DATASETS.members[name].impl(make_guard(), ("./data",), {"download": True})
    reason = "no image folders" if name == "ImageFolder" else "no internet"
    assert reason in str(caught.value)
