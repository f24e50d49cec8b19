"""run_program: steps, values and the curriculum's Tensor Basics / Gradient Calculation examples."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from app.sandbox import SandboxLimits, run_program


def last_vars(result: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = result["steps"][-1]["variables"]
    return variables


def run_ok(code: str, limits: SandboxLimits | None = None) -> dict[str, Any]:
    result = run_program(code, limits)
    assert result["error"] is None, result["error"]
    json.dumps(result, allow_nan=False)  # always JSON, never NaN objects
    return result


# -- the contract's examples ---------------------------------------------------------------------


def test_view_4_by_minus_1_is_4x1_and_shares_storage() -> None:
    v = last_vars(run_ok("a = torch.ones(2, 2)\nb = a.view(4, -1)\n"))
    assert v["b"]["shape"] == [4, 1]
    assert v["a"]["storage"] == v["b"]["storage"]


def test_one_step_per_statement_with_line_source_and_all_variables() -> None:
    result = run_ok("import torch\nx = torch.tensor([1.0, 2.0])\ny = x * 2\nprint(y)\n")
    assert [s["line"] for s in result["steps"]] == [2, 3, 4]
    assert result["steps"][1]["source"] == "y = x * 2"
    assert set(result["steps"][0]["variables"]) == {"x"}
    assert set(result["steps"][2]["variables"]) == {"x", "y"}
    assert result["steps"][2]["stdout"] == "tensor([2., 4.])\n"
    assert result["steps"][1]["stdout"] == ""


def test_tensor_value_has_every_contract_field() -> None:
    x = last_vars(run_ok("x = torch.arange(6.0).view(2, 3)"))["x"]
    assert x == {
        "kind": "tensor",
        "shape": [2, 3],
        "dtype": "float32",
        "stride": [3, 1],
        "values": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
        "requires_grad": False,
        "is_leaf": True,
        "grad_fn": None,
        "grad": None,
        "storage": x["storage"],
        "version": 0,
    }


def test_loop_iterations_are_steps_of_their_own() -> None:
    result = run_ok("total = 0\nfor i in range(3):\n    total += i\n")
    lines = [s["line"] for s in result["steps"]]
    assert lines == [1, 2, 3, 2, 3, 2, 3]
    assert [s["variables"]["i"]["value"] for s in result["steps"][1::2]] == [0, 1, 2]
    assert result["steps"][-1]["variables"]["total"]["value"] == 3
    assert result["steps"][1]["source"] == "for i in range(3):"


# -- Tensor Basics --------------------------------------------------------------------------------


def test_tensor_basics_from_the_notes() -> None:
    code = """import torch
x = torch.empty(2, 3)
y = torch.ones(2, 2, dtype=torch.float64)
r = torch.rand(2, 2)
t = torch.tensor([2.5, 0.1])
y.add_(1)
col = r[:, 1]
cell = r[1, 1].item()
big = torch.ones(4, 4)
flat = big.view(16)
half = big.view(-1, 8)
"""
    v = last_vars(run_ok(code))
    assert v["x"]["shape"] == [2, 3]
    assert v["y"]["dtype"] == "float64" and v["y"]["values"] == [[2.0, 2.0], [2.0, 2.0]]
    assert v["y"]["version"] == 1  # add_ worked in place
    assert v["col"]["shape"] == [2] and v["col"]["storage"] == v["r"]["storage"]
    assert v["cell"] == {"kind": "number", "value": v["r"]["values"][1][1], "type": "float"}
    assert v["half"]["shape"] == [2, 8]
    assert v["flat"]["storage"] == v["big"]["storage"] == v["half"]["storage"]
    assert v["t"]["values"] == pytest.approx([2.5, 0.1])


def test_imports_of_the_pre_bound_modules_are_accepted_as_no_ops() -> None:
    code = "import torch\nimport numpy as np\nx = torch.ones(1)\nimport torch.nn as nn\n"
    code += "from torch import optim\nimport torch.nn.functional as F\ny = F.relu(x)\n"
    result = run_ok(code)
    assert [s["line"] for s in result["steps"]] == [3, 7]


def test_runs_are_seeded_so_random_numbers_replay() -> None:
    first = last_vars(run_ok("r = torch.rand(3)"))["r"]["values"]
    second = last_vars(run_ok("r = torch.rand(3)"))["r"]["values"]
    assert first == second
    seeded = last_vars(run_ok("torch.manual_seed(42)\nr = torch.rand(3)"))["r"]["values"]
    assert seeded != first


def test_view_shares_storage_and_clone_does_not() -> None:
    v = last_vars(run_ok("a = torch.zeros(4)\nb = a.view(2, 2)\nc = a.clone()\nb[0, 0] = 7\n"))
    assert v["a"]["storage"] == v["b"]["storage"] != v["c"]["storage"]
    assert v["a"]["values"][0] == 7.0
    assert v["c"]["values"][0] == 0.0


def test_numpy_shares_memory_so_in_place_add_shows_in_the_array_next_step() -> None:
    result = run_ok("a = torch.ones(5)\nb = a.numpy()\na.add_(1)\n")
    before, after = result["steps"][1]["variables"], result["steps"][2]["variables"]
    assert before["b"]["kind"] == "ndarray"
    assert before["b"]["values"] == [1.0] * 5
    assert after["b"]["values"] == [2.0] * 5
    assert after["a"]["storage"] == after["b"]["storage"]
    assert after["a"]["version"] == 1


def test_from_numpy_shares_memory_both_ways() -> None:
    code = "a = np.ones(3)\nb = torch.from_numpy(a)\na += 1\nb[0] = 10\nc = np.array([1.0, 2.0])\n"
    result = run_ok(code)
    assert result["steps"][2]["variables"]["b"]["values"] == [2.0, 2.0, 2.0]  # NumPy's write
    v = last_vars(result)
    assert v["a"]["storage"] == v["b"]["storage"] != v["c"]["storage"]
    assert v["b"]["values"] == [10.0, 2.0, 2.0]
    assert v["a"]["values"] == [10.0, 2.0, 2.0]
    assert v["a"]["dtype"] == "float64" and v["a"]["stride"] == [1]


def test_elementwise_multiplication_matches_numpy() -> None:
    v = last_vars(run_ok("x = torch.tensor([[1., 2.], [3., 4.]])\ny = x * x\nz = x @ x\n"))
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert v["y"]["values"] == (x * x).tolist()
    assert v["z"]["values"] == (x @ x).tolist()


def test_slicing_forms_learners_type() -> None:
    code = """x = torch.arange(24).view(2, 3, 4)
a = x[:, 1]
b = x[0, 1:3]
c = x[..., -1]
d = x[None, 0].shape
e = x[x > 20]
"""
    v = last_vars(run_ok(code))
    ref = np.arange(24).reshape(2, 3, 4)
    assert v["a"]["values"] == ref[:, 1].tolist()
    assert v["b"]["values"] == ref[0, 1:3].tolist()
    assert v["c"]["values"] == ref[..., -1].tolist()
    assert v["d"] == {"kind": "size", "value": [1, 3, 4]}
    assert v["e"]["values"] == [21, 22, 23]


def test_python_values_have_their_own_kinds() -> None:
    code = """n = 3
f = 2.5
b = True
s = 'hi'
nothing = None
pair = (1, 'a')
items = [1, [2, 3]]
d = {'lr': 0.1}
dt = torch.float32
size = torch.ones(2, 3).shape
"""
    v = last_vars(run_ok(code))
    assert v["n"] == {"kind": "number", "value": 3, "type": "int"}
    assert v["f"] == {"kind": "number", "value": 2.5, "type": "float"}
    assert v["b"] == {"kind": "bool", "value": True}
    assert v["s"]["kind"] == "str" and v["s"]["value"] == "hi"
    assert v["nothing"] == {"kind": "none"}
    assert v["pair"]["kind"] == "tuple" and v["pair"]["items"][1]["value"] == "a"
    assert v["items"]["items"][1]["kind"] == "list"
    assert v["d"]["items"][0]["key"]["value"] == "lr"
    assert v["dt"] == {"kind": "dtype", "value": "float32"}
    assert v["size"] == {"kind": "size", "value": [2, 3]}


def test_non_finite_numbers_are_json_strings() -> None:
    v = last_vars(run_ok("x = torch.log(torch.tensor([0.0, -1.0, 1.0]))\ny = float('inf')\n"))
    assert v["x"]["values"] == ["-inf", "nan", 0.0]
    assert v["y"]["value"] == "inf"


def test_big_tensors_are_shown_without_values() -> None:
    v = last_vars(run_ok("x = torch.ones(1000)\ny = torch.ones(400)\n"))
    assert v["x"]["values"] is None and v["x"]["shape"] == [1000]
    assert v["y"]["values"] == [1.0] * 400


def test_print_output_and_f_strings() -> None:
    code = """x = torch.tensor([1.5, 2.0])
print('sum', x.sum().item(), sep='=')
print(f"{x.mean():.3f} {x.shape} {len(x)} {[1, 2]!r}")
for i in range(2):
    print(i, end=' ')
"""
    result = run_ok(code)
    out = [s["stdout"] for s in result["steps"]]
    assert out[1] == "sum=3.5\n"
    assert out[2] == "1.750 torch.Size([2]) 2 [1, 2]\n"
    assert "".join(out[3:]) == "0 1 "


def test_while_break_continue_and_if() -> None:
    code = """n = 0
hits = []
while n < 10:
    n += 1
    if n % 2 == 0:
        continue
    elif n > 6:
        break
    else:
        hits.append(n)
"""
    v = last_vars(run_ok(code))
    assert [item["value"] for item in v["hits"]["items"]] == [1, 3, 5]
    assert v["n"]["value"] == 7


def test_builtins_learners_use() -> None:
    code = """a = [3, 1, 2]
b = (len(a), min(a), max(a), sum(a), abs(-2), round(2.567, 1), int(2.9), float(1))
c = list(zip(a, range(3)))
d = sorted(a)
e, f = torch.tensor([1.0, 2.0])
"""
    v = last_vars(run_ok(code))
    assert [i["value"] for i in v["b"]["items"]] == [3, 1, 3, 6, 2, 2.6, 2, 1.0]
    assert v["c"]["items"][0]["kind"] == "tuple"
    assert [i["value"] for i in v["d"]["items"]] == [1, 2, 3]
    assert v["f"]["values"] == 2.0


# -- runtime errors are results, not refusals -----------------------------------------------------


def test_shape_mismatch_reports_line_and_pytorch_message_keeping_earlier_steps() -> None:
    result = run_program("a = torch.ones(2)\nb = torch.ones(3)\nc = a + b\nd = 1\n")
    assert result["error"]["line"] == 3
    assert (
        "The size of tensor a (2) must match the size of tensor b (3)"
        in (result["error"]["message"])
    )
    assert [s["line"] for s in result["steps"]] == [1, 2]


def test_syntax_error_is_an_error_result() -> None:
    result = run_program("x = 1\ny = (\n")
    assert result["steps"] == []
    assert result["error"]["message"].startswith("SyntaxError")


def test_error_inside_a_loop_names_the_inner_line() -> None:
    result = run_program("x = torch.ones(2)\nfor i in range(3):\n    y = x[i]\n")
    assert result["error"]["line"] == 3
    assert "IndexError" in result["error"]["message"]


# -- Gradient Calculation -------------------------------------------------------------------------


def test_y_equals_x_plus_2_has_add_backward() -> None:
    v = last_vars(run_ok("x = torch.randn(3, requires_grad=True)\ny = x + 2\nz = y * y * 2\n"))
    assert v["y"]["grad_fn"] == "AddBackward0"
    assert v["z"]["grad_fn"] == "MulBackward0"
    assert v["x"]["is_leaf"] and not v["y"]["is_leaf"]


def test_mean_backward_matches_the_chain_rule() -> None:
    code = """x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
y = x + 2
z = y * y * 2
z = z.mean()
z.backward()
"""
    v = last_vars(run_ok(code))
    x = np.array([0.5, -1.0, 2.0])
    assert v["z"]["grad_fn"] == "MeanBackward0"
    assert v["x"]["grad"] == pytest.approx((4 * (x + 2) / 3).tolist())


def test_backward_twice_accumulates_and_zero_resets() -> None:
    code = """w = torch.ones(4, requires_grad=True)
for epoch in range(2):
    out = (w * 3).sum()
    out.backward()
w.grad.zero_()
"""
    steps = run_ok(code)["steps"]
    grads = [s["variables"]["w"]["grad"] for s in steps if s["source"] == "out.backward()"]
    assert grads == [[3.0] * 4, [6.0] * 4]
    assert steps[-1]["variables"]["w"]["grad"] == [0.0] * 4


def test_grad_can_be_set_to_none() -> None:
    code = "w = torch.ones(2, requires_grad=True)\n(w * 2).sum().backward()\nw.grad = None\n"
    assert last_vars(run_ok(code))["w"]["grad"] is None


def test_no_grad_builds_no_graph() -> None:
    code = """x = torch.ones(2, requires_grad=True)
with torch.no_grad():
    y = x * 2
z = x * 2
"""
    v = last_vars(run_ok(code))
    assert v["y"]["grad_fn"] is None and v["y"]["requires_grad"] is False
    assert v["z"]["grad_fn"] == "MulBackward0"


def test_backward_twice_through_a_freed_graph_reports_pytorchs_message() -> None:
    code = "x = torch.ones(2, requires_grad=True)\ny = (x * x).sum()\ny.backward()\ny.backward()\n"
    result = run_program(code)
    assert result["error"]["line"] == 4
    assert "Trying to backward through the graph a second time" in result["error"]["message"]
    assert len(result["steps"]) == 3


def test_in_place_change_of_a_saved_tensor_reports_pytorchs_message() -> None:
    code = """a = torch.ones(3, requires_grad=True)
b = a * 2
c = b * b
with torch.no_grad():
    b.add_(1)
c.sum().backward()
"""
    result = run_program(code)
    assert "modified by an inplace operation" in result["error"]["message"]


def test_manual_gradient_descent_converges() -> None:
    code = """X = torch.tensor([1, 2, 3, 4], dtype=torch.float32)
Y = torch.tensor([2, 4, 6, 8], dtype=torch.float32)
w = torch.tensor(0.0, dtype=torch.float32, requires_grad=True)
lr = 0.01
for epoch in range(40):
    y_pred = w * X
    l = ((y_pred - Y) ** 2).mean()
    l.backward()
    with torch.no_grad():
        w -= lr * w.grad
    w.grad.zero_()
"""
    result = run_ok(code)
    losses = [
        s["variables"]["l"]["values"] for s in result["steps"] if s["source"].startswith("l =")
    ]
    assert len(losses) == 40
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert last_vars(result)["w"]["values"] == pytest.approx(2.0, abs=0.01)


def test_nn_linear_training_with_sgd_converges() -> None:
    code = """import torch.nn as nn
X = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
Y = torch.tensor([[2.0], [4.0], [6.0], [8.0]])
model = nn.Linear(1, 1)
loss = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for epoch in range(200):
    l = loss(model(X), Y)
    l.backward()
    optimizer.step()
    optimizer.zero_grad()
prediction = model(torch.tensor([5.0])).item()
"""
    v = last_vars(run_ok(code))
    assert v["prediction"]["value"] == pytest.approx(10.0, abs=0.1)
    assert v["model"]["kind"] == "module"
    assert v["model"]["parameters"]["weight"]["shape"] == [1, 1]


# -- recording limits ------------------------------------------------------------------------------


def test_steps_past_the_recording_limit_are_dropped_with_a_notice() -> None:
    result = run_ok(
        "t = 0\nfor i in range(500):\n    t += i\n", SandboxLimits(max_steps_recorded=50)
    )
    assert len(result["steps"]) == 50
    assert result["truncated"] is True
    assert "max_steps_recorded" in result["notices"][0]
    assert result["statements"] == 502  # the program still ran to the end


def test_print_output_past_its_limit_is_dropped_with_a_notice() -> None:
    limits = SandboxLimits(max_stdout_chars=100)
    result = run_ok("for i in range(50):\n    print('0123456789')\n", limits)
    assert sum(len(s["stdout"]) for s in result["steps"]) == 100
    assert "max_stdout_chars" in result["notices"][0]


# -- what changed, and the byte budget (issue 11) -------------------------------------------------

# s = 'x' * 2000, then 240 names for it, then 880 empty loop iterations: 2 KB of code that used
# to answer 929 MB of JSON (every step repeated every variable).
REPEATED_STRING = (
    "s = 'x' * 2000\n"
    + "".join(f"v{i} = s\n" for i in range(240))
    + "for i in range(880):\n    pass\n"
)

CHANGING_PROGRAMS = [
    "a = 1\nb = torch.ones(2)\ndel a\nc = b.view(2, 1)\na = 'back'\nb.add_(1)\ndel b, c\n",
    "t = torch.zeros(3)\nfor i in range(3):\n    t[i] = i\n    u = t * 2\n    del u\n",
    "x = torch.ones(3)\nn = x.numpy()\nx.add_(1)\nm = np.zeros(2)\ny = torch.from_numpy(m)\n"
    "m += 5\nl = [x, n]\nl.append(3)\nd = {'k': l}\n",
    "w = torch.tensor([1., 2.], requires_grad=True)\nloss = (w * w).sum()\nloss.backward()\n"
    "with torch.no_grad():\n    w -= 0.1 * w.grad\nw.grad.zero_()\n",
    "s = 'ab'\nt = s\ns = s + 'c'\ntup = (1, 2, s)\ntup2 = tup\ni = 0\nwhile i < 3:\n    i += 1\n",
]


def rebuilt(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every variable after each step of a "changes" trace: removed, then changes, each step."""
    variables: dict[str, Any] = {}
    states = []
    for step in steps:
        assert step["variables"] == {}
        for name in step["removed"]:
            del variables[name]
        variables.update(step["changes"])
        states.append(dict(variables))
    return states


def programs_to_compare() -> list[str]:
    from app.lessons.tensors import EXAMPLES

    return [example.code for example in EXAMPLES.values()] + CHANGING_PROGRAMS


@pytest.mark.parametrize("code", programs_to_compare())
def test_changes_rebuilt_step_by_step_are_the_full_steps_in_the_same_order(code: str) -> None:
    full = run_program(code)
    changes = run_program(code, steps="changes")
    assert changes["steps_format"] == "changes" and full["steps_format"] == "full"
    assert [s["line"] for s in changes["steps"]] == [s["line"] for s in full["steps"]]
    assert [s["stdout"] for s in changes["steps"]] == [s["stdout"] for s in full["steps"]]
    states = rebuilt(changes["steps"])
    expected = [s["variables"] for s in full["steps"]]
    assert states == expected
    assert [list(s) for s in states] == [list(s) for s in expected]  # the order too
    assert "changes" not in full["steps"][0] and "removed" not in full["steps"][0]
    from app.sandbox.interpreter import run_answer

    for steps in ("full", "changes"):  # the size counted while recording is the answer's
        answer = run_answer(code, SandboxLimits(), steps)  # type: ignore[arg-type]
        assert len(answer.as_json()) == answer.size()


def test_a_step_records_only_what_it_changed() -> None:
    steps = run_program(CHANGING_PROGRAMS[0], steps="changes")["steps"]
    # c is a view of b: b.add_(1) changes c's values (and version) too.
    assert [list(s["changes"]) for s in steps] == [
        ["a"], ["b"], [], ["c"], ["a"], ["b", "c"], []
    ]  # fmt: skip
    assert [s["removed"] for s in steps] == [[], [], ["a"], [], [], [], ["b", "c"]]


def test_the_answer_is_exactly_as_long_as_its_size_and_never_over_the_budget() -> None:
    from app.sandbox.interpreter import run_answer

    for budget in (16 * 1024, 40_000, 256 * 1024, 8 * 1024 * 1024):
        for steps in ("full", "changes"):
            limits = SandboxLimits(max_answer_bytes=budget)
            answer = run_answer(REPEATED_STRING + "print('done')\n1 / 0\n", limits, steps)
            body = answer.as_json()
            assert len(body) == answer.size() <= budget, (budget, steps)
            as_dict = answer.as_dict()
            assert json.loads(body) == as_dict
            assert as_dict["error"]["line"] == 245  # the program ran to its last line


def test_recording_stops_at_the_byte_budget_with_a_notice_and_the_program_runs_on() -> None:
    limits = SandboxLimits(max_answer_bytes=256 * 1024)
    code = REPEATED_STRING + "print('done', len(v239))\nz = torch.ones(2) @ torch.ones(3)\n"
    result = run_program(code, limits)
    assert result["truncated"] is True
    notice = next(n for n in result["notices"] if "max_answer_bytes" in n)
    assert str(256 * 1024) in notice and "ran to the end" in notice
    # Each full step repeats every string: 2 KB, 4 KB, ... so about sqrt(2 * 240 K / 2 K) steps.
    assert 10 <= len(result["steps"]) <= 20
    assert result["stdout_after"] == "done 2000\n"  # printed after the last recorded step
    assert result["error"]["line"] == 245
    assert "inconsistent tensor size" in result["error"]["message"]  # PyTorch's own message
    assert result["statements"] == 1 + 240 + 1 + 880 + 2  # every statement ran


def test_changes_record_the_repeated_string_program_in_a_fraction_of_full() -> None:
    full = run_program(REPEATED_STRING)
    changes = run_program(REPEATED_STRING, steps="changes")
    # Recording stopped early in both: an answer also carries the variables the program ended
    # with ("final") when they fit in what its budget has left; the steps are what is compared.
    assert changes["final"]["i"]["value"] == 879 and len(changes["final"]) == 242
    assert "final" not in full  # 8 MB of full steps leave no room for 242 strings of 2,000
    assert any("final variables did not fit" in notice for notice in full["notices"])
    full_bytes = len(json.dumps({k: v for k, v in full.items() if k != "final"}))
    changes_bytes = len(json.dumps({k: v for k, v in changes.items() if k != "final"}))
    assert full_bytes <= 8 * 1024 * 1024 < 929 * 1000**2
    assert len(full["steps"]) < 100 < len(changes["steps"]) == 2000  # max_steps_recorded
    assert changes_bytes < full_bytes / 8
    last = rebuilt(changes["steps"])[-1]
    assert len(last) == 242 and last["v239"]["value"] == "x" * 2000  # s, v0..v239, i


def test_a_long_string_counts_each_character_in_max_recorded_numbers() -> None:
    limits = SandboxLimits(max_recorded_numbers=5_000)
    result = run_program("a = 'x' * 2000\nb = a + 'y'\nc = b + 'z'\nd = 1\n", limits)
    assert len(result["steps"]) == 2 and result["truncated"] is True  # 2001 + 2002 + 2003
    assert "max_recorded_numbers" in result["notices"][0]
    # The same string object again (under any name) is not serialized again: no more values.
    same = run_program("a = 'x' * 2000\nb = a\nc = a\nd = a\n", limits)
    assert len(same["steps"]) == 4 and same["truncated"] is False


def test_recording_stops_at_half_the_time_limit_and_the_program_still_ends() -> None:
    # Recording that costs far more than the program's own work: five big lists, each changed
    # (so walked again) at every step, for 5,000 iterations of two cheap statements.
    limits = SandboxLimits(max_seconds=2.0, max_statements=100_000, max_loop_iterations=100_000)
    code = (
        "".join(f"rows{j} = [[float(i), 2.0] for i in range(700)]\n" for j in range(5))
        + "total = 0\n"
        "for k in range(5000):\n"
        "    rows0[k % 700][0] = rows1[k % 700][0] = rows2[k % 700][0] = float(k)\n"
        "    total = total + 1\n"
        "print(total)\n"
    )
    started = time.monotonic()
    result = run_program(code, limits, steps="changes")
    assert time.monotonic() - started < 2.0 + 1.0
    assert result["error"] is None and result["truncated"] is True
    notice = next(n for n in result["notices"] if "max_seconds" in n)
    assert "at half of the program's time limit of 2 s" in notice, result["notices"]
    assert 0 < len(result["steps"]) < 2000
    assert result["stdout_after"] == "5000\n"  # it ran to its end, unrecorded
    assert result["final"]["total"]["value"] == 5000
