"""The corpus of beginner scripts: each runs through ``POST /api/tensors/run`` exactly as in
plain Python (issue 13's Tests).

Every ``tests/sandbox/scripts/NN_topic.py`` is written as a learner of a beginner PyTorch course
writes it, imports and all. The plain side runs all of them once, in one subprocess
(``corpus_runner.py``: same seed, one torch thread, the same ``./data/wine/wine.csv``); each
script then goes through the sandbox, and the printed output must match line by line, floats
included, and a script that fails in plain Python must fail in the sandbox at the same line
with the same exception type and message.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.lessons.registry import LESSONS
from app.web.routes.programs import warm_sandbox

HERE = Path(__file__).resolve().parent
SCRIPTS_DIR = HERE / "scripts"
SCRIPTS = sorted(SCRIPTS_DIR.glob("[0-9][0-9]_*.py"))
RUNNER = HERE / "corpus_runner.py"

# The notes' sections (the eleven lessons' headings) -> the scripts that teach them.
SECTIONS: dict[str, tuple[str, ...]] = {
    "Tensor Basics": ("01_tensor_basics.py", "22_device.py"),
    "Gradient Calculation": (
        "02_autograd.py",
        "03_gradient_descent_numpy.py",
        "04_gradient_descent_autograd.py",
        "33_while_and_control_flow.py",
    ),
    "Training Pipeline": (
        "05_training_pipeline.py",
        "06_linear_regression.py",
        "07_logistic_regression.py",
        "19_lr_scheduler.py",
        "20_matplotlib_plots.py",
        "29_dtype_mismatch.py",
    ),
    "Datasets and Dataloaders": (
        "08_wine_dataset.py",
        "28_index_error_in_getitem.py",
        "30_random_split_and_loaders.py",
        "34_wine_classifier.py",
        "35_read_data_file.py",
    ),
    "Transforms": ("09_custom_transforms.py", "10_torchvision_transforms.py"),
    "Softmax and Cross Entropy": ("11_softmax_cross_entropy.py",),
    "Activation Functions": (
        "12_activation_functions.py",
        "13_feed_forward_net.py",
        "27_shape_mismatch_in_forward.py",
    ),
    "Convoluted Neural Networks": ("14_convolution_and_pooling.py", "15_cnn.py"),
    "Transfer Learning": ("31_transfer_learning.py",),
    "Tensorboard": ("21_tensorboard.py",),
    "Saving and Loading Models": (
        "16_save_load_state_dict.py",
        "17_checkpoint.py",
        "18_save_whole_model_fails.py",
    ),
}

# Limits a plain run must stay well inside, so the sandbox's own limits (10,000 statements,
# 5 s) are never what a comparison hits.
MAX_PLAIN_SECONDS = 2.0
MAX_PLAIN_LINES = 8_000
# Wall time a sandbox run may take here (the default limit is 5 s).
SANDBOX_SECONDS = 30.0
# Plain matplotlib on Agg may say that show() cannot open a window; the sandbox keeps a PNG.
HARMLESS_WARNINGS = ("FigureCanvasAgg is non-interactive",)
# A memory address, as default object reprs print them.
ADDRESS = re.compile(r"0x[0-9a-f]{8,}")


def wine_csv_file(directory: Path) -> list[str]:
    """``--wine FILE`` with the sandbox's own wine.csv once lib_files has it; else the runner
    writes the same layout from scikit-learn itself."""
    from app.sandbox import lib_files

    wine_csv = getattr(lib_files, "wine_csv", None)
    if wine_csv is None:
        return []
    text = wine_csv()
    path = directory / "wine.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return ["--wine", str(path)]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every script's plain-Python result, from one subprocess."""
    directory = tmp_path_factory.mktemp("corpus")
    # Start the sandbox workers now, as the app would at start-up, so that they import torch
    # while the plain run does, not after it.
    warm_sandbox(Settings(data_dir=directory / "data", warm_lessons=False))
    out = directory / "plain.json"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    command = [sys.executable, str(RUNNER), "--out", str(out), *wine_csv_file(directory)]
    done = subprocess.run(
        [*command, *map(str, SCRIPTS)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results: dict[str, dict[str, Any]] = json.loads(out.read_text())
    return results


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """conftest's settings with more wall time per program: these tests compare output, and a
    loaded machine must not turn a comparison into a max_seconds failure (the plain runs above
    stay under MAX_PLAIN_SECONDS; bench/ measures speed)."""
    return Settings(
        data_dir=tmp_path / "data", warm_lessons=False, program_max_seconds=SANDBOX_SECONDS
    )


def sandbox_run(client: TestClient, code: str) -> dict[str, Any]:
    # steps "changes", as the pages ask: the same run and output as "full", a smaller answer.
    response = client.post("/api/tensors/run", json={"code": code, "steps": "changes"})
    assert response.status_code == 200, f"refused ({response.status_code}): {response.text[:2000]}"
    answer: dict[str, Any] = response.json()
    return answer


def printed(answer: dict[str, Any]) -> str:
    """All a program printed: each step's stdout, then what came after the last step."""
    return "".join(step["stdout"] for step in answer["steps"]) + answer.get("stdout_after", "")


def output_diff(expected: str, got: str) -> str:
    """A readable line diff, plain Python (expected) against the sandbox (got)."""
    lines = difflib.unified_diff(
        expected.splitlines(), got.splitlines(), "plain Python", "sandbox", lineterm="", n=2
    )
    return "\n".join(list(lines)[:60])


def first_mismatch(expected: str, got: str) -> str:
    want, have = expected.splitlines(), got.splitlines()
    for number, (line_want, line_have) in enumerate(zip(want, have, strict=False), start=1):
        if line_want != line_have:
            return f"output line {number}: expected {line_want!r}, got {line_have!r}"
    if len(want) != len(have):
        return f"expected {len(want)} output lines, got {len(have)}"
    return "no difference"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_script_runs_in_the_sandbox_as_in_plain_python(
    script: Path, plain: dict[str, dict[str, Any]], client: TestClient
) -> None:
    expected = plain[script.name]
    answer = sandbox_run(client, script.read_text())
    got = printed(answer)
    plain_error = expected["error"]
    error = answer["error"]
    if error is not None and plain_error is None:
        pytest.fail(
            f"the sandbox failed where plain Python did not: line {error['line']}: "
            f"{error['message']}\nprinted so far:\n{output_diff(expected['stdout'], got)}"
        )
    assert got == expected["stdout"], (
        f"{first_mismatch(expected['stdout'], got)}\n{output_diff(expected['stdout'], got)}"
    )
    if plain_error is None:
        return
    assert error is not None, f"plain Python failed, the sandbox did not: {plain_error}"
    want = f"{plain_error['type']}: {plain_error['message']}"
    assert (error["line"], error["message"]) == (plain_error["line"], want)


def test_plain_runs_are_small_fast_quiet_and_some_end_in_an_error(
    plain: dict[str, dict[str, Any]],
) -> None:
    for name, result in plain.items():
        assert result["seconds"] < MAX_PLAIN_SECONDS, (name, result["seconds"])
        assert result["lines"] <= MAX_PLAIN_LINES, (name, result["lines"])
        noisy = [w for w in result["warnings"] if not w.startswith(HARMLESS_WARNINGS)]
        assert not noisy, (name, noisy)  # the sandbox would print them
        assert not ADDRESS.search(result["stdout"]), name  # default reprs differ per run
        if result["error"] is not None:
            assert result["error"]["line"] is not None, (name, result["error"])
    failing = [name for name, result in plain.items() if result["error"] is not None]
    assert len(failing) >= 3, failing


def test_corpus_has_twenty_scripts_and_covers_every_section_of_the_notes() -> None:
    names = {path.name for path in SCRIPTS}
    assert len(names) >= 20
    sections = {lesson.section for lesson in LESSONS if lesson.parent is None}
    assert set(SECTIONS) == sections
    for section, scripts in SECTIONS.items():
        assert scripts, section
        assert set(scripts) <= names, (section, set(scripts) - names)
