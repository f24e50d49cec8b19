"""matplotlib for learner programs: figures drawn on Agg, kept as PNGs, bounded."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

import app.sandbox.modules  # noqa: F401  (registers every library)
from app.sandbox import lib_plot
from app.sandbox.guards import Guard, iter_checked
from app.sandbox.library import NAMESPACES, get_attribute
from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused
from app.sandbox.modules import MODULES, collect_outputs

PLT = MODULES["matplotlib.pyplot"].members


def plt(guard: Guard, name: str, *args: Any, **kwargs: Any) -> Any:
    return PLT[name].impl(guard, args, kwargs)


def method(guard: Guard, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    bound = get_attribute(obj, name)
    return bound.impl(guard, bound.obj, args, kwargs)


def png(item: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(item["png"])))
    assert image.format == "PNG"
    return image.convert("RGB")


@pytest.fixture()
def guard() -> Guard:
    return Guard(SandboxLimits())


def test_matplotlib_and_pyplot_are_importable_namespaces() -> None:
    assert MODULES["matplotlib"].members["pyplot"] is MODULES["matplotlib.pyplot"]
    assert {"plot", "show", "subplots", "savefig", "imshow", "hist"} <= set(PLT)


def test_show_keeps_a_png_of_the_stated_size_with_its_step_and_line(guard: Guard) -> None:
    guard.step, guard.line = 3, 7
    plt(guard, "figure", figsize=(4, 3))
    plt(guard, "plot", torch.linspace(0, 1, 20), torch.linspace(0, 1, 20) ** 2, "r-", lw=8)
    plt(guard, "title", "Fit")
    plt(guard, "xlabel", "x")
    plt(guard, "legend", ["y = x^2"])
    guard.step, guard.line = 5, 9
    plt(guard, "show")
    figures = collect_outputs(guard)["figures"]
    assert len(figures) == 1
    item = figures[0]
    assert (item["step"], item["line"]) == (5, 9)
    image = png(item)
    assert image.size == (item["width"], item["height"]) == (320, 240)  # 4 x 3 in at 80 dpi
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    red = (pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)
    assert red.sum() > 500  # the 'r-' line is drawn in red


def test_the_default_figure_is_matplotlibs_size_at_80_dpi(guard: Guard) -> None:
    plt(guard, "plot", [1, 2, 3])
    plt(guard, "show")
    item = collect_outputs(guard)["figures"][0]
    assert png(item).size == (512, 384)


def test_a_tensor_that_requires_grad_fails_as_in_plain_matplotlib(guard: Guard) -> None:
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError) as plain:
        np.asarray(w)  # what matplotlib does with it
    with pytest.raises(RuntimeError) as ours:
        plt(guard, "plot", w)
    assert str(ours.value) == str(plain.value)
    plt(guard, "plot", w.detach())


def test_subplots_hand_out_a_figure_and_a_grid_of_axes(guard: Guard) -> None:
    fig, axes = plt(guard, "subplots", 2, 3, figsize=(6, 4))
    assert isinstance(fig, Figure)
    assert get_attribute(axes, "shape") == (2, 3)
    assert isinstance(axes[1, 2], Axes) and len(axes) == 2
    flat = list(iter_checked(get_attribute(axes, "flat")))
    assert len(flat) == 6 and all(isinstance(a, Axes) for a in flat)
    for ax, data in zip(flat, range(6), strict=True):
        method(guard, ax, "hist", torch.randn(50), bins=5)
        method(guard, ax, "set_title", f"panel {data}")
    assert "array([[<Axes: " in repr(axes)
    _, single = plt(guard, "subplots")
    assert isinstance(single, Axes)
    method(guard, fig, "tight_layout")
    method(guard, fig, "suptitle", "six panels")
    plt(guard, "show")
    assert [png(f).size for f in collect_outputs(guard)["figures"]] == [(480, 320), (512, 384)]


def test_subplot_reuses_the_axes_at_the_same_place(guard: Guard) -> None:
    first = plt(guard, "subplot", 2, 1, 1)
    second = plt(guard, "subplot", 212)
    assert first is not second
    assert plt(guard, "subplot", 2, 1, 1) is first
    assert plt(guard, "gca") is first


def test_imshow_with_a_colorbar_and_scatter(guard: Guard) -> None:
    image = torch.arange(64, dtype=torch.float32).reshape(8, 8)
    shown = plt(guard, "imshow", image, cmap="gray")
    plt(guard, "colorbar")
    plt(guard, "colorbar", shown)
    plt(guard, "figure")
    with pytest.raises(RuntimeError, match="No mappable was found"):
        plt(guard, "colorbar")
    plt(guard, "scatter", np.arange(5), np.arange(5), c=[0, 1, 0, 1, 0])
    plt(guard, "grid", True)
    plt(guard, "xlim", 0, 5)
    assert plt(guard, "xlim") == (0.0, 5.0)
    assert len(plt(guard, "axis", [0, 4, 0, 4])) == 4
    plt(guard, "show")
    assert len(collect_outputs(guard)["figures"]) == 2


def test_figures_still_open_are_rendered_at_the_end_with_the_step_that_drew_them(
    guard: Guard,
) -> None:
    guard.step, guard.line = 2, 4
    plt(guard, "bar", ["a", "b", "c"], [3, 1, 2])
    guard.step, guard.line = 10, 12
    figures = collect_outputs(guard)["figures"]
    assert [(f["step"], f["line"]) for f in figures] == [(2, 4)]
    assert png(figures[0]).size == (512, 384)


def test_closed_figures_are_not_kept(guard: Guard) -> None:
    fig = plt(guard, "figure")
    plt(guard, "plot", [1, 2])
    plt(guard, "close", fig)
    plt(guard, "plot", [1, 2])
    plt(guard, "close", "all")
    assert "figures" not in collect_outputs(guard)


def test_savefig_writes_a_png_into_the_programs_files(guard: Guard) -> None:
    plt(guard, "figure", figsize=(2, 2), dpi=50)
    plt(guard, "plot", [0, 1], [1, 0])
    plt(guard, "savefig", "plot")
    method(guard, plt(guard, "gcf"), "savefig", "./plots/small.png", dpi=25)
    files = {f["name"]: f for f in collect_outputs(guard)["files"]}
    assert set(files) == {"plot.png", "plots/small.png"}  # matplotlib adds the extension
    sizes = [
        Image.open(io.BytesIO(base64.b64decode(files[name]["base64"]))).size
        for name in ("plot.png", "plots/small.png")
    ]
    assert sizes == [(100, 100), (50, 50)]
    with pytest.raises(ValueError, match="Format 'xyz' is not supported"):
        plt(guard, "savefig", "plot.xyz")
    with pytest.raises(PermissionError):
        plt(guard, "savefig", "../outside.png")


def test_savefig_counts_against_the_file_limit() -> None:
    guard = Guard(SandboxLimits(max_file_bytes=200))
    plt(guard, "plot", [1, 2, 3])
    with pytest.raises(SandboxLimitExceeded, match="max_file_bytes"):
        plt(guard, "savefig", "p.png")


def test_the_number_of_figures_is_bounded() -> None:
    guard = Guard(SandboxLimits(max_figures=2))
    plt(guard, "figure")
    plt(guard, "show")
    plt(guard, "figure")
    with pytest.raises(SandboxLimitExceeded, match="max_figures"):
        plt(guard, "figure")
    plt(guard, "close")
    plt(guard, "figure")  # a closed figure frees its place


def test_figure_pixels_are_checked_before_drawing() -> None:
    guard = Guard(SandboxLimits(max_figure_pixels=100_000))
    with pytest.raises(SandboxLimitExceeded, match="max_figure_pixels"):
        plt(guard, "figure", figsize=(100, 100), dpi=100)
    assert lib_plot.plot_state(guard).open == []
    plt(guard, "figure", figsize=(3, 3))
    with pytest.raises(SandboxLimitExceeded, match="max_figure_pixels"):
        plt(guard, "savefig", "big.png", dpi=1000)


def test_points_drawn_are_bounded_in_all() -> None:
    guard = Guard(SandboxLimits(max_tensor_elements=1_000))
    plt(guard, "plot", torch.zeros(600))
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        plt(guard, "scatter", np.zeros(300), np.zeros(300))


def test_bins_and_bars_are_bounded(guard: Guard) -> None:
    with pytest.raises(SandboxRefused, match="bins"):
        plt(guard, "hist", [1, 2, 3], bins="auto")
    with pytest.raises(SandboxRefused, match="bars and histogram bins"):
        plt(guard, "hist", [1, 2, 3], bins=lib_plot.MAX_PATCHES + 1)
    counts, edges, _ = plt(guard, "hist", [1, 2, 2, 3], bins=3)
    plain_counts, plain_edges = np.histogram([1, 2, 2, 3], bins=3)
    np.testing.assert_array_equal(counts, plain_counts)
    np.testing.assert_array_equal(edges, plain_edges)


def test_sandbox_values_are_not_plot_data(guard: Guard) -> None:
    with pytest.raises(TypeError, match="cannot plot torch.zeros"):
        plt(guard, "plot", NAMESPACES["torch"].members["zeros"])
    with pytest.raises(SandboxRefused, match="keyword argument 'transform'"):
        plt(guard, "plot", [1], transform=None)
    with pytest.raises(SandboxRefused, match="longer than"):
        plt(guard, "title", "x" * (lib_plot.MAX_TEXT_CHARS + 1))


def test_runs_do_not_share_figures() -> None:
    first, second = Guard(SandboxLimits()), Guard(SandboxLimits())
    plt(first, "plot", [1, 2])
    assert lib_plot.plot_state(second).current is None
    assert "figures" not in collect_outputs(second)
    assert len(collect_outputs(first)["figures"]) == 1


def test_a_learner_script_shows_its_figures_at_the_lines_that_showed_them() -> None:
    from app.sandbox.interpreter import run_answer

    script = "\n".join(
        [
            "import torch",
            "import matplotlib.pyplot as plt",
            "x = torch.linspace(0, 1, 50)",
            "plt.figure(figsize=(4, 3))",
            "plt.plot(x, x ** 2, 'b', label='y')",
            "plt.legend()",
            "plt.show()",
            "fig, ax = plt.subplots()",
            "ax.scatter(x, x)",
        ]
    )
    answer = run_answer(script, SandboxLimits()).as_dict()
    assert answer["error"] is None
    figures = answer["figures"]
    assert [(f["line"], f["width"], f["height"]) for f in figures] == [(7, 320, 240), (9, 512, 384)]
    assert [png(f).size for f in figures] == [(320, 240), (512, 384)]
