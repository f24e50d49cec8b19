"""CNN feature maps: what each conv layer of a trained classifier responds to, layer by layer.

Forward hooks record every ``nn.Conv2d``'s output after the activation that follows it, once for
the chosen digit and once for all 359 held-out digits together. From the held-out pass come the
pictures that excite each channel most and its mean response per digit class. Nothing here knows
the model's layout: any model of this app (the transfer lesson's source model, a digits-cnn run,
a transfer run) is walked the same way.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from app.lessons.errors import LessonInputError
from app.lessons.images import png_data_url
from app.lessons.tracking import short_id

HELD_OUT_SEED = 0  # the split every digits task of this app holds out by default: 359 digits
TOP_IMAGES = 6  # "what the channel responds to": the held-out digits that excite it most
INPUT_SCALE = 12  # the chosen 8x8 digit is drawn 96x96
THUMB_SCALE = 6  # the top pictures, 48x48
MODELS_CACHED = 8  # held-out analyses kept: the source model and a few runs (a few MB each)
SOURCE_TASK = "source"  # the transfer lesson's source model, not a run
DIGITS = tuple(range(10))
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
RUN_TASKS = ("digits-cnn", "transfer")  # the tasks whose models have conv layers
_HOOKED = threading.Lock()


@dataclass(frozen=True)
class FeatureMapParams:
    """What the feature-maps page shows; every field is in its URL."""

    run: str = ""  # a finished run's id; empty: the transfer lesson's source model (digits 0-4)
    image: int = 7  # a held-out 4: straight strokes in two directions, a digit the model knows
    layer: int = 1  # the conv layer, counted from the input: layer 1 sees the pixels
    channel: int = 0  # the channel looked at closely


@dataclass(frozen=True)
class ModelSource:
    """Which trained model to look inside; hashable, so its analysis can be cached."""

    run_id: str = ""  # empty: the source model
    task: str = SOURCE_TASK
    config: str = "{}"  # the run's stored config, as JSON
    checkpoint: str = ""  # the run's checkpoint.pth
    stamp: int = 0  # the checkpoint's mtime in ns: a rewritten file is another model


class Call(NamedTuple):
    """One module's call during a forward pass, as a forward hook saw it."""

    name: str  # the module's name in the model, e.g. "features.3"
    module: nn.Module
    input_shape: tuple[int, ...]  # (C, H, W) of what it read
    output: torch.Tensor  # (N, C, H, W)

    @property
    def label(self) -> str:
        return f"{self.name} ({type(self.module).__name__})"


@dataclass(frozen=True)
class ConvLayer:
    """One conv layer as a forward pass met it, with what came right after it."""

    conv: Call
    activation: Call | None  # None: nothing follows it, its maps are the raw conv output
    pool: Call | None  # the pooling after the activation, if there is one

    @property
    def maps(self) -> torch.Tensor:
        """(N, C, H, W) after the activation: what the next layer builds on."""
        return (self.activation or self.conv).output

    @property
    def weights(self) -> nn.Conv2d:
        assert isinstance(self.conv.module, nn.Conv2d)
        return self.conv.module


@dataclass(frozen=True)
class Analysis:
    """A model and what every channel of it does over the held-out digits."""

    model: nn.Module
    classes: tuple[int, ...]  # the digit each output stands for
    layers: tuple[ConvLayer, ...]  # held-out maps, (359, C, H, W) each
    peaks: tuple[torch.Tensor, ...]  # per layer (359, C): each map's largest value
    class_means: tuple[torch.Tensor, ...]  # per layer (10, C): the mean map value per digit
    top: tuple[torch.Tensor, ...]  # per layer (C, TOP_IMAGES): held-out indices, strongest first
    accuracy: float  # on the held-out digits the model has a class for
    known: int  # how many held-out digits that is
    architecture: list[dict[str, Any]]


# -- the data and the models ---------------------------------------------------------------------


@lru_cache(maxsize=1)
def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    """The 359 held-out digits, (359, 1, 8, 8) in 0..1, and their labels (359,)."""
    from app.jobs.classifier import digits_split

    images, labels = digits_split(HELD_OUT_SEED)[1].tensors
    return images, labels


def first_of_each_digit() -> dict[int, int]:
    """The held-out index of each digit's first example (the page's "jump to a digit")."""
    labels = held_out()[1]
    return {d: int((labels == d).nonzero()[0]) for d in DIGITS if bool((labels == d).any())}


def source_model() -> nn.Module:
    """The transfer lesson's source model: DigitsNet trained on digits 0-4 (deterministic)."""
    from app.jobs.transfer import SOURCE_CLASSES, DigitsNet, pretrained

    model = DigitsNet(len(SOURCE_CLASSES))
    model.load_state_dict(pretrained()[0])
    return model.eval()


def run_model(task: str, config: dict[str, Any], checkpoint: Path) -> nn.Module:
    """A finished run's trained model: its task's architecture with the checkpoint's weights."""
    from app.jobs.tasks import get_task, load_checkpoint

    spec = get_task(task)
    if spec.build_model is None:
        raise LessonInputError(f"run: the {task} task has no model to look inside")
    try:
        model = spec.build_model(spec.validate(config))
        model.load_state_dict(load_checkpoint(checkpoint)["model"])  # weights_only=True
    except (OSError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        raise LessonInputError(
            f"run: its {checkpoint.name} does not load into a {task} model ({exc})"
        ) from None
    return model.eval()


def model_classes(task: str) -> tuple[int, ...]:
    """The digit each output of the model stands for (a transfer run's 0-4 are digits 5-9)."""
    from app.jobs.transfer import SOURCE_CLASSES, TARGET_CLASSES

    return {SOURCE_TASK: SOURCE_CLASSES, "transfer": TARGET_CLASSES}.get(task, DIGITS)


def load(source: ModelSource) -> nn.Module:
    if source.task == SOURCE_TASK:
        return source_model()
    return run_model(source.task, json.loads(source.config), Path(source.checkpoint))


# -- forward hooks -------------------------------------------------------------------------------


@torch.no_grad()
def conv_layers(model: nn.Module, images: torch.Tensor) -> tuple[list[ConvLayer], torch.Tensor]:
    """Every conv layer's maps after its activation for ``images``, and the model's logits.

    A forward hook on each leaf module records the calls in the order they ran, so a conv
    layer's activation is simply the call right after it, whatever the model's layout.
    """
    calls: list[Call] = []

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            calls.append(Call(name, module, tuple(inputs[0].shape[1:]), output.detach()))

        return hook

    handles = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if name and not list(module.children())  # leaf modules: the layers themselves
    ]
    try:
        logits = model(images)
    finally:
        for handle in handles:
            handle.remove()

    def next_call(i: int, kinds: tuple[type[nn.Module], ...]) -> Call | None:
        return calls[i] if i < len(calls) and isinstance(calls[i].module, kinds) else None

    layers = []
    for i, call in enumerate(calls):
        if isinstance(call.module, nn.Conv2d):
            activation = next_call(i + 1, ACTIVATIONS)
            pool = next_call(i + 2 if activation else i + 1, POOLS)
            layers.append(ConvLayer(call, activation, pool))
    return layers, logits


def shown_filters(conv: nn.Conv2d) -> tuple[torch.Tensor, str]:
    """Each output channel's filter as one kh x kw picture, and what the picture is.

    Layer 1 reads one grey channel: its filters are the weights themselves. A deeper filter has
    a kh x kw kernel for every input channel; their sum says what it does to a stroke that
    lights every input channel alike.
    """
    weight = conv.weight.detach()  # (C_out, C_in, kh, kw)
    if weight.shape[1] == 1:
        return weight[:, 0], "the weights"
    return weight.sum(dim=1), f"each kernel summed over its {weight.shape[1]} input channels"


def channel_responses(
    maps: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per channel: each image's peak, the mean map value per digit, the strongest images.

    Returns peaks (N, C), class means (10, C) and top indices (C, TOP_IMAGES), strongest first
    (ties: the lower index first).
    """
    peaks = maps.amax(dim=(2, 3))  # (N, C): the largest value anywhere on the map
    means = maps.mean(dim=(2, 3))  # (N, C)
    class_means = torch.stack([means[labels == d].mean(dim=0) for d in DIGITS])  # (10, C)
    order = torch.argsort(peaks, dim=0, descending=True, stable=True)  # (N, C)
    return peaks, class_means, order[:TOP_IMAGES].T.contiguous()


@lru_cache(maxsize=MODELS_CACHED)
def analyse(source: ModelSource) -> Analysis:
    """Load the model and run every held-out digit through it once, hooks on."""
    from app.jobs.classifier import SIDE, architecture

    model = load(source)
    images, labels = held_out()
    layers, logits = conv_layers(model, images)  # every held-out digit at once
    if not layers:
        raise LessonInputError("run: this model has no conv layer to look inside")
    responses = [channel_responses(layer.maps, labels) for layer in layers]
    classes = model_classes(source.task)
    predicted = torch.tensor(classes)[logits.argmax(dim=1)]
    known = torch.isin(labels, torch.tensor(classes))
    return Analysis(
        model=model,
        classes=classes,
        layers=tuple(layers),
        peaks=tuple(r[0] for r in responses),
        class_means=tuple(r[1] for r in responses),
        top=tuple(r[2] for r in responses),
        accuracy=float((predicted == labels)[known].float().mean()),
        known=int(known.sum()),
        architecture=architecture(model, (1, 1, SIDE, SIDE)),
    )


# -- pictures ------------------------------------------------------------------------------------


@lru_cache(maxsize=2 * 400)
def digit_png(index: int, scale: int) -> str:
    """Held-out digit ``index`` as a PNG data URL, ink dark, each pixel a ``scale``-wide block."""
    pixels = held_out()[0][index, 0].clamp(0, 1).numpy()  # (8, 8)
    grey = Image.fromarray((255 - pixels * 255).round().astype(np.uint8), "L")
    return png_data_url(grey.resize((8 * scale, 8 * scale), Image.Resampling.NEAREST))


# -- the lesson ----------------------------------------------------------------------------------


def check_image(image: int) -> None:
    count = len(held_out()[1])
    if not 0 <= image < count:
        raise LessonInputError(
            f"image must be one of the {count} held-out digits, 0 to {count - 1}; got {image}"
        )


def explore(params: FeatureMapParams, source: ModelSource) -> dict[str, Any]:
    """Everything the page shows for one model, input digit, layer and channel."""
    check_image(params.image)
    found = analyse(source)
    if not 1 <= params.layer <= len(found.layers):
        raise LessonInputError(
            f"layer must be a conv layer of this model, 1 to {len(found.layers)}; "
            f"got {params.layer}"
        )
    li = params.layer - 1
    channels = found.layers[li].weights.out_channels
    if not 0 <= params.channel < channels:
        raise LessonInputError(
            f"channel must be one of layer {params.layer}'s {channels} channels, 0 to "
            f"{channels - 1}; got {params.channel}"
        )
    images, labels = held_out()
    x = images[params.image : params.image + 1]  # (1, 1, 8, 8)
    with _HOOKED:  # the cached model is shared by the server's threads, and so are its hooks
        layers, logits = conv_layers(found.model, x)  # the chosen digit alone, hooks on
    layer = layers[li]
    maps = layer.maps[0]  # (C, H, W)
    conv = layer.weights
    filters, filters_are = shown_filters(conv)
    weight = conv.weight.detach()  # (C_out, C_in, kh, kw)
    probabilities = logits.softmax(dim=1)[0]
    label = int(labels[params.image])
    peaks, class_means, top = found.peaks[li], found.class_means[li], found.top[li]
    return {
        "classes": [str(c) for c in found.classes],
        "accuracy": found.accuracy,
        "known": found.known,
        "architecture": found.architecture,
        "layers": [
            {
                "index": i + 1,
                "name": L.conv.name,
                "conv": repr(L.conv.module),
                "activation": L.activation.label if L.activation else None,
                "pool": L.pool.label if L.pool else None,
                "pool_kind": type(L.pool.module).__name__ if L.pool else None,
                "input_shape": list(L.conv.input_shape),
                "output_shape": list(L.maps.shape[1:]),
                "pooled_shape": list(L.pool.output.shape[1:]) if L.pool else None,
            }
            for i, L in enumerate(layers)
        ],
        "layer": params.layer,
        "channel": params.channel,
        "image": params.image,
        "input": {
            "label": label,
            "src": digit_png(params.image, INPUT_SCALE),
            "pixels": x[0, 0].tolist(),
        },
        "prediction": {
            "probabilities": probabilities.tolist(),
            "predicted": found.classes[int(probabilities.argmax())],
            "known": label in found.classes,
        },
        "filters": filters.tolist(),  # (C, kh, kw)
        "filters_are": filters_are,
        "bias": conv.bias.detach().tolist() if conv.bias is not None else None,
        "kernels": weight[params.channel].tolist(),  # (C_in, kh, kw): the focused channel's
        "maps": maps.tolist(),  # (C, H, W)
        "pooled": layer.pool.output[0].tolist() if layer.pool else None,
        "responses": [
            {
                "channel": k,
                "peak": float(maps[k].max()),  # on the chosen digit
                "held_out_peak": float(peaks[:, k].max()),
                "top": [
                    {
                        "image": int(i),
                        "label": int(labels[i]),
                        "peak": float(peaks[i, k]),
                        "src": digit_png(int(i), THUMB_SCALE),
                    }
                    for i in top[k].tolist()
                    if peaks[i, k] > 0  # a digit it does not fire on at all is no example
                ],
                "best_digit": int(class_means[:, k].argmax()),
                "dead": bool(peaks[:, k].max() <= 0),  # a ReLU that never fires here
            }
            for k in range(channels)
        ],
        "class_means": class_means.T.tolist(),  # (C, 10)
        "first_of_digit": first_of_each_digit(),
        "held_out": len(labels),
        "top_count": TOP_IMAGES,
    }


# -- the code a learner can paste ----------------------------------------------------------------


def snippet(params: FeatureMapParams) -> str:
    """Plain PyTorch that rebuilds the page's model, hooks its layers and reads the maps."""
    from app.jobs.classifier import HELD_OUT
    from app.jobs.transfer import (
        SOURCE_BATCH,
        SOURCE_CLASSES,
        SOURCE_EPOCHS,
        SOURCE_LR,
        SOURCE_SEED,
    )

    head = f'''"""Look inside a trained CNN: forward hooks record each conv layer's feature maps."""
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

digits = load_digits()  # 1,797 8x8 digits, inside the scikit-learn package
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
labels = torch.tensor(digits.target)
order = torch.randperm(len(labels), generator=torch.Generator().manual_seed({HELD_OUT_SEED}))
n_held_out = int(len(labels) * {HELD_OUT})
held_out, train = order[:n_held_out], order[n_held_out:]  # the page's {{n_held_out}} digits


class DigitsNet(nn.Module):  # the transfer lesson's network: two conv blocks and a linear head
    def __init__(self, n_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 8, 4, 4)
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 2, 2)
            nn.Flatten(),  # (N, 64)
        )
        self.classifier = nn.Linear(64, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
'''
    if params.run:
        body = f"""

class DigitsCNN(nn.Module):  # the digits-cnn task: one conv block and a linear head
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)  # (N, C, 8, 8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)  # (N, C, 4, 4)
        self.flatten = nn.Flatten()  # (N, C * 16)
        self.fc = nn.Linear(channels * 16, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


# Your run's checkpoint: GET /api/runs/{params.run}/checkpoint, saved beside this script
checkpoint = torch.load("checkpoint.pth", weights_only=True)
if checkpoint["task"] == "digits-cnn":
    model = DigitsCNN(checkpoint["config"].get("channels", 8))
else:  # a transfer run: digits 5-9 as classes 0-4
    model = DigitsNet(5)
model.load_state_dict(checkpoint["model"])
model.eval()
"""
    else:
        body = f"""
# The page's model, trained on digits 0-4 only: seeded, on one thread, the same weights each time
source = train[labels[train] < {len(SOURCE_CLASSES)}]
threads = torch.get_num_threads()
torch.set_num_threads(1)
torch.manual_seed({SOURCE_SEED})
model = DigitsNet({len(SOURCE_CLASSES)})
optimizer = torch.optim.SGD(model.parameters(), lr={SOURCE_LR}, momentum=0.9)
shuffle = torch.Generator()
data = TensorDataset(images[source], labels[source])
loader = DataLoader(data, batch_size={SOURCE_BATCH}, shuffle=True, generator=shuffle)
for epoch in range({SOURCE_EPOCHS}):
    shuffle.manual_seed({SOURCE_SEED * 1000} + epoch)
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
torch.set_num_threads(threads)
model.eval()
"""
    tail = f"""
# Forward hooks: each ReLU's output (a conv layer's feature maps) is kept as the model runs
maps = []
for module in model.modules():
    if isinstance(module, nn.ReLU):
        module.register_forward_hook(lambda module, inputs, output: maps.append(output))

with torch.no_grad():
    probabilities = model(images[held_out]).softmax(dim=1)  # every held-out digit at once
layer = maps[{params.layer - 1}]  # conv layer {params.layer}: (n_held_out, channels, side, side)

image, channel = {params.image}, {params.channel}
print("digit", labels[held_out][image].item(), "probabilities", probabilities[image])
print("layer {params.layer} maps for it:", tuple(layer[image].shape))
peaks = layer.amax(dim=(2, 3))[:, channel]  # each digit's strongest response in the channel
strongest = peaks.argsort(descending=True, stable=True)[:{TOP_IMAGES}]
print(f"channel {{channel}} fires most on held-out digits", labels[held_out][strongest].tolist())
"""
    return head + body + tail


def seed_note(task: str, config: dict[str, Any]) -> str | None:
    """Why some "held-out" digits may not be held out for this run, or None when all are."""
    seed = int(config.get("seed", HELD_OUT_SEED))
    if task == "digits-cnn" and seed != HELD_OUT_SEED:
        return (
            f"This run split the digits with seed {seed}, so some of the page's held-out digits "
            "(split 0) were in its training set."
        )
    return None


def describe_runs(runs: Sequence[Any]) -> list[dict[str, str]]:
    """Finished runs with conv layers, as the model picker lists them."""
    return [
        {"id": run.id, "label": f"run {short_id(run.id)} · {run.task}"}
        for run in runs
        if run.task in RUN_TASKS and run.status == "completed"
    ]
