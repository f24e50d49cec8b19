"""Run figures: trace order for live growth, the smoothed values and operating points they are
handed drawn as given, and thinning of long series."""

from __future__ import annotations

import numpy as np
import pytest

from app.lessons.tracking import operating_point, pr_curve, smooth
from app.viz.tracking import pr_figure, scalar_figure, thin


def series(label: str, points: list[list[float]], weight: float) -> tuple:
    return (label, points, smooth([v for _, v in points], weight))


def test_each_series_is_a_raw_then_a_smoothed_trace() -> None:
    a = [[s, float(np.sin(s))] for s in range(1, 50)]
    b = [[s, float(np.cos(s))] for s in range(1, 30)]
    traces = scalar_figure("loss", [series("a", a, 0.6), series("b", b, 0.6)], 0.6)["data"]
    assert [t["name"] for t in traces] == ["a (raw)", "a", "b (raw)", "b"]
    assert traces[2]["y"] == [v for _, v in b]
    assert traces[3]["y"] == pytest.approx(smooth([v for _, v in b], 0.6))


def test_a_long_series_is_smoothed_whole_then_thinned_keeping_the_last_point() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=10_001).tolist()
    points = [[s + 1, v] for s, v in enumerate(values)]
    raw, smoothed = scalar_figure("loss", [series("run", points, 0.9)], 0.9, most=1000)["data"]
    assert 500 < len(raw["x"]) <= 1001 and raw["x"][0] == 1 and raw["x"][-1] == 10_001
    full = smooth(values, 0.9)
    for step, y_raw, y_smooth in zip(raw["x"], raw["y"], smoothed["y"], strict=True):
        assert y_raw == values[step - 1]
        assert y_smooth == pytest.approx(full[step - 1])  # averaged over every point


def test_a_series_whose_smoothed_values_do_not_match_its_points_is_refused() -> None:
    with pytest.raises(ValueError, match="3 points but 2 smoothed"):
        scalar_figure("loss", [("run", [[1, 1.0], [2, 2.0], [3, 3.0]], [1.0, 1.5])], 0.5)


def test_the_pr_marker_is_the_operating_point_it_is_handed() -> None:
    labels = [0, 1, 1, 0, 1]
    probabilities = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]]
    curve = pr_curve(labels, probabilities, 1)
    at = operating_point(curve, 0.5)
    line, marker = pr_figure([("class 1", curve, at)])["data"]
    assert line["x"] == curve.recall and line["customdata"] == curve.thresholds
    # p(1) >= 0.5 picks samples 1, 3, 4: two of the three 1s, two of three picks right.
    assert marker["x"] == [pytest.approx(2 / 3)] and marker["y"] == [pytest.approx(2 / 3)]
    assert marker["name"] == "class 1 at p ≥ 0.5"
    assert len(pr_figure([("class 1", curve, None)])["data"]) == 1  # no point: no marker


@pytest.mark.parametrize(("count", "most"), [(0, 10), (5, 10), (10, 10), (11, 10), (1000, 7)])
def test_thin_keeps_at_most_about_most_evenly_spaced_and_the_last(count: int, most: int) -> None:
    kept = thin(count, most)
    if count <= most:
        assert kept == list(range(count))
        return
    assert kept[0] == 0 and kept[-1] == count - 1 and len(kept) <= most + 1
    gaps = np.diff(kept[:-1])
    assert len(set(gaps.tolist())) == 1  # evenly spaced
