"""Lesson state from the URL's query string: the page, its partial and its JSON twin share it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from app.lessons.errors import LessonInputError

P = TypeVar("P")


def parse_float(name: str, text: str) -> float:
    """A finite number, or a message naming the field."""
    try:
        value = float(text)
    except ValueError:
        raise LessonInputError(f"{name} must be a number; got {text[:40]!r}.") from None
    if not math.isfinite(value):
        raise LessonInputError(f"{name} must be a finite number; got {text[:40]!r}.")
    return value


def parse_int(name: str, text: str) -> int:
    """A whole number, or a message naming the field."""
    try:
        return int(text)
    except ValueError:
        raise LessonInputError(f"{name} must be a whole number; got {text[:40]!r}.") from None


TRUE, FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no")


def parse_bool(name: str, text: str) -> bool:
    """``true``/``false`` or ``on``/``off`` (as a page's checkbox writes them), or a message
    naming the field."""
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise LessonInputError(f"{name} must be true or false (on or off); got {text[:40]!r}.")


def parse_floats(name: str, text: str, limit: int = 10_000) -> tuple[float, ...]:
    """``"2, 1, 0.1"`` -> ``(2.0, 1.0, 0.1)``."""
    parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
    if len(parts) > limit:
        raise LessonInputError(f"{name} has {len(parts)} values, over the limit of {limit}.")
    return tuple(parse_float(name, p.strip()) for p in parts)


def parse_batch(text: str, limit: int = 10_000) -> tuple[tuple[tuple[float, ...], int], ...]:
    """``"2,1,0.1:0; 0.5,2.5,0.3:1"`` -> rows of (logits, target)."""
    rows = []
    for i, part in enumerate(p for p in text.split(";") if p.strip()):
        if i >= limit:
            raise LessonInputError(f"batch has more than {limit} rows.")
        logits, sep, target = part.partition(":")
        if not sep:
            raise LessonInputError(
                f"batch row {i} needs 'logits:target', such as '2, 1, 0.1 : 0'; got {part[:40]!r}."
            )
        rows.append(
            (parse_floats(f"batch row {i}", logits), parse_int(f"batch row {i} target", target))
        )
    if not rows:
        raise LessonInputError("batch needs at least one row 'logits:target'.")
    return tuple(rows)


def format_batch(batch: tuple[tuple[tuple[float, ...], int], ...]) -> str:
    """The inverse of ``parse_batch``, for the form."""
    return "; ".join(", ".join(f"{v:g}" for v in row) + f" : {t}" for row, t in batch)


def format_floats(values: tuple[float, ...]) -> str:
    """The inverse of ``parse_floats``, for the form and the URL."""
    return ", ".join(f"{v:g}" for v in values)


def params_from_query(default: P, query: Mapping[str, str], special: Mapping[str, Any]) -> P:
    """Override a params dataclass's defaults with the query's values, by field type."""
    changes: dict[str, Any] = {}
    for f in fields(default):  # type: ignore[arg-type]
        if f.name not in query:
            continue
        text = query[f.name]
        if f.name in special:
            changes[f.name] = special[f.name](text)
        elif f.type in ("float", float):
            changes[f.name] = parse_float(f.name, text)
        elif f.type in ("int", int):
            changes[f.name] = parse_int(f.name, text)
        else:
            changes[f.name] = text
    return replace(default, **changes)  # type: ignore[type-var]
