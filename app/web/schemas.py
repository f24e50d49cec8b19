"""Request and response models of the JSON API (they make /openapi.json)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Finite = Annotated[float, Field(allow_inf_nan=False)]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class SoftmaxRequest(BaseModel):
    """Logits for one sample (a list) or a batch (a list of rows)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"logits": [2.0, 1.0, 0.1], "target": 0}]}
    )

    logits: list[Finite] | list[list[Finite]] = Field(
        description="Raw network outputs: K numbers, or N rows of K numbers."
    )
    target: int | list[int] | None = Field(
        default=None, description="The true class (one per row for a batch), or null."
    )
    temperature: Finite = Field(default=1.0, description="softmax(logits / temperature).")


class SoftmaxResponse(BaseModel):
    probabilities: list[float] | list[list[float]]
    log_probabilities: list[float] | list[list[float]]
    loss: float | None = Field(
        description="nn.CrossEntropyLoss() (batch mean), null without target"
    )
    gradient: list[float] | list[list[float]] | None = Field(
        description="d loss / d logits from autograd, null without target"
    )


class ActivationCurve(BaseModel):
    name: str
    x: list[float]
    y: list[float]
    derivative: list[float] = Field(description="dy/dx from autograd")


class VanishingRequest(BaseModel):
    activation: str = Field(default="sigmoid", examples=["sigmoid"])
    depth: int = Field(default=10, description="Linear+activation layers")
    width: int = Field(default=16, description="units per layer")
    seed: int = 0
    init: str = Field(default="kaiming", description="kaiming, xavier or default (nn.Linear's)")
    negative_slope: Finite = Field(default=0.01, description="leaky_relu's slope for x < 0")


class LayerGradient(BaseModel):
    index: int = Field(description="0 is the layer nearest the input")
    grad_norm: float


class VanishingResponse(BaseModel):
    activation: str
    layers: list[LayerGradient]


class DeadReluRequest(BaseModel):
    negative_slope: Finite = Field(default=0.0, description="0 is plain ReLU")
    dead_units: int = Field(default=16, description="hidden units (of 16) that start dead")
    steps: int = Field(default=200, description="SGD steps")
    seed: int = 0


class DeadReluResponse(BaseModel):
    loss: list[float]
    dead: list[float] = Field(description="units negative for every input, per step")
    zero_grad: list[float] = Field(description="units whose weight got exactly zero gradient")
    moved: list[float] = Field(description="|w_end - w_start| per hidden unit")


class LessonView(BaseModel):
    """Everything a lesson page shows: its parameters, the numbers, and the Plotly figures."""

    slug: str
    params: dict[str, object]
    result: dict[str, object]
    figures: dict[str, dict[str, object]]
