"""The Transforms lesson: a pipeline of the notes' transform classes run on a sample picture.

The classes are in ``transform_classes``, the pipeline's JSON list and URL string in
``transform_pipeline`` and each stage's preview in ``stage_previews``. Here a pipeline runs one
stage at a time (the page, and POST /api/transforms/apply through the picture workers), goes
through ``PictureDataset`` as the notes' ``dataset[i]`` does, and becomes the page's snippet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from app.lessons.errors import LessonInputError
from app.lessons.images import SAMPLES, sample_image
from app.lessons.stage_previews import stage_preview
from app.lessons.transform_classes import (
    CLASSES,
    PICTURES,
    CenterCrop,
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
    code_number,
)
from app.lessons.transform_pipeline import (
    TRANSFORMS,
    Step,
    TransformLimits,
    build,
    check_pipeline,
    check_sizes,
    pipeline_from_url,
    pipeline_to_url,
)


def run_pipeline(
    image: Image.Image,
    steps: Sequence[Step],
    limits: TransformLimits,
    preview_side: int = 256,
    stop_at_error: bool = False,
) -> dict[str, Any]:
    """The input and every stage after it, described; one Compose runs the transforms.

    A transform that refuses its sample (a tensor given to Resize) ends the run: with
    ``stop_at_error`` the message is raised (the API's 422), otherwise it comes back as
    ``error`` with the stages before it (the page shows how far the pipeline got).
    """
    check_sizes(steps, image.height, image.width, limits)
    compose = build(steps)
    result: dict[str, Any] = {
        "input": stage_preview(image, preview_side) | {"name": "input", "call": "the picture"},
        "stages": [],
        "error": None,
        "compose": repr(compose),
    }
    stages = compose.stages(image)
    for number, (step, transform) in enumerate(zip(steps, compose.transforms, strict=True), 1):
        try:
            sample = next(stages)
            described = stage_preview(sample, preview_side)
        except LessonInputError as error:
            message = f"Stage {number} ({step.name}): {error}"
            if stop_at_error:
                raise LessonInputError(message) from None
            result["error"] = {"stage": number, "message": message}
            break
        result["stages"].append({"name": step.name, "call": repr(transform)} | described)
    return result


def dataset_items(
    steps: Sequence[Step], limits: TransformLimits, preview_side: int = 96
) -> list[dict[str, Any]]:
    """``dataset[i]`` for every picture of PictureDataset with the pipeline as its transform."""
    dataset = PictureDataset(transform=build(steps))
    items = []
    for index in range(len(dataset)):
        name, label = PICTURES[index]
        item: dict[str, Any] = {"index": index, "picture": name, "label": label}
        try:
            picture = dataset.pictures[index]
            check_sizes(steps, picture.height, picture.width, limits)
            sample, target = dataset[index]
            item |= {"target": target, **stage_preview(sample, preview_side), "error": None}
        except LessonInputError as error:
            item |= {"target": dataset.targets[index], "error": str(error)}
        item.pop("histogram", None)
        items.append(item)
    return items


# ---- the page --------------------------------------------------------------------------------


# The contract's example pipeline: every kind of stage, ending in a normalized 1-channel tensor.
DEFAULT_PIPELINE = "resize:64x64,grayscale,rotate:30,to_tensor,normalize:0.5:0.5"


@dataclass(frozen=True)
class TransformParams:
    """What the page's URL holds (an uploaded picture cannot be in it)."""

    p: str = DEFAULT_PIPELINE  # the pipeline, as pipeline_from_url reads it
    sample: str = "flower"  # neighbouring pixels alike, so resizing and rotating read clearly
    stage: int = -1  # the stage the histogram shows: 0 the input, 1.. a transform, -1 the last


def check_params(params: TransformParams, limits: TransformLimits) -> list[Step]:
    """The page's pipeline, validated, and its sample and stage checked."""
    if params.sample not in SAMPLES:
        raise LessonInputError(
            f"Unknown sample {params.sample[:40]!r}: choose one of {', '.join(SAMPLES)}."
        )
    return check_pipeline(pipeline_from_url(params.p), limits)


def explore(params: TransformParams, limits: TransformLimits, preview_side: int) -> dict[str, Any]:
    """Everything the page shows: every stage on the sample, and the dataset through it."""
    steps = check_params(params, limits)
    run = run_pipeline(sample_image(params.sample), steps, limits, preview_side)
    shown = len(run["stages"])
    stage = shown if params.stage < 0 else min(params.stage, shown)
    return run | {
        "stage": stage,
        "pipeline": [step.as_json() for step in steps],
        "p": pipeline_to_url(steps),
        "classes": list(dict.fromkeys(TRANSFORMS[step.name].__name__ for step in steps)),
        "dataset": dataset_items(steps, limits),
    }


def torchvision_equivalent(transform: Transform) -> str:
    """The torchvision.transforms call that does the same (``T`` is torchvision.transforms)."""
    if isinstance(transform, Resize | CenterCrop | Normalize | Grayscale | ToTensor):
        return f"T.{transform!r}"
    if isinstance(transform, RandomCrop):
        return f"T.RandomCrop({transform.size!r})"
    if isinstance(transform, Rotate):
        degrees = code_number(transform.degrees)
        return f"T.RandomRotation(({degrees}, {degrees}), T.InterpolationMode.BILINEAR)"
    if isinstance(transform, HorizontalFlip):
        return "T.RandomHorizontalFlip(p=1.0)"
    if isinstance(transform, MultiplyTransform):
        return f"T.Lambda(lambda x: x * {code_number(transform.factor)})"
    return repr(transform)


def final_kind(steps: Sequence[Step]) -> str:
    """What the pipeline returns, when its order is right: a tensor after to_tensor."""
    return "tensor" if any(step.name == "to_tensor" for step in steps) else "image"


def snippet(params: TransformParams) -> str:
    """The page's pipeline as code that runs from the project folder."""
    steps = check_pipeline(pipeline_from_url(params.p), None)
    compose = build(steps)
    names = list(dict.fromkeys(type(t).__name__ for t in compose.transforms))
    imports = ", ".join(["Compose", *names, "PictureDataset"])
    lines = [
        "# Run it from the project folder: these are the classes this page shows.",
        "from app.lessons.images import sample_image",
        f"from app.lessons.transform_classes import {imports}",
        "",
        "transform = Compose([",
        *[f"    {t!r}," for t in compose.transforms],
        "])",
        f"image = sample_image({params.sample!r})  # or Image.open(path).convert('RGB')",
        "x = transform(image)  # each transform gets what the one before returned",
    ]
    if final_kind(steps) == "tensor":
        lines.append("print(x.shape, x.dtype, x.min().item(), x.max().item())")
    else:
        lines.append("print(x.size, x.mode)  # still a PIL image: (W, H) and its mode")
    lines += [
        "",
        "dataset = PictureDataset(transform=transform)",
        "sample, target = dataset[0]  # __getitem__ applies the transform",
        "print(len(dataset), target)",
        "",
        "# The same pipeline with torchvision (import torchvision.transforms as T):",
        "# T.Compose([",
        *[f"#     {torchvision_equivalent(t)}," for t in compose.transforms],
        "# ])",
    ]
    if any(isinstance(t, RandomCrop) for t in compose.transforms):
        lines.append("# (seed torchvision's RandomCrop with torch.manual_seed(seed) first)")
    return "\n".join(lines) + "\n"


def playground(params: TransformParams) -> str:
    """The page's pipeline as a program for the playground's sandbox: the snippet imports this
    project's own classes and draws its pictures with Pillow, neither of which a sandboxed program
    may reach, so this one builds the same pipeline from ``torchvision.transforms`` (which the
    sandbox serves from these very classes, with torchvision's semantics) and reads the page's
    pictures from the data files the sandbox ships (``data/pictures/<name>.npy``). It prints what
    the snippet prints. A ``RandomCrop`` is torchvision's, whose window comes from torch's global
    RNG, not the page's own seeded generator: its crops may differ from the page's."""
    steps = check_pipeline(pipeline_from_url(params.p), None)
    compose = build(steps)
    picture = f"data/pictures/{params.sample}.npy"
    lines = [
        '"""This page\'s pipeline with torchvision.transforms, on the page\'s own pictures."""',
        "import numpy as np",
        "import torchvision.transforms as T",
        "from torch.utils.data import Dataset",
        "",
        "transform = T.Compose([",
        *[f"    {torchvision_equivalent(t)}," for t in compose.transforms],
        "])",
        "# The page's picture as an (H, W, 3) uint8 array, a data file of the sandbox; with your",
        "# own picture: from PIL import Image; image = Image.open(path).convert('RGB')",
        f"image = T.ToPILImage()(np.load({picture!r}))",
        "x = transform(image)  # each transform gets what the one before returned",
    ]
    crops = [t for t in compose.transforms if isinstance(t, RandomCrop)]
    if crops:
        lines[5:5] = [
            f"torch.manual_seed({crops[0].seed})  # torchvision's RandomCrop draws from it",
            "",
        ]
        lines.insert(2, "import torch")
    if final_kind(steps) == "tensor":
        lines.append("print(x.shape, x.dtype, x.min().item(), x.max().item())")
    else:
        lines.append("print(x.size, x.mode)  # still a PIL image: (W, H) and its mode")
    files = ",\n".join(f"            {f'data/pictures/{name}.npy'!r}" for name, _ in PICTURES)
    targets = ", ".join(str(CLASSES.index(label)) for _, label in PICTURES)
    labels = ", ".join(label for _, label in PICTURES)
    lines += [
        "",
        "",
        "class PictureDataset(Dataset):  # the page's labelled pictures",
        "    def __init__(self, transform=None):",
        "        self.files = [",
        files + ",",
        "        ]",
        f"        self.targets = [{targets}]  # {labels}",
        "        self.transform = transform",
        "",
        "    def __getitem__(self, index):",
        "        sample = T.ToPILImage()(np.load(self.files[index]))",
        "        if self.transform is not None:",
        "            sample = self.transform(sample)  # __getitem__ applies the transform",
        "        return sample, self.targets[index]",
        "",
        "    def __len__(self):",
        "        return len(self.files)",
        "",
        "",
        "dataset = PictureDataset(transform=transform)",
        "sample, target = dataset[0]",
        "print(len(dataset), target)",
    ]
    return "\n".join(lines) + "\n"
