"""The Activation functions lesson's API: curves, vanishing gradients and dead ReLUs (API.md
"Losses and activations")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.lessons import activations
from app.lessons.activations import ActivationLimits
from app.web.deps import SettingsDep, limits_from
from app.web.schemas import Finite, JsonBody

router = APIRouter(tags=["activations"])


def activation_limits(settings: SettingsDep) -> ActivationLimits:
    """The activations lesson's limits, from settings."""
    return limits_from(settings, ActivationLimits)


ActivationLimitsDep = Annotated[ActivationLimits, Depends(activation_limits)]


class ActivationCurve(BaseModel):
    name: str
    x: list[float]
    y: list[float]
    derivative: list[float] = Field(description="dy/dx from autograd")


class VanishingRequest(JsonBody):
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


class DeadReluRequest(JsonBody):
    negative_slope: Finite = Field(default=0.0, description="0 is plain ReLU")
    dead_units: int = Field(default=16, description="hidden units (of 16) that start dead")
    steps: int = Field(default=200, description="SGD steps")
    seed: int = 0


class DeadReluResponse(BaseModel):
    loss: list[float]
    dead: list[float] = Field(description="units negative for every input, per step")
    zero_grad: list[float] = Field(description="units whose weight got exactly zero gradient")
    moved: list[float] = Field(description="|w_end - w_start| per hidden unit")


@router.get("/api/activations/{name}")
def activation_endpoint(
    name: str,
    limits: ActivationLimitsDep,
    x_min: float = Query(-5.0, description="left end of the grid"),
    x_max: float = Query(5.0, description="right end of the grid"),
    points: int = Query(201, description="grid points, at most max_points"),
    negative_slope: float = Query(0.01, description="leaky_relu's slope for x < 0"),
) -> ActivationCurve:
    """The activation on a grid, with its derivative from autograd."""
    activations.check_name(name)
    activations.check_curve(x_min, x_max, points, negative_slope, limits)
    curve = activations.activation_curve(name, x_min, x_max, points, negative_slope)
    return ActivationCurve(name=name, **curve)


@router.post("/api/activations/vanishing")
def vanishing_endpoint(body: VanishingRequest, limits: ActivationLimitsDep) -> VanishingResponse:
    """One backward pass through ``depth`` Linear+activation layers: gradient norm per layer."""
    activations.check_name(body.activation)
    activations.check_slope(body.negative_slope)
    activations.check_stack(body.depth, body.width, body.init, limits)
    activations.check_seed(body.seed)
    norms = activations.vanishing_gradients(
        body.activation, body.depth, body.width, body.seed, body.init, body.negative_slope
    )
    layers = [LayerGradient(index=i, grad_norm=n) for i, n in enumerate(norms)]
    return VanishingResponse(activation=body.activation, layers=layers)


@router.post("/api/activations/dead-relu")
def dead_relu_endpoint(body: DeadReluRequest, limits: ActivationLimitsDep) -> DeadReluResponse:
    """Train a small net whose hidden units start dead: ReLU stays stuck, leaky ReLU learns."""
    activations.check_slope(body.negative_slope)
    activations.check_dead(body.dead_units, body.steps, 16, limits)
    activations.check_seed(body.seed)
    out = activations.dead_relu_training(
        body.negative_slope, body.dead_units, body.steps, body.seed
    )
    return DeadReluResponse(**out)
