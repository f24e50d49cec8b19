"""The figure layer stays light: importing any app.viz module loads no torch (nor through
app.lessons), so figures can be built, and tested, without it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import app.viz

MODULES = sorted(f"app.viz.{m.name}" for m in pkgutil.iter_modules(app.viz.__path__))


def test_there_are_viz_modules_to_check() -> None:
    assert "app.viz.tracking" in MODULES and "app.viz.common" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_viz_module_loads_no_torch(module: str) -> None:
    check = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('app.lessons')); "
        "print(','.join(loaded))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"
