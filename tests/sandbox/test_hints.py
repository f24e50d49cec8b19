"""Plain-words hints beside PyTorch's own error messages, and the CrossEntropyLoss notice.

Each case runs a beginner's program through ``run_program`` and checks three things against an
independent source: the message is exactly what plain PyTorch (or NumPy) raises for the same
operation, the line is the failing one, and the hint names the program's own shapes and values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from torch import nn

from app.sandbox import run_program
from app.sandbox.hints import hint_for


@dataclass(frozen=True)
class Case:
    code: str
    line: int
    plain: Callable[[], Any]  # the same mistake in plain PyTorch: raises the oracle's message
    needles: tuple[str, ...]  # what the hint must name


def plain_message(plain: Callable[[], Any]) -> str:
    """The message plain PyTorch gives, as ``Type: text``, as the sandbox shows errors."""
    with pytest.raises(Exception) as info:  # noqa: B017 - the oracle is whatever it raises
        plain()
    return f"{type(info.value).__name__}: {info.value}"


def _backward_twice() -> None:
    w = torch.ones(3, requires_grad=True)
    loss = (w * torch.arange(3.0)).sum()
    loss.backward()
    loss.backward()


def _modified_in_place() -> None:
    x = torch.ones(3, 4, requires_grad=True)
    y = torch.relu(x)
    y += 1
    (y * y).sum().backward()


def _leaf_update() -> None:
    w = torch.ones(3, requires_grad=True)
    (w * 2).sum().backward()
    assert w.grad is not None
    w -= 0.1 * w.grad


def _leaf_setitem() -> None:
    w = torch.ones(3, requires_grad=True)
    w[0] = 5.0


def _no_grad_backward() -> None:
    x = torch.ones(3, requires_grad=True)
    with torch.no_grad():
        y = (x * 2).sum()
    y.backward()


CONV_NET = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(100, 10))

CASES: dict[str, Case] = {
    "linear_in_features": Case(
        "layer = nn.Linear(2, 5)\nx = torch.ones(4, 3)\ny = layer(x)\n",
        3,
        lambda: nn.Linear(2, 5)(torch.ones(4, 3)),
        (
            "4x3",
            "2x5",
            "the 3 columns of the first",
            "the 2 rows of the second",
            "in_features",
            "nn.Linear(3, 5)",
        ),
    ),
    "matmul_shapes": Case(
        "a = torch.ones(4, 3)\nb = torch.ones(2, 5)\nc = a @ b\n",
        3,
        lambda: torch.ones(4, 3) @ torch.ones(2, 5),
        ("4x3", "2x5", "the 3 columns of the first", "the 2 rows of the second"),
    ),
    # 8x8 pictures through a 3x3 conv are 6x6 with 4 channels: 4 * 6 * 6 = 144 features.
    "linear_after_conv_flatten": Case(
        "model = nn.Sequential(\n"
        "    nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(100, 10)\n"
        ")\n"
        "x = torch.ones(2, 1, 8, 8)\n"
        "y = model(x)\n",
        5,
        lambda: CONV_NET(torch.ones(2, 1, 8, 8)),
        ("2x144", "100x10", f"nn.Linear({4 * 6 * 6}, 10)", "channels x height x width"),
    ),
    "broadcast": Case(
        "a = torch.ones(2, 3)\nb = torch.ones(2, 4)\nc = a + b\n",
        3,
        lambda: torch.ones(2, 3) + torch.ones(2, 4),
        ("dimension 1", "size 3", "size 4", "equal or one of them 1"),
    ),
    "numpy_broadcast": Case(
        "a = np.ones((2, 3))\nb = np.ones((2, 4))\nc = a + b\n",
        3,
        lambda: np.ones((2, 3)) + np.ones((2, 4)),
        ("(2, 3) and (2, 4)", "3 and 4 are neither"),
    ),
    "conv_in_channels": Case(
        "conv = nn.Conv2d(1, 4, 3)\nx = torch.ones(1, 3, 8, 8)\ny = conv(x)\n",
        3,
        lambda: nn.Conv2d(1, 4, 3)(torch.ones(1, 3, 8, 8)),
        ("[4, 1, 3, 3]", "[1, 3, 8, 8]", "1 channel,", "has 3", "nn.Conv2d(3, ...)"),
    ),
    "conv_channels_last": Case(
        "conv = nn.Conv2d(1, 4, 3)\nx = torch.ones(2, 28, 28, 1)\ny = conv(x)\n",
        3,
        lambda: nn.Conv2d(1, 4, 3)(torch.ones(2, 28, 28, 1)),
        ("[2, 28, 28, 1]", "has 28", "x.permute(0, 3, 1, 2)"),
    ),
    "conv_without_batch_and_channel": Case(
        "conv = nn.Conv2d(1, 4, 3)\nx = torch.ones(8, 8)\ny = conv(x)\n",
        3,
        lambda: nn.Conv2d(1, 4, 3)(torch.ones(8, 8)),
        ("[8, 8]", "2 dimensions", "x.view(1, 1, 8, 8)"),
    ),
    "backward_twice": Case(
        "w = torch.ones(3, requires_grad=True)\n"
        "loss = (w * torch.arange(3.0)).sum()\n"
        "for epoch in range(2):\n"
        "    loss.backward()\n",
        4,
        _backward_twice,
        ("retain_graph=True", "recompute the forward pass", "each iteration"),
    ),
    "backward_without_graph": Case(
        "x = torch.ones(3, requires_grad=True)\n"
        "with torch.no_grad():\n"
        "    y = (x * 2).sum()\n"
        "y.backward()\n",
        4,
        _no_grad_backward,
        ("requires_grad=True", "torch.no_grad()", ".detach()"),
    ),
    "backward_of_a_vector": Case(
        "x = torch.ones(3, requires_grad=True)\ny = x * 2\ny.backward()\n",
        3,
        lambda: (torch.ones(3, requires_grad=True) * 2).backward(),
        ("shape [3]", ".sum()", ".mean()", "gradient="),
    ),
    "leaf_updated_in_place": Case(
        "w = torch.ones(3, requires_grad=True)\n(w * 2).sum().backward()\nw -= 0.1 * w.grad\n",
        3,
        _leaf_update,
        ("leaf tensor that requires grad", "with torch.no_grad():", "step()"),
    ),
    "leaf_item_assigned": Case(
        "w = torch.ones(3, requires_grad=True)\nw[0] = 5.0\n",
        2,
        _leaf_setitem,
        ("w[0] = ...", "with torch.no_grad():"),
    ),
    "saved_tensor_modified_in_place": Case(
        "x = torch.ones(3, 4, requires_grad=True)\n"
        "y = torch.relu(x)\n"
        "y += 1\n"
        "(y * y).sum().backward()\n",
        4,
        _modified_in_place,
        ("a [3, 4] tensor", "output of Relu", "version 1", "version 0", "y = y + 1", ".clone()"),
    ),
    "cross_entropy_float_targets": Case(
        "loss_fn = nn.CrossEntropyLoss()\n"
        "scores = torch.ones(4, 3)\n"
        "targets = torch.tensor([0.0, 1.0, 2.0, 1.0])\n"
        "loss = loss_fn(scores, targets)\n",
        4,
        lambda: nn.CrossEntropyLoss()(torch.ones(4, 3), torch.tensor([0.0, 1.0, 2.0, 1.0])),
        ("class indices", "torch.long", "Float (torch.float32)", "targets.long()"),
    ),
    "cross_entropy_column_targets": Case(
        "scores = torch.ones(4, 3)\n"
        "targets = torch.tensor([[0], [1], [2], [1]])\n"
        "loss = F.cross_entropy(scores, targets)\n",
        3,
        lambda: F.cross_entropy(torch.ones(4, 3), torch.tensor([[0], [1], [2], [1]])),
        ("shape (N,)", "target.squeeze(1)"),
    ),
    "cross_entropy_batch_sizes": Case(
        "scores = torch.ones(3, 4)\nloss = F.cross_entropy(scores, torch.tensor([0, 1]))\n",
        2,
        lambda: F.cross_entropy(torch.ones(3, 4), torch.tensor([0, 1])),
        ("3 samples", "target has 2"),
    ),
    "bce_long_targets": Case(
        "p = torch.full((4,), 0.5)\nt = torch.tensor([0, 1, 1, 0])\nloss = nn.BCELoss()(p, t)\n",
        3,
        lambda: nn.BCELoss()(torch.full((4,), 0.5), torch.tensor([0, 1, 1, 0])),
        ("Float (torch.float32)", "Long (torch.int64)", "target.float()"),
    ),
    "linear_on_integers": Case(
        "layer = nn.Linear(2, 1)\nx = torch.tensor([[1, 2]])\ny = layer(x)\n",
        3,
        lambda: nn.Linear(2, 1)(torch.tensor([[1, 2]])),
        ("Long (torch.int64)", "Float (torch.float32)", "x.float()"),
    ),
    "linear_on_a_float64_array": Case(
        "layer = nn.Linear(2, 1)\nx = torch.from_numpy(np.ones((3, 2)))\ny = layer(x)\n",
        3,
        lambda: nn.Linear(2, 1)(torch.from_numpy(np.ones((3, 2)))),
        ("Double (torch.float64)", "torch.from_numpy", "x.float()"),
    ),
    "matmul_mixed_dtypes": Case(
        "a = torch.ones(2, 2, dtype=torch.long)\nb = torch.ones(2, 2)\nc = a @ b\n",
        3,
        lambda: torch.ones(2, 2, dtype=torch.long) @ torch.ones(2, 2),
        ("Long (torch.int64)", "Float (torch.float32)", ".float()"),
    ),
    "batched_matmul_mixed_dtypes": Case(
        "a = torch.ones(1, 2, 2)\nb = torch.ones(1, 2, 2, dtype=torch.long)\nc = a @ b\n",
        3,
        lambda: torch.ones(1, 2, 2) @ torch.ones(1, 2, 2, dtype=torch.long),
        ("Float (torch.float32)", "Long (torch.int64)", "CrossEntropyLoss wants class indices"),
    ),
    "target_out_of_bounds": Case(
        "model = nn.Linear(4, 3)\n"
        "x = torch.ones(2, 4)\n"
        "loss = nn.CrossEntropyLoss()(model(x), torch.tensor([0, 5]))\n",
        3,
        lambda: nn.CrossEntropyLoss()(nn.Linear(4, 3)(torch.ones(2, 4)), torch.tensor([0, 5])),
        ("Target 5", "3 classes", "0 to 2", "out_features", "subtract 1"),
    ),
    "index_past_the_end": Case(
        "x = torch.ones(3, 4)\nrow = x[5]\n",
        2,
        lambda: torch.ones(3, 4)[5],
        ("Dimension 0 has size 3", "0 to 2", "5 is outside"),
    ),
    "dim_out_of_range": Case(
        "x = torch.ones(3, 4)\ns = x.sum(dim=2)\n",
        2,
        lambda: torch.ones(3, 4).sum(dim=2),
        ("2 dimensions", "0 to 1", "dimension 2 does not exist"),
    ),
    "numpy_of_a_tensor_that_requires_grad": Case(
        "w = torch.ones(3, requires_grad=True)\nn = (w * 2).numpy()\n",
        2,
        lambda: (torch.ones(3, requires_grad=True) * 2).numpy(),
        (".detach().numpy()",),
    ),
    "view_of_the_wrong_size": Case(
        "x = torch.ones(2, 3)\ny = x.view(4, 2)\n",
        2,
        lambda: torch.ones(2, 3).view(4, 2),
        ("[4, 2]", "4 x 2 = 8", "has 6", "-1"),
    ),
    "requires_grad_on_integers": Case(
        "x = torch.tensor([1, 2], requires_grad=True)\n",
        1,
        lambda: torch.tensor([1, 2], requires_grad=True),
        ("torch.int64", "dtype=torch.float32"),
    ),
    "mean_of_integers": Case(
        "x = torch.tensor([1, 2])\nm = x.mean()\n",
        2,
        lambda: torch.tensor([1, 2]).mean(),
        ("Long (torch.int64)", "x.float().mean()"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_error_keeps_pytorchs_message_and_line_and_its_hint_names_the_values(
    name: str,
) -> None:
    case = CASES[name]
    error = run_program(case.code)["error"]
    assert error is not None
    assert error["message"] == plain_message(case.plain)
    assert error["line"] == case.line
    hint = error["hint"]
    missing = [needle for needle in case.needles if needle not in hint]
    assert not missing, (missing, hint)


def test_a_hint_inside_a_function_keeps_the_failing_line_and_the_traceback() -> None:
    code = (
        "def predict(x):\n"
        "    layer = nn.Linear(2, 5)\n"
        "    return layer(x)\n"
        "\n"
        "y = predict(torch.ones(4, 3))\n"
    )
    error = run_program(code)["error"]
    assert error["line"] == 3 and error["traceback"] == [5, 3]
    assert "nn.Linear(3, 5)" in error["hint"]


def test_a_learner_module_forward_gets_the_linear_hint() -> None:
    code = (
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(100, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.view(x.shape[0], -1))\n"
        "\n"
        "out = Net()(torch.ones(2, 4, 6, 6))\n"
    )
    error = run_program(code)["error"]
    assert error["line"] == 6
    assert "2x144" in error["hint"] and "nn.Linear(144, 10)" in error["hint"]


def test_an_error_without_a_hint_has_no_hint_field() -> None:
    error = run_program("x = 1\ny = x / 0\n")["error"]
    assert error["line"] == 2 and error["message"] == "ZeroDivisionError: division by zero"
    assert "hint" not in error


def test_numpy_object_arrays_get_the_hint_from_pytorchs_own_exception() -> None:
    """The sandbox refuses object arrays before torch sees them, so this hint is checked on the
    exception torch.from_numpy raises for one in plain PyTorch."""
    with pytest.raises(TypeError) as info:
        torch.from_numpy(np.array([1.0, "a"], dtype=object))
    message = f"TypeError: {info.value}"
    assert "can't convert np.ndarray of type numpy.object_" in message
    hint = hint_for(info.value, message)
    assert hint is not None and "astype(np.float32)" in hint


# -- CrossEntropyLoss given probabilities: a notice, since PyTorch raises nothing -------------

PROBABILITY_NOTICE = (
    "was given probabilities (each row sums to 1): it applies log_softmax itself, so pass the "
    "raw scores (logits), not softmax's output"
)


def probability_notices(result: dict[str, Any]) -> list[str]:
    return [n for n in result["notices"] if "was given probabilities" in n]


def test_softmax_output_to_cross_entropy_is_noticed_once_at_its_line() -> None:
    code = (
        "torch.manual_seed(0)\n"
        "scores = torch.randn(4, 3)\n"
        "targets = torch.tensor([0, 1, 2, 1])\n"
        "probs = torch.softmax(scores, dim=1)\n"
        "loss_fn = nn.CrossEntropyLoss()\n"
        "for epoch in range(3):\n"
        "    loss = loss_fn(probs, targets)\n"
        "again = F.cross_entropy(probs, targets)\n"
    )
    result = run_program(code)
    assert result["error"] is None
    assert probability_notices(result) == [f"line 7: nn.CrossEntropyLoss {PROBABILITY_NOTICE}"]
    # The notice changes nothing: the loss is plain PyTorch's on the same probabilities.
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(4, 3), dim=1)
    expected = F.cross_entropy(probs, torch.tensor([0, 1, 2, 1])).item()
    loss = result["steps"][-1]["variables"]["loss"]["values"]
    assert loss == pytest.approx(expected, rel=1e-6)


def test_softmax_output_to_f_cross_entropy_is_noticed() -> None:
    code = (
        "scores = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])\n"
        "loss = F.cross_entropy(F.softmax(scores, dim=1), torch.tensor([0, 2]))\n"
    )
    assert probability_notices(run_program(code)) == [
        f"line 2: F.cross_entropy {PROBABILITY_NOTICE}"
    ]


@pytest.mark.parametrize(
    "scores",
    [
        "torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])",  # logits
        "torch.sigmoid(torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]]))",  # in [0, 1], sums not 1
        "torch.tensor([[1.0], [1.0]])",  # one class: rows sum to 1 trivially
    ],
)
def test_scores_that_are_not_probabilities_get_no_notice(scores: str) -> None:
    code = f"loss = nn.CrossEntropyLoss()({scores}, torch.tensor([0, 0]))\n"
    result = run_program(code)
    assert result["error"] is None and probability_notices(result) == []


# -- through HTTP ------------------------------------------------------------------------------


def test_post_run_returns_the_hint_beside_pytorchs_message(client: TestClient) -> None:
    code = "layer = nn.Linear(2, 5)\nx = torch.ones(4, 3)\ny = layer(x)\n"
    r = client.post("/api/tensors/run", json={"code": code})
    assert r.status_code == 200
    error = r.json()["error"]
    assert error["line"] == 3
    assert error["message"] == plain_message(lambda: nn.Linear(2, 5)(torch.ones(4, 3)))
    assert "4x3" in error["hint"] and "2x5" in error["hint"]
    assert "nn.Linear(3, 5)" in error["hint"]
