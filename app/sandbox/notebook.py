"""A program as a Jupyter notebook that runs unchanged in plain Python (issue 14, "take it home").

``notebook_json`` runs the program in the sandbox (in the worker, like any program), then writes
it with ``nbformat``: a title, a setup cell (the imports the sandbox binds before a program
starts, the seed every run starts from, and the shipped data files the program reads), then the
program in cells, split at ``# %%`` markers, or else at the blank lines between top-level
statements. Each cell carries what the sandbox run gave it: what its statements printed (output
printed inside a function goes to the cell of the call), the figures drawn there, and the error
if it failed there; the cells after an error have none, as in Jupyter.
"""

from __future__ import annotations

import ast
import base64
import re
from bisect import bisect_right
from typing import Any

import nbformat
from nbformat import v4

from app.sandbox.interpreter import execute, session
from app.sandbox.lib_files import DATA_FILES
from app.sandbox.limits import SandboxLimits

_MARKER = re.compile(r"^#\s*%%")
SETUP = """\
# What the sandbox binds before a program starts, and the seed every run there starts from.
import torch
import numpy as np
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)
"""


def cell_ranges(code: str) -> list[tuple[int, int]]:
    """The cells' line ranges ``[first, last]`` (1-based): at ``# %%`` markers where the program
    has them, else at the blank lines between top-level statements (a blank line inside a
    function or a class does not split it)."""
    lines = code.splitlines()
    starts = [i + 1 for i, text in enumerate(lines) if _MARKER.match(text)]
    if not starts:
        try:
            body = ast.parse(code).body
        except SyntaxError:
            body = []
        starts = [1]
        for before, after in zip(body, body[1:], strict=False):
            first = min([after.lineno, *(d.lineno for d in getattr(after, "decorator_list", []))])
            gap = range((before.end_lineno or before.lineno) + 1, first)
            blanks = [n for n in gap if not lines[n - 1].strip()]
            if blanks:
                starts.append(blanks[-1] + 1)  # comments just above a statement stay with it
    elif starts[0] != 1:
        starts.insert(0, 1)
    ends = [start - 1 for start in starts[1:]] + [len(lines)]
    return list(zip(starts, ends, strict=True))


def _cell_text(lines: list[str], first: int, last: int) -> str:
    chunk = lines[first - 1 : last]
    if chunk and _MARKER.match(chunk[0]):
        chunk = chunk[1:]
    return "\n".join(chunk).strip("\n")


def _data_cell(code: str) -> str | None:
    """A cell writing the shipped data files the program names, so it finds them at home: text
    as it is, binary files (a picture's ``.npy``) as base64."""
    used = [path for path in DATA_FILES if path in code]
    if not used:
        return None
    binary = {path: DATA_FILES[path]() for path in used if not _is_text(DATA_FILES[path]())}
    parts = ["# The sandbox ships these data files; this writes the same ones here.", "import os"]
    if binary:
        parts.append("from base64 import b64decode")
    for path in used:
        parts.append(f"os.makedirs({path.rsplit('/', 1)[0]!r}, exist_ok=True)")
        if path in binary:
            packed = base64.b64encode(binary[path]).decode("ascii")
            parts.append(f"with open({path!r}, 'wb') as f:\n    f.write(b64decode({packed!r}))")
        else:
            text = DATA_FILES[path]().decode()
            parts.append(f"with open({path!r}, 'w') as f:\n    f.write({text!r})")
    return "\n".join(parts)


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def build(code: str, title: str, answer: dict[str, Any]) -> Any:
    """The notebook of ``code``, with the outputs of its sandbox run ``answer``."""
    lines = code.splitlines()
    ranges = [(a, b) for a, b in cell_ranges(code) if _cell_text(lines, a, b).strip()]
    firsts = [a for a, _ in ranges]

    def cell_of(line: int) -> int:
        return max(bisect_right(firsts, line) - 1, 0)

    outputs: list[list[Any]] = [[] for _ in ranges]
    for line, text in answer["printed"]:
        cell = outputs[cell_of(line)]
        if cell and cell[-1].get("output_type") == "stream":
            cell[-1]["text"] += text
        else:
            cell.append(v4.new_output("stream", name="stdout", text=text))
    for figure in answer["figures"]:
        outputs[cell_of(figure["line"])].append(
            v4.new_output(
                "display_data", data={"image/png": figure["png"], "text/plain": "<Figure>"}
            )
        )
    error = answer["error"]
    failed = len(ranges)
    if error is not None:
        failed = cell_of((error.get("traceback") or [error["line"]])[0])
        name, _, value = error["message"].partition(": ")
        outputs[failed].append(
            v4.new_output("error", ename=name, evalue=value, traceback=[error["message"]])
        )
    intro = "Run in PyTorch Explorer's sandbox; every cell runs unchanged in plain Python."
    cells = [v4.new_markdown_cell(f"# {title}\n\n{intro}")]
    cells.append(v4.new_code_cell(SETUP.rstrip("\n"), execution_count=1))
    data = _data_cell(code)
    if data is not None:
        cells.append(v4.new_code_cell(data, execution_count=2))
    count = len(cells) - 1
    for index, (first, last) in enumerate(ranges):
        ran = index <= failed
        count += ran
        cells.append(
            v4.new_code_cell(
                _cell_text(lines, first, last),
                execution_count=count if ran else None,
                outputs=outputs[index] if ran else [],
            )
        )
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    return notebook


def notebook_json(code: str, title: str, limits: SandboxLimits) -> bytes:
    """Run ``code`` in this process (the worker) and write it as a notebook's JSON.

    Raises SandboxRefused (or SandboxLimitExceeded) as ``run_program`` does.
    """
    with session() as caught:
        result = execute(code, limits, record=True, caught=caught, steps="none")
    answer = {
        "printed": result.printed,
        "figures": result.outputs.get("figures", []),
        "error": result.error,
    }
    if result.recorder is None:  # a syntax error: the program as one cell, with the error
        answer["printed"] = []
    return nbformat.writes(build(code, title, answer)).encode()
