"""Typed dependencies the routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.lessons.activations import ActivationLimits
from app.lessons.softmax import SoftmaxLimits


def get_app_settings(request: Request) -> Settings:
    """The settings this app was built with (each test app has its own)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def softmax_limits(settings: SettingsDep) -> SoftmaxLimits:
    """The softmax lesson's limits, from settings."""
    return SoftmaxLimits(
        max_logits=settings.max_logits,
        max_batch_rows=settings.max_batch_rows,
        max_abs_logit=settings.max_abs_logit,
        min_temperature=settings.min_temperature,
        max_temperature=settings.max_temperature,
    )


def activation_limits(settings: SettingsDep) -> ActivationLimits:
    """The activations lesson's limits, from settings."""
    return ActivationLimits(
        max_points=settings.max_points,
        max_abs_x=settings.max_abs_x,
        max_depth=settings.max_depth,
        max_width=settings.max_width,
        max_train_steps=settings.max_train_steps,
    )


SoftmaxLimitsDep = Annotated[SoftmaxLimits, Depends(softmax_limits)]
ActivationLimitsDep = Annotated[ActivationLimits, Depends(activation_limits)]
