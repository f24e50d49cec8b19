"""matplotlib for learner programs: ``import matplotlib.pyplot as plt`` draws real figures on Agg.

Everything is drawn with matplotlib's object-oriented API (a ``Figure`` on a ``FigureCanvasAgg``):
pyplot's global state is not used, so runs share nothing; each program's open figures, its current
figure and the PNGs it showed live in ``guard.extra("plot", ...)``. ``plt.show()`` renders every
open figure to a PNG kept with the step and line that showed it, and closes it; figures still open
when the program ends are rendered then, with the step and line that last drew on them. Data may be
tensors (not requiring grad, as in plain matplotlib), arrays or lists; the points drawn, the bars
and bins, the figures and their pixels are all bounded before matplotlib does the work.
"""

from __future__ import annotations

import base64
import io
import math
import posixpath
import struct
from collections.abc import Callable, Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never a window, whatever imports pyplot later in this process

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.colorbar import Colorbar  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from app.sandbox import guards, lib_files  # noqa: E402
from app.sandbox.guards import Guard  # noqa: E402
from app.sandbox.library import Namespace, SafeFunction, register_type, type_phrase  # noqa: E402
from app.sandbox.limits import SandboxRefused, over_limit  # noqa: E402
from app.sandbox.modules import register, register_outputs  # noqa: E402

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
MethodImpl = Callable[[Guard, Any, Args, Kwargs], Any]

# matplotlib's default size; 80 dots per inch (not 100) keeps each PNG small: 512 x 384 pixels.
DEFAULT_FIGSIZE = (6.4, 4.8)
DEFAULT_DPI = 80.0
# Bars and histogram bins a program may draw in all: each is a patch matplotlib renders one by one.
MAX_PATCHES = 10_000
# Axes of one figure (each costs matplotlib some milliseconds to lay out and draw).
MAX_AXES = 64
# Characters of one title, label or legend entry (mathtext parses them when drawing).
MAX_TEXT_CHARS = 1_000
_GRAD_MESSAGE = (
    "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
)
_SAVE_FORMATS = ("jpeg", "jpg", "pdf", "png", "svg")


def _words(text: str) -> list[str]:
    """Whitespace-separated names, so keyword whitelists read as one block."""
    return text.split()


class PlotState:
    """One program's figures: those open (in the order made), the current one, the PNGs kept."""

    def __init__(self) -> None:
        self.open: list[Figure] = []
        self.numbers: dict[int, int] = {}  # id(figure) -> its number, as plt.figure(num) names it
        self.drawn: dict[int, tuple[int, int]] = {}  # id(figure) -> (step, line) that last drew
        self.current: Figure | None = None
        self.kept: list[dict[str, Any]] = []
        self.points = 0
        self.patches = 0
        self.next_number = 1

    def close(self, figure: Figure) -> None:
        if figure in self.open:
            self.open.remove(figure)
        if self.current is figure:
            self.current = self.open[-1] if self.open else None


def plot_state(guard: Guard) -> PlotState:
    state: PlotState = guard.extra("plot", PlotState)
    return state


# -- checking what a program draws -----------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) else value
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise SandboxRefused(f"{what} is longer than {MAX_TEXT_CHARS} characters in this sandbox")
    return value


def _count_points(guard: Guard, state: PlotState, count: int) -> None:
    total = state.points + count
    if total > guard.limits.max_tensor_elements:
        raise over_limit(f"plotting {total} points in all", guard.limits, "max_tensor_elements")
    state.points = total


def _count_patches(state: PlotState, count: int) -> None:
    if state.patches + count > MAX_PATCHES:
        raise SandboxRefused(
            f"drawing more than {MAX_PATCHES} bars and histogram bins in all is not allowed in "
            "this sandbox"
        )
    state.patches += count


def _array(value: torch.Tensor) -> np.ndarray:
    """A tensor as matplotlib reads it (``np.asarray``), with PyTorch's error for one that
    requires grad."""
    if value.requires_grad:
        raise RuntimeError(_GRAD_MESSAGE)
    return value.detach().numpy()


def _data(guard: Guard, state: PlotState, value: Any, depth: int = 0) -> Any:
    """A data argument as plain numbers, arrays and strings, its elements counted."""
    if isinstance(value, torch.Tensor):
        _count_points(guard, state, value.numel())
        return _array(value)
    if isinstance(value, np.ndarray):
        _count_points(guard, state, int(value.size))
        return value
    if value is None or isinstance(value, bool | int | float | np.generic):
        _count_points(guard, state, 1)
        return value
    if isinstance(value, str):
        return _text(value, "a label")
    if isinstance(value, range):
        _count_points(guard, state, guards.range_len(value))
        return value
    if isinstance(value, list | tuple):
        if depth >= 4:
            raise TypeError("data nested more than 4 lists deep cannot be plotted here")
        guard.check_seq_len(len(value))
        return [_data(guard, state, item, depth + 1) for item in value]
    raise TypeError(f"matplotlib cannot plot {type_phrase(value)}")


def _options(
    guard: Guard, state: PlotState, name: str, kwargs: Kwargs, allowed: frozenset[str]
) -> Kwargs:
    """The keyword arguments of a drawing call, each a number, a string or data."""
    for key in kwargs:
        if key not in allowed:
            raise SandboxRefused(f"{name}() does not take the keyword argument '{key}' here")
    options: Kwargs = {}
    for key, value in kwargs.items():
        if key == "cmap" and not (value is None or isinstance(value, str)):
            raise TypeError(f"{name}(): cmap must be the name of a colormap, such as 'gray'")
        options[key] = _data(guard, state, value)
    return options


def _number_value(value: Any) -> Any:
    """A limit or position given as a one-element tensor becomes a number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return _array(value).item()
    return value


# -- figures ---------------------------------------------------------------------------------------


def _size(value: Any, what: str) -> float:
    value = _number_value(value)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    return float(value)


def _check_pixels(guard: Guard, width_in: float, height_in: float, dpi: float) -> None:
    width, height = width_in * dpi, height_in * dpi
    if not all(math.isfinite(v) and v > 0 for v in (width, height)):
        return  # matplotlib refuses these sizes itself
    pixels = int(width) * int(height)
    if pixels > guard.limits.max_figure_pixels:
        raise over_limit(
            f"a figure of {int(width)} x {int(height)} pixels",
            guard.limits,
            "max_figure_pixels",
        )


def new_figure(guard: Guard, figsize: Any = None, dpi: Any = None, num: Any = None) -> Figure:
    """A new figure of this program, counted and size-checked before it is made."""
    state = plot_state(guard)
    if figsize is None:
        width_in, height_in = DEFAULT_FIGSIZE
    else:
        if not isinstance(figsize, list | tuple) or len(figsize) != 2:
            raise ValueError("figsize must be a pair of numbers (width, height) in inches")
        width_in, height_in = (_size(v, "figsize") for v in figsize)
    resolution = DEFAULT_DPI if dpi is None else _size(dpi, "dpi")
    count = len(state.open) + len(state.kept) + 1
    if count > guard.limits.max_figures:
        raise over_limit(f"drawing {count} figures", guard.limits, "max_figures")
    _check_pixels(guard, width_in, height_in, resolution)
    figure = Figure(figsize=(width_in, height_in), dpi=resolution)
    FigureCanvasAgg(figure)
    if num is None:
        num = state.next_number
    state.next_number = max(state.next_number, num + 1)
    state.numbers[id(figure)] = num
    state.open.append(figure)
    state.current = figure
    _drew(guard, state, figure)
    return figure


def _drew(guard: Guard, state: PlotState, figure: Figure | None) -> None:
    if figure is not None:
        state.drawn[id(figure)] = (guard.step, guard.line)


def current_figure(guard: Guard) -> Figure:
    state = plot_state(guard)
    return state.current if state.current is not None else new_figure(guard)


def current_axes(guard: Guard) -> Axes:
    figure = current_figure(guard)
    if not figure.axes:
        _count_axes(figure, 1)
    return figure.gca()


def _count_axes(figure: Figure, more: int) -> None:
    if len(figure.axes) + more > MAX_AXES:
        raise SandboxRefused(f"a figure may have at most {MAX_AXES} axes in this sandbox")


def render(figure: Figure, step: int, line: int) -> dict[str, Any]:
    """A figure as the answer keeps it: a PNG at the figure's own size and dpi."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    png = buffer.getvalue()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    return {
        "step": step,
        "line": line,
        "png": base64.b64encode(png).decode("ascii"),
        "width": width,
        "height": height,
    }


# -- pyplot functions ------------------------------------------------------------------------------


def _bind(
    name: str, args: Args, kwargs: Kwargs, names: list[str], defaults: Kwargs
) -> dict[str, Any]:
    """Python's binding of arguments to ``names`` (unknown keywords are refused by the caller)."""
    if len(args) > len(names):
        raise TypeError(f"{name}() takes at most {len(names)} positional arguments")
    bound = dict(defaults)
    bound.update(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise SandboxRefused(f"{name}() does not take the keyword argument '{key}' here")
        if key in dict(zip(names, args, strict=False)):
            raise TypeError(f"{name}() got multiple values for argument '{key}'")
        bound[key] = value
    return bound


def _figure(guard: Guard, args: Args, kwargs: Kwargs) -> Figure:
    given = _bind(
        "figure",
        args,
        kwargs,
        ["num", "figsize", "dpi", "facecolor"],
        {"num": None, "figsize": None, "dpi": None, "facecolor": None},
    )
    state = plot_state(guard)
    num = given["num"]
    if num is not None:
        if isinstance(num, Figure) and num in state.open:
            state.current = num
            return num
        if isinstance(num, bool) or not isinstance(num, int):
            raise SandboxRefused("plt.figure(num) takes a figure number here")
        for figure in state.open:
            if state.numbers.get(id(figure)) == num:
                state.current = figure
                return figure
    figure = new_figure(guard, given["figsize"], given["dpi"], num)
    if given["facecolor"] is not None:
        figure.set_facecolor(_text(given["facecolor"], "facecolor"))
    return figure


def _subplot_spec(args: Args) -> tuple[int, int, int]:
    if not args:
        return 1, 1, 1
    if len(args) == 1 and isinstance(args[0], int) and 111 <= args[0] <= 999:
        rows, cols, index = (int(d) for d in str(args[0]))
    elif len(args) == 3 and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        rows, cols, index = args
    else:
        raise ValueError("subplot() takes three integers (rows, columns, index) or one like 221")
    if rows < 1 or cols < 1 or rows * cols > MAX_AXES:
        raise ValueError(f"Number of rows and columns must be between 1 and {MAX_AXES} here")
    if not 1 <= index <= rows * cols:
        raise ValueError(f"num must be an integer with 1 <= num <= {rows * cols}, not {index}")
    return rows, cols, index


def add_subplot(guard: Guard, figure: Figure, args: Args, kwargs: Kwargs) -> Axes:
    """``subplot(r, c, i)`` on ``figure``: the axes already there, or a new one made current."""
    if kwargs:
        raise SandboxRefused("subplot() takes only the rows, columns and index here")
    rows, cols, index = _subplot_spec(args)
    for axes in figure.axes:
        spec = axes.get_subplotspec()
        if spec is not None and spec.get_geometry() == (rows, cols, index - 1, index - 1):
            figure.sca(axes)
            return axes
    _count_axes(figure, 1)
    axes = figure.add_subplot(rows, cols, index)
    _drew(guard, plot_state(guard), figure)
    return axes


def _subplot(guard: Guard, args: Args, kwargs: Kwargs) -> Axes:
    return add_subplot(guard, current_figure(guard), args, kwargs)


class AxesGrid:
    """The axes ``plt.subplots(2, 2)`` hands out: indexed, sliced and looped over like NumPy's
    array of axes, which stays inside (arrays of objects are not program values here)."""

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __repr__(self) -> str:
        return repr(self._array)

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, index: Any) -> Any:
        parts = index if isinstance(index, tuple) else (index,)
        if not all(isinstance(p, int | slice) and not isinstance(p, bool) for p in parts):
            raise IndexError("axes are indexed with integers and slices")
        item = self._array[index]
        return AxesGrid(item) if isinstance(item, np.ndarray) else item

    def __iter__(self) -> Iterator[Any]:
        return (AxesGrid(i) if isinstance(i, np.ndarray) else i for i in list(self._array))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    def flat(self) -> Iterator[Axes]:
        return iter(list(self._array.flat))


def _subplots(guard: Guard, args: Args, kwargs: Kwargs) -> tuple[Figure, Any]:
    given = _bind(
        "subplots",
        args,
        kwargs,
        ["nrows", "ncols", "sharex", "sharey", "squeeze", "figsize", "dpi"],
        {"nrows": 1, "ncols": 1, "sharex": False, "sharey": False, "squeeze": True},
    )
    rows, cols = given["nrows"], given["ncols"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rows, cols)):
        raise TypeError("subplots(): nrows and ncols must be integers")
    if rows < 1 or cols < 1:
        raise ValueError(f"Number of rows must be a positive integer, not {min(rows, cols)}")
    if rows * cols > MAX_AXES:
        raise SandboxRefused(f"a figure may have at most {MAX_AXES} axes in this sandbox")
    for key in ("sharex", "sharey", "squeeze"):
        if not isinstance(given[key], bool | str):
            raise TypeError(f"subplots(): {key} must be True or False")
    figure = new_figure(guard, given.get("figsize"), given.get("dpi"))
    axes = figure.subplots(
        rows, cols, sharex=given["sharex"], sharey=given["sharey"], squeeze=given["squeeze"]
    )
    return figure, AxesGrid(axes) if isinstance(axes, np.ndarray) else axes


_LINE = frozenset(
    _words(
        """label color c linestyle ls marker linewidth lw markersize ms alpha zorder
        markerfacecolor markeredgecolor mfc mec drawstyle"""
    )
)
_SCATTER = frozenset(
    _words("s c marker cmap alpha label linewidths edgecolors edgecolor color vmin vmax zorder")
)
_BAR = frozenset(_words("width bottom align color edgecolor label alpha tick_label linewidth"))
_HIST = frozenset(
    _words("""bins range density weights cumulative histtype align orientation color label alpha
    edgecolor rwidth stacked linewidth""")
)
_IMSHOW = frozenset(_words("cmap interpolation vmin vmax aspect origin alpha extent"))
_TEXT = frozenset(_words("fontsize loc pad fontweight color labelpad"))
_LEGEND = frozenset(_words("loc fontsize title frameon ncol labels handles"))
_GRID = frozenset(_words("visible which axis color linestyle linewidth alpha"))
_AXLINE = frozenset(_words("x y xmin xmax ymin ymax color linestyle ls linewidth lw alpha label"))


def _drawing(name: str, allowed: frozenset[str]) -> MethodImpl:
    """``ax.plot(...)`` and friends: data converted and counted, keywords checked."""

    def impl(guard: Guard, axes: Axes, args: Args, kwargs: Kwargs) -> Any:
        state = plot_state(guard)
        if len(args) > 30:
            raise TypeError(f"{name}() takes at most 30 positional arguments here")
        values = [_data(guard, state, a) for a in args]
        options = _options(guard, state, name, kwargs, allowed)
        if name == "hist":
            _count_hist(state, values, options)
        elif name == "bar" and values:
            first = values[0]
            _count_patches(
                state, len(first) if isinstance(first, list | range) else int(np.size(first))
            )
        result = getattr(axes, name)(*values, **options)
        _drew(guard, state, axes.figure if isinstance(axes.figure, Figure) else None)
        if name == "hist":
            return result[0], result[1], result[2]
        return result

    return impl


def _count_hist(state: PlotState, values: list[Any], options: Kwargs) -> None:
    bins = options.get("bins", values[1] if len(values) > 1 else 10)
    if isinstance(bins, str):
        raise SandboxRefused("hist(): give bins as a number or a list of edges in this sandbox")
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer | list | np.ndarray | range):
        raise TypeError("hist(): bins must be an integer or a sequence of edges")
    count = int(bins) if isinstance(bins, int | np.integer) else max(len(bins) - 1, 0)
    data = values[0] if values else None
    sets = 1
    if isinstance(data, np.ndarray) and data.ndim == 2:
        sets = data.shape[1]
    elif isinstance(data, list) and data and isinstance(data[0], list | np.ndarray):
        sets = len(data)
    _count_patches(state, max(count, 0) * sets)


def _labelled(name: str, method: str) -> MethodImpl:
    """``ax.set_title(text)``, ``set_xlabel``, ``set_ylabel``, ``fig.suptitle``."""

    def impl(guard: Guard, target: Any, args: Args, kwargs: Kwargs) -> Any:
        if len(args) != 1:
            raise TypeError(f"{name}() takes the text as its one positional argument")
        state = plot_state(guard)
        options = _options(guard, state, name, kwargs, _TEXT)
        result = getattr(target, method)(_text(args[0], f"{name}()"), **options)
        _drew(guard, state, target if isinstance(target, Figure) else target.figure)
        return result

    return impl


def _legend(guard: Guard, axes: Axes, args: Args, kwargs: Kwargs) -> Legend:
    state = plot_state(guard)
    artists = (Line2D, PathCollection, BarContainer, AxesImage)

    def entries(value: Any) -> Any:
        if isinstance(value, str):
            return _text(value, "a legend label")
        if isinstance(value, list | tuple) and not isinstance(value, BarContainer):
            guard.check_seq_len(len(value))
            return [entries(v) for v in value]
        if isinstance(value, artists):
            return value
        raise TypeError(
            f"legend() takes labels (strings) or plotted lines, not {type_phrase(value)}"
        )

    for key in kwargs:
        if key not in _LEGEND:
            raise SandboxRefused(f"legend() does not take the keyword argument '{key}' here")
    if len(args) > 2:
        raise TypeError("legend() takes at most two positional arguments (handles, labels)")
    values = [entries(a) for a in args]
    options = {
        k: entries(v) if k in ("labels", "handles") else _data(guard, state, v)
        for k, v in kwargs.items()
    }
    result = axes.legend(*values, **options)
    _drew(guard, state, axes.figure if isinstance(axes.figure, Figure) else None)
    return result


def _limits(name: str) -> MethodImpl:
    """``set_xlim(0, 1)``, ``set_xlim((0, 1))``, ``set_xlim(left=0)``; ``xlim()`` asks."""

    def impl(guard: Guard, axes: Axes, args: Args, kwargs: Kwargs) -> Any:
        keys = {"left", "right"} if name == "set_xlim" else {"bottom", "top"}
        for key in kwargs:
            if key not in keys:
                raise SandboxRefused(f"{name}() does not take the keyword argument '{key}' here")
        if len(args) == 1 and isinstance(args[0], list | tuple):
            args = tuple(args[0])
        if len(args) > 2:
            raise TypeError(f"{name}() takes at most two limits")
        values = [_limit_value(a, name) for a in args]
        options = {k: _limit_value(v, name) for k, v in kwargs.items()}
        if not values and not options:
            return getattr(axes, name.replace("set_", "get_"))()
        result = getattr(axes, name)(*values, **options)
        _drew(guard, plot_state(guard), axes.figure if isinstance(axes.figure, Figure) else None)
        return result

    return impl


def _limit_value(value: Any, name: str) -> Any:
    value = _number_value(value)
    if value is None or isinstance(value, int | float | np.integer | np.floating):
        return value
    raise TypeError(f"{name}(): limits must be numbers, not {type(value).__name__}")


def _axis(guard: Guard, axes: Axes, args: Args, kwargs: Kwargs) -> Any:
    if kwargs or len(args) > 1:
        raise SandboxRefused("axis() takes one argument here: 'off', 'equal', or [x0, x1, y0, y1]")
    arg: Any = args[0] if args else None
    if isinstance(arg, list | tuple):
        arg = [_limit_value(v, "axis") for v in arg]
    elif not (arg is None or isinstance(arg, str | bool)):
        raise TypeError("axis() takes a string, a bool or a list of four limits")
    result = axes.axis(arg) if arg is not None else axes.axis()
    _drew(guard, plot_state(guard), axes.figure if isinstance(axes.figure, Figure) else None)
    return tuple(float(v) for v in result)


def _grid(guard: Guard, axes: Axes, args: Args, kwargs: Kwargs) -> None:
    if len(args) > 1 or (args and not isinstance(args[0], bool | type(None))):
        raise TypeError("grid() takes True, False or None as its one positional argument")
    state = plot_state(guard)
    axes.grid(*args, **_options(guard, state, "grid", kwargs, _GRID))
    _drew(guard, state, axes.figure if isinstance(axes.figure, Figure) else None)


def _ticks(name: str) -> MethodImpl:
    """``set_xticks(ticks, labels=None)``; returns nothing (matplotlib's tick objects stay in)."""

    def impl(guard: Guard, axes: Axes, args: Args, kwargs: Kwargs) -> None:
        state = plot_state(guard)
        given = _bind(name, args, kwargs, ["ticks", "labels"], {"labels": None})
        if "ticks" not in given:
            raise TypeError(f"{name}() missing 1 required positional argument: 'ticks'")
        ticks = _data(guard, state, given["ticks"])
        labels = given["labels"]
        if labels is not None:
            labels = [_text(v, "a tick label") for v in guard.bounded(labels)]
        getattr(axes, name)(ticks, labels)
        _drew(guard, state, axes.figure if isinstance(axes.figure, Figure) else None)

    return impl


def _cla(guard: Guard, axes: Axes, args: Args, kwargs: Kwargs) -> None:
    if args or kwargs:
        raise TypeError("cla() takes no arguments")
    axes.cla()


AXES_METHODS: dict[str, MethodImpl] = {
    "plot": _drawing("plot", _LINE),
    "scatter": _drawing("scatter", _SCATTER),
    "bar": _drawing("bar", _BAR),
    "hist": _drawing("hist", _HIST),
    "imshow": _drawing("imshow", _IMSHOW),
    "axhline": _drawing("axhline", _AXLINE),
    "axvline": _drawing("axvline", _AXLINE),
    "set_title": _labelled("set_title", "set_title"),
    "set_xlabel": _labelled("set_xlabel", "set_xlabel"),
    "set_ylabel": _labelled("set_ylabel", "set_ylabel"),
    "legend": _legend,
    "grid": _grid,
    "set_xlim": _limits("set_xlim"),
    "set_ylim": _limits("set_ylim"),
    "axis": _axis,
    "set_xticks": _ticks("set_xticks"),
    "set_yticks": _ticks("set_yticks"),
    "cla": _cla,
}


def _on_current_axes(method: str) -> Callable[[Guard, Args, Kwargs], Any]:
    impl = AXES_METHODS[method]

    def call(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        return impl(guard, current_axes(guard), args, kwargs)

    return call


def _mappable(state: PlotState, figure: Figure) -> ScalarMappable:
    """The image or scatter ``plt.colorbar()`` describes: the newest on ``figure``."""
    for axes in reversed(figure.axes):
        for artist in reversed([*axes.images, *axes.collections]):
            if isinstance(artist, ScalarMappable):
                return artist
    raise RuntimeError(
        "No mappable was found to use for colorbar creation. First define a mappable such as an "
        "image (with imshow) or a contour set (with contourf)."
    )


def colorbar(guard: Guard, figure: Figure, args: Args, kwargs: Kwargs) -> Colorbar:
    given = _bind("colorbar", args, kwargs, ["mappable", "ax", "label", "shrink"], {})
    state = plot_state(guard)
    mappable = given.get("mappable")
    if mappable is None:
        mappable = _mappable(state, figure)
    elif not isinstance(mappable, ScalarMappable):
        raise TypeError("colorbar() takes what imshow() or scatter() returned")
    axes = given.get("ax")
    if axes is not None and not isinstance(axes, Axes):
        raise TypeError("colorbar(): ax must be an Axes")
    options: Kwargs = {}
    if given.get("label") is not None:
        options["label"] = _text(given["label"], "colorbar label")
    if given.get("shrink") is not None:
        options["shrink"] = _size(given["shrink"], "shrink")
    owner = axes if axes is not None else (figure.gca() if figure.axes else None)
    result = figure.colorbar(mappable, ax=owner, **options)
    _drew(guard, state, figure)
    return result


def _plt_colorbar(guard: Guard, args: Args, kwargs: Kwargs) -> Colorbar:
    return colorbar(guard, current_figure(guard), args, kwargs)


def _tight_layout(guard: Guard, figure: Figure, args: Args, kwargs: Kwargs) -> None:
    for key in kwargs:
        if key not in ("pad", "h_pad", "w_pad"):
            raise SandboxRefused(f"tight_layout() does not take the keyword argument '{key}' here")
    if args:
        raise TypeError("tight_layout() takes keyword arguments only")
    pads: dict[str, Any] = {k: _size(v, k) for k, v in kwargs.items()}
    figure.tight_layout(**pads)
    _drew(guard, plot_state(guard), figure)


def savefig(guard: Guard, figure: Figure, args: Args, kwargs: Kwargs) -> None:
    """Render ``figure`` into the program's files (PNG unless the name or format says else)."""
    given = _bind(
        "savefig",
        args,
        kwargs,
        ["fname", "dpi", "format", "bbox_inches", "transparent", "pad_inches", "facecolor"],
        {"dpi": None, "format": None, "bbox_inches": None, "transparent": False},
    )
    if "fname" not in given:
        raise TypeError("savefig() missing 1 required positional argument: 'fname'")
    name = given["fname"]
    if not isinstance(name, str):
        raise TypeError(f"savefig(): fname must be a file name, not {type(name).__name__}")
    extension = posixpath.splitext(name)[1][1:].lower()
    fmt = given["format"] if given["format"] is not None else extension or "png"
    if not extension and given["format"] is None:
        name += ".png"  # what matplotlib does with a name without an extension
    if not isinstance(fmt, str) or fmt.lower() not in _SAVE_FORMATS:
        raise ValueError(
            f"Format '{fmt}' is not supported (supported formats: {', '.join(_SAVE_FORMATS)})"
        )
    lib_files.normalise(name)  # a bad path fails before the drawing
    dpi_given = given["dpi"]
    dpi = figure.dpi if dpi_given in (None, "figure") else _size(dpi_given, "dpi")
    width_in, height_in = figure.get_size_inches()
    _check_pixels(guard, float(width_in), float(height_in), dpi)
    bbox = given["bbox_inches"]
    if bbox not in (None, "tight"):
        raise SandboxRefused("savefig(): bbox_inches may be None or 'tight' here")
    if bbox == "tight":
        tight = figure.get_tightbbox(figure.canvas.get_renderer())  # type: ignore[attr-defined]
        if tight is not None:
            _check_pixels(guard, float(tight.width), float(tight.height), dpi)
    options: Kwargs = {"format": fmt.lower(), "dpi": dpi, "bbox_inches": bbox}
    options["transparent"] = bool(given["transparent"])
    if given.get("pad_inches") is not None:
        options["pad_inches"] = _size(given["pad_inches"], "pad_inches")
    if given.get("facecolor") is not None:
        options["facecolor"] = _text(given["facecolor"], "facecolor")
    buffer = io.BytesIO()
    figure.savefig(buffer, **options)
    lib_files.program_files(guard).write(name, buffer.getvalue())


def _plt_savefig(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    savefig(guard, current_figure(guard), args, kwargs)


def _show(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    if args or set(kwargs) - {"block"}:
        raise TypeError("show() takes only block=")
    state = plot_state(guard)
    for figure in list(state.open):
        state.kept.append(render(figure, guard.step, guard.line))
        state.close(figure)


def _close(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    if kwargs or len(args) > 1:
        raise TypeError("close() takes one figure, its number, or 'all'")
    state = plot_state(guard)
    which = args[0] if args else None
    if which is None:
        if state.current is not None:
            state.close(state.current)
    elif which == "all":
        for figure in list(state.open):
            state.close(figure)
    elif isinstance(which, Figure):
        state.close(which)
    elif isinstance(which, int) and not isinstance(which, bool):
        for figure in list(state.open):
            if state.numbers.get(id(figure)) == which:
                state.close(figure)
    else:
        raise TypeError("close() argument must be a Figure, an int, 'all' or None")


def _gcf(guard: Guard, args: Args, kwargs: Kwargs) -> Figure:
    if args or kwargs:
        raise TypeError("gcf() takes no arguments")
    return current_figure(guard)


def _gca(guard: Guard, args: Args, kwargs: Kwargs) -> Axes:
    if args or kwargs:
        raise TypeError("gca() takes no arguments")
    return current_axes(guard)


def _clf(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    if args or kwargs:
        raise TypeError("clf() takes no arguments")
    current_figure(guard).clear()


def _on_current_figure(impl: MethodImpl) -> Callable[[Guard, Args, Kwargs], Any]:
    def call(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        return impl(guard, current_figure(guard), args, kwargs)

    return call


def _pyplot_ticks(name: str) -> Callable[[Guard, Args, Kwargs], Any]:
    method = _ticks(f"set_{name}")

    def call(guard: Guard, args: Args, kwargs: Kwargs) -> None:
        if not args and "ticks" not in kwargs:
            return None  # plt.xticks() asks for the ticks: nothing to hand out here
        method(guard, current_axes(guard), args, kwargs)
        return None

    return call


FIGURE_METHODS: dict[str, MethodImpl] = {
    "add_subplot": add_subplot,
    "savefig": savefig,
    "suptitle": _labelled("suptitle", "suptitle"),
    "tight_layout": _tight_layout,
    "colorbar": colorbar,
}

_PYPLOT: dict[str, Callable[[Guard, Args, Kwargs], Any]] = {
    "figure": _figure,
    "subplot": _subplot,
    "subplots": _subplots,
    **{
        name: _on_current_axes(name)
        for name in ("plot", "scatter", "bar", "hist", "imshow", "axhline", "axvline")
    },
    "title": _on_current_axes("set_title"),
    "xlabel": _on_current_axes("set_xlabel"),
    "ylabel": _on_current_axes("set_ylabel"),
    "legend": _on_current_axes("legend"),
    "grid": _on_current_axes("grid"),
    "xlim": _on_current_axes("set_xlim"),
    "ylim": _on_current_axes("set_ylim"),
    "axis": _on_current_axes("axis"),
    "cla": _on_current_axes("cla"),
    "xticks": _pyplot_ticks("xticks"),
    "yticks": _pyplot_ticks("yticks"),
    "colorbar": _plt_colorbar,
    "suptitle": _on_current_figure(FIGURE_METHODS["suptitle"]),
    "tight_layout": _on_current_figure(_tight_layout),
    "savefig": _plt_savefig,
    "show": _show,
    "close": _close,
    "gcf": _gcf,
    "gca": _gca,
    "clf": _clf,
}

PYPLOT = Namespace(
    "matplotlib.pyplot",
    {name: SafeFunction(f"matplotlib.pyplot.{name}", impl) for name, impl in _PYPLOT.items()},
)


def _use(guard: Guard, args: Args, kwargs: Kwargs) -> None:
    """``matplotlib.use(backend)``: figures are always drawn on Agg here."""
    if len(args) != 1 or not isinstance(args[0], str) or set(kwargs) - {"force"}:
        raise TypeError("use() takes the name of a backend")
    if args[0].lower() != "agg":
        guard.notice(
            f"matplotlib.use({args[0]!r}) was ignored: figures are drawn with the Agg backend "
            "and shown as images below the code"
        )


MATPLOTLIB = Namespace(
    "matplotlib", {"pyplot": PYPLOT, "use": SafeFunction("matplotlib.use", _use)}
)
register("matplotlib", MATPLOTLIB)
register("matplotlib.pyplot", PYPLOT)


def _axes_list(figure: Figure) -> list[Axes]:
    return list(figure.axes)


def _grid_flatten(guard: Guard, grid: AxesGrid, args: Args, kwargs: Kwargs) -> AxesGrid:
    if args or kwargs:
        raise TypeError("flatten() takes no arguments here")
    return AxesGrid(grid._array.flatten())


register_type(Figure, {"axes": _axes_list}, FIGURE_METHODS)
register_type(Axes, {}, AXES_METHODS)
register_type(
    AxesGrid,
    {
        "shape": lambda g: g.shape,
        "ndim": lambda g: len(g.shape),
        "size": lambda g: int(g._array.size),
        "flat": lambda g: g.flat(),
    },
    {"flatten": _grid_flatten, "ravel": _grid_flatten},
)
guards.register_iterable(AxesGrid)


def _set_label(guard: Guard, bar: Colorbar, args: Args, kwargs: Kwargs) -> None:
    if kwargs or len(args) != 1:
        raise TypeError("set_label() takes the label")
    bar.set_label(_text(args[0], "colorbar label"))


# What drawing calls return: the program may keep them and hand them back (legend, colorbar).
for _artist in (Line2D, PathCollection, AxesImage, BarContainer, Legend, Text):
    register_type(_artist, {}, {})
register_type(Colorbar, {}, {"set_label": _set_label})


def _outputs(guard: Guard) -> dict[str, list[dict[str, Any]]]:
    """The PNGs shown, then the figures still open at the end (drawn now, with the step and
    line that last drew on them)."""
    state = guard.extras.get("plot")
    if not isinstance(state, PlotState):
        return {}
    for figure in list(state.open):
        step, line = state.drawn.get(id(figure), (guard.step, guard.line))
        try:
            state.kept.append(render(figure, step, line))
        except Exception as exc:  # a learner's figure that cannot be drawn (bad mathtext)
            guard.notice(f"a figure drawn at line {line} could not be rendered: {exc}")
        state.close(figure)
    return {"figures": list(state.kept)} if state.kept else {}


register_outputs(_outputs)
