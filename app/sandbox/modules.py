"""The modules a learner program may import, by their dotted names, as the program sees them.

``import torch.nn as nn``, ``from torch.utils.data import DataLoader`` and ``from sklearn import
datasets`` resolve here, when the import statement runs: a name the table has binds its
``Namespace`` (or one of its members); any other module is an ``ImportError`` at that line, as
Python would raise it, naming what the sandbox offers. Each ``app.sandbox.lib_*`` module adds its
namespaces with ``register``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.sandbox.guards import Guard
from app.sandbox.library import (
    NAMESPACES,
    Namespace,
    register_callable,
    register_subscriptable,
)

MODULES: dict[str, Namespace] = {}

# Modules that exist in plain Python but reach the OS, the network or the interpreter.
SYSTEM_MODULES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "shutil",
        "pathlib",
        "socket",
        "io",
        "builtins",
        "importlib",
        "inspect",
        "ctypes",
        "pickle",
        "marshal",
        "threading",
        "multiprocessing",
        "signal",
        "gc",
        "code",
        "codeop",
        "runpy",
        "types",
        "urllib",
        "http",
        "requests",
        "pty",
        "platform",
        "tempfile",
        "glob",
        "fileinput",
        "resource",
        "asyncio",
    }
)


def register(path: str, namespace: Namespace) -> Namespace:
    """Make ``import <path>`` bind ``namespace``; its parents become importable too."""
    MODULES[path] = namespace
    return namespace


def offered() -> str:
    """The top-level modules a program may import, for messages."""
    return ", ".join(sorted({path.split(".")[0] for path in MODULES}))


def import_module(path: str) -> Namespace:
    """The namespace ``import <path>`` gives, or the ImportError plain Python would raise."""
    namespace = MODULES.get(path)
    if namespace is not None:
        return namespace
    top = path.split(".")[0]
    if top in SYSTEM_MODULES:
        raise ImportError(
            f"{path} is not available in this sandbox (no file, network, OS or interpreter "
            f"access); it offers {offered()}"
        )
    if top in MODULES:
        raise ModuleNotFoundError(f"No module named '{path}' in this sandbox")
    raise ModuleNotFoundError(f"No module named '{path}' (this sandbox offers {offered()})")


def member(namespace: Namespace, name: str, path: str) -> Any:
    """``from <path> import <name>``: a member, or a submodule registered as ``path.name``."""
    if name in namespace.members:
        return namespace.members[name]
    sub = MODULES.get(f"{path}.{name}")
    if sub is not None:
        return sub
    raise ImportError(f"cannot import name '{name}' from '{path}' (in this sandbox)")


for _name, _space in NAMESPACES.items():
    if _name in ("torch", "numpy"):
        register(_name, _space)
register("torch.nn", NAMESPACES["nn"])
register("torch.nn.functional", NAMESPACES["F"])
register("torch.optim", NAMESPACES["optim"])


# What libraries hand back at the end of a run ("files", "figures"): each function takes the
# run's Guard and returns {answer key: [items]}; the interpreter merges them into the answer.
Outputs = Callable[[Guard], dict[str, list[dict[str, Any]]]]
OUTPUTS: list[Outputs] = []


def register_outputs(collect: Outputs) -> None:
    OUTPUTS.append(collect)


def collect_outputs(guard: Guard) -> dict[str, list[dict[str, Any]]]:
    """Every library's outputs of this run, by answer key, in registration order."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for collect in OUTPUTS:
        for key, items in collect(guard).items():
            merged.setdefault(key, []).extend(items)
    return merged


# The libraries register their modules, types and outputs when imported.
from app.sandbox import lib_data, lib_files, lib_plot, lib_tensorboard, lib_vision  # noqa: E402,F401

register_callable(lib_vision.Transform, lib_vision.call_transform)
register_subscriptable(lib_plot.AxesGrid)
