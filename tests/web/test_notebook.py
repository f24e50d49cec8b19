"""POST /api/notebook: a program as a notebook that runs unchanged in plain Python.

The independent check: the notebook's code cells, run in order by plain Python in a subprocess,
print what the notebook's own outputs (the sandbox's run) say they printed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.sandbox.notebook import cell_ranges
from app.web.routes.notebook import file_name

SCRIPT = """\
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x):
        return self.fc(x)

def train(model, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"step {step}: {loss.item():.4f}")

x = torch.randn(8, 2)
y = x.sum(dim=1, keepdim=True)
model = Net()

train(model, 3)
print(model(torch.ones(1, 2)).shape)
"""


def post(client: TestClient, code: str, title: str | None = None) -> Any:
    r = client.post("/api/notebook", json={"code": code, "title": title})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ipynb+json")
    notebook = nbformat.reads(r.text, as_version=4)
    nbformat.validate(notebook)
    return r, notebook


def code_cells(notebook: Any) -> list[Any]:
    return [c for c in notebook.cells if c.cell_type == "code"]


def printed(cells: list[Any]) -> str:
    return "".join(
        o.text for c in cells for o in c.outputs if o.output_type == "stream" and o.name == "stdout"
    )


def run_plain(notebook: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = "\n\n".join(c.source for c in code_cells(notebook))
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    prelude = "import torch\ntorch.set_num_threads(1)\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_notebook_runs_in_plain_python_and_prints_what_its_outputs_say(
    client: TestClient, tmp_path: Path
) -> None:
    r, notebook = post(client, SCRIPT, "Linear model")
    assert r.headers["content-disposition"] == 'attachment; filename="Linear-model.ipynb"'
    assert (
        notebook.cells[0].cell_type == "markdown" and "# Linear model" in notebook.cells[0].source
    )
    cells = code_cells(notebook)
    assert "torch.manual_seed(0)" in cells[0].source  # the seed every sandbox run starts from
    # imports | class | def | data | the call and its print: blank lines inside the class and the
    # function do not split them
    assert [c.source.split("\n")[0] for c in cells[1:]] == [
        "import torch",
        "class Net(nn.Module):",
        "def train(model, steps):",
        "x = torch.randn(8, 2)",
        "train(model, 3)",
    ]
    # What train() printed belongs to the cell that called it.
    assert [printed([c]) for c in cells[1:4]] == ["", "", ""]
    assert printed(cells[-1:]) == printed(cells) and printed(cells).startswith("step 0: ")
    plain = run_plain(notebook, tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == printed(cells)
    assert len(plain.stdout.splitlines()) == 4 and plain.stdout.endswith("torch.Size([1, 1])\n")


def test_markers_split_cells_and_figures_and_errors_land_in_their_cells(
    client: TestClient, tmp_path: Path
) -> None:
    code = (
        "# %% data\nimport matplotlib.pyplot as plt\nxs = [1, 2, 3]\n\nprint(sum(xs))\n"
        "# %% plot\nplt.plot(xs)\nplt.show()\n"
        "# %% fail\nprint('before')\nxs[10]\n"
        "# %% never\nprint('not run')\n"
    )
    _, notebook = post(client, code)
    cells = code_cells(notebook)[1:]
    assert [c.source.split("\n")[0] for c in cells] == ["import matplotlib.pyplot as plt",
                                                         "plt.plot(xs)", "print('before')",
                                                         "print('not run')"]  # fmt: skip
    assert printed(cells[:1]) == "6\n"  # a blank line inside a marked cell does not split it
    figure = next(o for o in cells[1].outputs if o.output_type == "display_data")
    picture = Image.open(io.BytesIO(base64.b64decode(figure.data["image/png"])))
    assert picture.format == "PNG" and picture.size == (512, 384)
    error = next(o for o in cells[2].outputs if o.output_type == "error")
    assert error.ename == "IndexError" and error.evalue == "list index out of range"
    assert printed(cells[2:3]) == "before\n"
    assert cells[3].outputs == [] and cells[3].execution_count is None  # after the error
    plain = run_plain(notebook, tmp_path)
    assert "IndexError: list index out of range" in plain.stderr
    assert plain.stdout == "6\nbefore\n"


def test_a_script_reading_the_shipped_wine_file_finds_it_at_home(
    client: TestClient, tmp_path: Path
) -> None:
    code = (
        "import numpy as np\n"
        "xy = np.loadtxt('./data/wine/wine.csv', delimiter=',', dtype=np.float32, skiprows=1)\n"
        "print(xy.shape, xy[0, 0], xy[:, 0].sum())\n"
    )
    _, notebook = post(client, code)
    plain = run_plain(notebook, tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert (
        plain.stdout == printed(code_cells(notebook)) == "(178, 14) 1.0 345.0\n"
    )  # 59 + 2 * 71 + 3 * 48


def test_a_refused_program_is_a_422_naming_the_line(client: TestClient) -> None:
    r = client.post("/api/notebook", json={"code": "x = 1\neval('2')\n"})
    assert r.status_code == 422
    assert "line 2" in json.dumps(r.json()) and "eval" in json.dumps(r.json())


@pytest.mark.parametrize(
    ("code", "ranges"),
    [
        ("a = 1\nb = 2\n", [(1, 2)]),
        ("a = 1\n\nb = 2\n", [(1, 2), (3, 3)]),
        ("def f():\n    x = 1\n\n    return x\n\n# the call\nf()\n", [(1, 5), (6, 7)]),
        ("x = 1\n# %%\ny = 2\n\nz = 3\n", [(1, 1), (2, 5)]),
        ("a = (\n", [(1, 1)]),  # a syntax error: one cell
    ],
)
def test_cells_split_at_markers_or_at_blank_lines_between_top_level_statements(
    code: str, ranges: list[tuple[int, int]]
) -> None:
    assert cell_ranges(code) == ranges


@pytest.mark.parametrize(
    ("title", "name"),
    [(None, "program.ipynb"), ("My run!", "My-run.ipynb"), ('a"b/../c', "a-b-c.ipynb")],
)
def test_the_file_name_is_safe(title: str | None, name: str) -> None:
    assert file_name(title) == name
