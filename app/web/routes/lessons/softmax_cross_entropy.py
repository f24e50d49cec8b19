"""The Softmax and cross entropy lesson's API: ``POST /api/softmax`` (API.md "Losses and
activations")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from app.lessons import softmax_cross_entropy as softmax
from app.lessons.softmax_cross_entropy import SoftmaxLimits
from app.web.deps import SettingsDep, limits_from
from app.web.schemas import Finite, JsonBody

router = APIRouter(tags=["softmax"])


def softmax_limits(settings: SettingsDep) -> SoftmaxLimits:
    """The softmax lesson's limits, from settings."""
    return limits_from(settings, SoftmaxLimits)


SoftmaxLimitsDep = Annotated[SoftmaxLimits, Depends(softmax_limits)]


class SoftmaxRequest(JsonBody):
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


@router.post("/api/softmax")
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
