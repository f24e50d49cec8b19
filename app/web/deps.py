"""Typed dependencies the routes share: the app's settings, the admission gates, and
``limits_from``, which each lesson's ``*LimitsDep`` (``app.web.routes.lessons.<name>``) uses."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from app.config import Settings
from app.web.admission import Gate


def get_app_settings(request: Request) -> Settings:
    """The settings this app was built with (each test app has its own)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


L = TypeVar("L")


def limits_from(settings: Settings, kind: type[L], prefix: str = "") -> L:
    """A limits dataclass filled from the settings of the same names (after ``prefix``).

    One mapping for every lesson: a new limit is a field on the lesson's dataclass and a setting
    of the same name, nothing more.
    """
    values = {f.name: getattr(settings, prefix + f.name) for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**values)


def program_gate(request: Request) -> Gate:
    """The app's admission gate in front of the sandbox workers (``app.web.admission``)."""
    gate: Gate = request.app.state.program_gate
    return gate


def picture_gate(request: Request) -> Gate:
    """The app's admission gate in front of the picture workers."""
    gate: Gate = request.app.state.picture_gate
    return gate


ProgramGateDep = Annotated[Gate, Depends(program_gate)]
PictureGateDep = Annotated[Gate, Depends(picture_gate)]
