"""Run the corpus of beginner scripts in plain Python, one subprocess for all, as JSON results.

``python tests/sandbox/corpus_runner.py --out results.json [--wine wine.csv] SCRIPT...``

Each script runs with ``runpy.run_path(script, run_name="__main__")`` in a fresh temporary
working directory holding ``data/wine/wine.csv`` (the file the sandbox ships; without ``--wine``
it is written here from scikit-learn's wine table in the same layout), after
``torch.manual_seed(0)`` with one torch thread and matplotlib on Agg: what the sandbox does
before a program runs. torch and the other libraries are imported once, so a script's seconds
are its own. The ``torchvision`` shim next to this file stands in for the wheel this machine's
CPU PyTorch cannot load.

Per script the JSON holds: ``stdout``; ``error`` (null, or the exception's ``type`` name,
``message`` and the ``line`` of the innermost traceback frame inside the script); ``seconds``;
``lines`` (line events in the script's own frames: about the statements the sandbox counts);
``warnings`` (what plain Python warned, which the sandbox would print).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import runpy
import sys
import tempfile
import time
import traceback
import warnings
import weakref
from pathlib import Path
from types import FrameType
from typing import Any

SHIMS = Path(__file__).resolve().parent / "shims"

WINE_HEADER = (
    "Wine,Alcohol,Malic.acid,Ash,Acl,Mg,Phenols,Flavanoids,Nonflavanoid.phenols,Proanth,"
    "Color.int,Hue,OD,Proline"
)


def wine_csv_from_sklearn() -> str:
    """The courses' wine.csv from scikit-learn: a header, then label (1-3) and 13 features,
    each written with its shortest round-trip digits and no trailing ".0" (the sandbox's file)."""
    from sklearn.datasets import load_wine

    def number(value: float) -> str:
        text = repr(float(value))
        return text.removesuffix(".0")

    wine = load_wine()
    rows = [WINE_HEADER]
    for label, features in zip(wine.target, wine.data, strict=True):
        rows.append(",".join([str(int(label) + 1), *map(number, features)]))
    return "\n".join(rows) + "\n"


class LineCounter:
    """Counts line events in frames of one file (the script), tracing nothing else."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines = 0

    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != self.filename:
            return None
        return self.local_trace

    def local_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.lines += 1
        return self.local_trace


def error_of(exc: BaseException, filename: str) -> dict[str, Any]:
    """The exception's type name, message and the innermost line of it inside ``filename``."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return {"type": type(exc).__name__, "message": str(exc), "line": line}


# The multi-process DataLoader iterators scripts made, so their workers can be stopped after.
LOADER_ITERATORS: weakref.WeakSet[Any] = weakref.WeakSet()


def track_loader_iterators() -> None:
    """Remember every multi-process DataLoader iterator made from now on, for the next function."""
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    init = _MultiProcessingDataLoaderIter.__init__

    def tracked_init(self: Any, loader: Any) -> None:
        init(self, loader)
        LOADER_ITERATORS.add(self)

    _MultiProcessingDataLoaderIter.__init__ = tracked_init  # type: ignore[method-assign]


def stop_loader_workers() -> None:
    """Shut down the workers of DataLoader iterators a script left half-used (``next(iter(
    loader))`` with ``num_workers=2``). Left to the garbage collector, such an iterator dies
    inside a reference cycle with the script's globals, its queues already gone, and waits
    5 s per worker before killing them; plain Python at exit never shows this, so it is not
    the script's cost."""
    for iterator in list(LOADER_ITERATORS):
        iterator._shutdown_workers()
    LOADER_ITERATORS.clear()


def run_script(script: Path, wine_csv: str) -> dict[str, Any]:
    """Run one script as ``__main__`` in a fresh working directory, as the sandbox would."""
    import matplotlib.pyplot as plt
    import torch

    filename = str(script.resolve())
    counter = LineCounter(filename)
    stdout = io.StringIO()
    error = None
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="corpus-") as work:
        wine = Path(work, "data", "wine", "wine.csv")
        wine.parent.mkdir(parents=True)
        wine.write_text(wine_csv)
        os.chdir(work)
        plt.close("all")
        torch.set_grad_enabled(True)
        torch.manual_seed(0)
        start = time.perf_counter()
        try:
            with (
                warnings.catch_warnings(record=True) as caught,
                contextlib.redirect_stdout(stdout),
            ):
                warnings.simplefilter("always")
                sys.settrace(counter.global_trace)
                try:
                    runpy.run_path(filename, run_name="__main__")
                finally:
                    sys.settrace(None)
        except Exception as exc:  # a script may end in any error: that is what is compared
            error = error_of(exc, filename)
        seconds = time.perf_counter() - start
        stop_loader_workers()
        os.chdir(cwd)
        plt.close("all")
    return {
        "stdout": stdout.getvalue(),
        "error": error,
        "seconds": round(seconds, 4),
        "lines": counter.lines,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
    }


def warm_up() -> None:
    """Pay the first-use costs once (an optimizer imports torch._dynamo, a first figure loads
    fonts), so that no script's seconds include them."""
    import matplotlib.pyplot as plt
    import torch

    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1)
    (weight * 2).sum().backward()
    optimizer.step()
    plt.figure()
    plt.plot([0, 1], [0, 1], label="warm-up")
    plt.xlabel("x")
    plt.legend()
    plt.gcf().canvas.draw()
    plt.close("all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where the JSON results go")
    parser.add_argument("--wine", help="wine.csv to serve as ./data/wine/wine.csv")
    parser.add_argument("scripts", nargs="+")
    args = parser.parse_args(argv)

    os.environ["MPLBACKEND"] = "Agg"
    sys.path.insert(0, str(SHIMS))
    # Imported once, before any script, so that a script's time is its own.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.preprocessing  # noqa: F401
    import torch
    import torch.utils.tensorboard  # noqa: F401
    import torchvision  # noqa: F401  (the shim)

    torch.set_num_threads(1)
    warm_up()
    track_loader_iterators()
    wine_csv = Path(args.wine).read_text() if args.wine else wine_csv_from_sklearn()
    results = {Path(script).name: run_script(Path(script), wine_csv) for script in args.scripts}
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
