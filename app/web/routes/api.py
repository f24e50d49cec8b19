"""The JSON API of API.md: health, limits, softmax and activations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from app.lessons import activations
from app.lessons import softmax_cross_entropy as softmax
from app.lessons.registry import LESSONS
from app.web.deps import ActivationLimitsDep, SettingsDep, SoftmaxLimitsDep
from app.web.schemas import (
    ActivationCurve,
    DeadReluRequest,
    DeadReluResponse,
    Health,
    LayerGradient,
    SoftmaxRequest,
    SoftmaxResponse,
    VanishingRequest,
    VanishingResponse,
)

router = APIRouter()


@router.get("/healthz", tags=["meta"])
async def healthz() -> Health:
    """Liveness: answers on the event loop itself, without torch and without a thread, so it
    never waits behind the work that fills the thread pools."""
    return Health()


@router.get("/api/limits", tags=["meta"])
def limits(settings: SettingsDep) -> dict[str, int | float]:
    """Every limit a request can hit, by setting name (env ``EXPLORER_<NAME>``)."""
    return settings.limits()


@router.get("/api/lessons", tags=["meta"])
def lessons() -> list[dict[str, Any]]:
    """The eleven lessons in the notes' order, and whether each is live yet."""
    return [
        {"slug": x.slug, "title": x.title, "section": x.section, "summary": x.summary,
         "live": x.live, "path": x.path, "apis": list(x.apis)}
        for x in LESSONS
    ]  # fmt: skip


@router.post("/api/softmax", tags=["softmax"])
def softmax_endpoint(body: SoftmaxRequest, limits: SoftmaxLimitsDep) -> SoftmaxResponse:
    """Softmax, log-softmax, nn.CrossEntropyLoss and its autograd gradient for the logits."""
    logits, target = softmax.to_tensors(body.logits, body.target, body.temperature, limits)
    out = softmax.softmax_cross_entropy(logits, target, body.temperature)
    loss, grad = out["loss"], out["gradient"]
    probabilities, log_probabilities = out["probabilities"], out["log_probabilities"]
    assert probabilities is not None and log_probabilities is not None
    return SoftmaxResponse(
        probabilities=probabilities.tolist(),
        log_probabilities=log_probabilities.tolist(),
        loss=None if loss is None else float(loss.item()),
        gradient=None if grad is None else grad.tolist(),
    )


@router.get("/api/activations/{name}", tags=["activations"])
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


@router.post("/api/activations/vanishing", tags=["activations"])
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


@router.post("/api/activations/dead-relu", tags=["activations"])
def dead_relu_endpoint(body: DeadReluRequest, limits: ActivationLimitsDep) -> DeadReluResponse:
    """Train a small net whose hidden units start dead: ReLU stays stuck, leaky ReLU learns."""
    activations.check_slope(body.negative_slope)
    activations.check_dead(body.dead_units, body.steps, 16, limits)
    activations.check_seed(body.seed)
    out = activations.dead_relu_training(
        body.negative_slope, body.dead_units, body.steps, body.seed
    )
    return DeadReluResponse(**out)
