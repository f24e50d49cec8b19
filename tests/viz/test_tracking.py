"""Scalar charts of runs: trace order for live growth, smoothing, and thinning of long series."""

from __future__ import annotations

import numpy as np
import pytest

from app.lessons.tracking import smooth
from app.viz.tracking import scalar_figure, thin


def test_each_series_is_a_raw_then_a_smoothed_trace() -> None:
    a = [[s, float(np.sin(s))] for s in range(1, 50)]
    b = [[s, float(np.cos(s))] for s in range(1, 30)]
    traces = scalar_figure("loss", [("a", a), ("b", b)], 0.6)["data"]
    assert [t["name"] for t in traces] == ["a (raw)", "a", "b (raw)", "b"]
    assert traces[2]["y"] == [v for _, v in b]
    assert traces[3]["y"] == pytest.approx(smooth([v for _, v in b], 0.6))


def test_a_long_series_is_smoothed_whole_then_thinned_keeping_the_last_point() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=10_001).tolist()
    points = [[s + 1, v] for s, v in enumerate(values)]
    raw, smoothed = scalar_figure("loss", [("run", points)], 0.9, most=1000)["data"]
    assert 500 < len(raw["x"]) <= 1001 and raw["x"][0] == 1 and raw["x"][-1] == 10_001
    full = smooth(values, 0.9)
    for step, y_raw, y_smooth in zip(raw["x"], raw["y"], smoothed["y"], strict=True):
        assert y_raw == values[step - 1]
        assert y_smooth == pytest.approx(full[step - 1])  # averaged over every point


@pytest.mark.parametrize(("count", "most"), [(0, 10), (5, 10), (10, 10), (11, 10), (1000, 7)])
def test_thin_keeps_at_most_about_most_evenly_spaced_and_the_last(count: int, most: int) -> None:
    kept = thin(count, most)
    if count <= most:
        assert kept == list(range(count))
        return
    assert kept[0] == 0 and kept[-1] == count - 1 and len(kept) <= most + 1
    gaps = np.diff(kept[:-1])
    assert len(set(gaps.tolist())) == 1  # evenly spaced
