"""The shared figure helpers of app/viz/common.py."""

from __future__ import annotations

from app.viz.common import finite


def test_non_finite_numbers_become_gaps() -> None:
    assert finite([1.0, float("nan"), [float("inf")], {"a": -float("inf")}]) == [
        1.0,
        None,
        [None],
        {"a": None},
    ]
