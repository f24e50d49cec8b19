"""What a step shows as Python Tutor does (issue 14): each running call's variables as
``name@depth``, one object under two names, a module's layers, an optimizer's groups, and a run
stopped at a step. The independent check is plain PyTorch and Python running the same code."""

from __future__ import annotations

import torch
import torch.nn as nn

from app.sandbox import SandboxLimits, run_program
from app.sandbox.interpreter import execute, session

NESTED = """\
def inner(a):
    b = a * 10
    return b

def outer(n):
    m = n + 1
    r = inner(m)
    return r

n = 5
result = outer(2)
"""


def test_every_running_call_keeps_its_own_variables_as_name_at_depth() -> None:
    steps = run_program(NESTED)["steps"]
    deepest = next(s for s in steps if s["line"] == 2)  # b = a * 10, inside outer -> inner
    assert [f["function"] for f in deepest["stack"]] == ["<module>", "outer", "inner"]
    assert [f["line"] for f in deepest["stack"]] == [11, 7, 2]
    v = deepest["variables"]
    # The module's n (5) and outer's n (2) are both shown: no frame hides another.
    assert v["n"]["value"] == 5 and v["n@1"]["value"] == 2
    assert v["m@1"]["value"] == 3 and v["a@2"]["value"] == 3 and v["b@2"]["value"] == 30
    assert "r@1" not in v  # outer has not bound r yet
    after = steps[-1]  # result = outer(2), back at the top level
    assert "stack" not in after and not any("@" in name for name in after["variables"])
    assert after["variables"]["result"]["value"] == 30


def test_two_names_for_one_object_share_its_ref_and_a_copy_does_not() -> None:
    code = """\
class Box:
    def __init__(self, v):
        self.v = v
        self.items = [v]

a = Box(1)
b = a
c = Box(1)
same = [1, 2]
alias = same
"""
    v = run_program(code)["steps"][-1]["variables"]
    assert v["a"]["kind"] == "object" and v["a"]["class"] == "Box"
    assert v["a"]["ref"] == v["b"]["ref"] != v["c"]["ref"]
    assert v["same"]["ref"] == v["alias"]["ref"]
    assert v["a"]["attributes"]["v"] == {"kind": "number", "value": 1, "type": "int"}
    assert v["a"]["attributes"]["items"]["kind"] == "list"


def test_a_module_shows_its_layer_tree_with_counts_and_requires_grad() -> None:
    code = """\
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(36, 10)
        self.scale = 2
net = Net()
net.conv.weight.requires_grad_(False)
"""
    value = run_program(code)["steps"][-1]["variables"]["net"]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(36, 10)

    reference = Net()
    assert value["class"] == "Net" and value["training"] is True
    assert value["parameter_count"] == sum(p.numel() for p in reference.parameters())
    layers = {layer["name"]: layer for layer in value["layers"]}
    assert layers["conv"]["type"] == "Conv2d" and layers["fc"]["type"] == "Linear"
    assert layers["conv"]["parameters"] == 4 * 1 * 3 * 3 + 4
    assert layers["fc"]["parameters"] == 36 * 10 + 10
    assert layers["conv"]["requires_grad"] is False and layers["fc"]["requires_grad"] is True
    assert value["attributes"] == {"scale": {"kind": "number", "value": 2, "type": "int"}}


def test_an_optimizer_shows_its_groups_and_the_state_it_keeps() -> None:
    code = """\
import torch
w = torch.ones(3, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
opt = torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
before = opt
(w.sum() + b.sum()).backward()
opt.step()
"""
    steps = run_program(code)["steps"]
    first = steps[3]["variables"]["opt"]
    last = steps[-1]["variables"]["opt"]
    assert first["kind"] == "optimizer" and first["class"] == "SGD"
    assert [g["parameters"] for g in last["groups"]] == [1, 1]
    assert [g["elements"] for g in last["groups"]] == [3, 1]
    assert [g["settings"]["lr"] for g in last["groups"]] == [0.1, 0.5]
    assert last["groups"][0]["settings"]["momentum"] == 0.9
    assert first["state"] == {"parameters": 0, "keys": []}
    assert last["state"] == {"parameters": 2, "keys": ["momentum_buffer"]}
    assert steps[-1]["variables"]["before"]["ref"] == last["ref"]


def test_a_run_stopped_at_a_step_keeps_what_that_step_showed() -> None:
    with session() as caught:
        result = execute(NESTED, SandboxLimits(), record=False, caught=caught, stop_after=4)
    # Steps: 1 def inner, 2 def outer, 3 n = 5, 4 m = n + 1 (inside outer).
    assert result.error is None
    assert result.env["n"] == 5 and result.env["n@1"] == 2 and result.env["m@1"] == 3
    with session() as caught:
        later = execute(NESTED, SandboxLimits(), record=False, caught=caught, stop_after=3)
    assert "m@1" not in later.env and later.env["n"] == 5
    # A learner's try cannot swallow the stop.
    code = "try:\n    x = 1\n    y = 2\nexcept BaseException:\n    z = 3\n"
    with session() as caught:
        held = execute(code, SandboxLimits(), record=False, caught=caught, stop_after=2)
    assert held.env == {"x": 1, "y": 2} and held.error is None


def test_a_tensor_is_the_same_value_in_a_frame_and_in_the_module() -> None:
    code = """\
import torch
x = torch.arange(4.0)
def double(t):
    u = t * 2
    return u
y = double(x)
"""
    steps = run_program(code)["steps"]
    inside = next(s for s in steps if s["line"] == 4)["variables"]
    assert inside["t@1"]["storage"] == inside["x"]["storage"]
    assert inside["u@1"]["values"] == (torch.arange(4.0) * 2).tolist()


def test_a_dataset_shows_its_length_and_first_item_and_a_loader_its_batches() -> None:
    code = """\
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split
X = torch.arange(20.0).view(10, 2)
y = torch.arange(10)
data = TensorDataset(X, y)
train, test = random_split(data, [7, 3])
loader = DataLoader(train, batch_size=3, shuffle=True)
exact = DataLoader(data, batch_size=4, drop_last=True)

class Mine(Dataset):
    def __len__(self):
        return 5

theirs = DataLoader(Mine(), batch_size=2)
"""
    v = run_program(code)["steps"][-1]["variables"]
    assert v["data"]["class"] == "TensorDataset" and v["data"]["length"] == 10
    first = v["data"]["first"]["items"]
    assert first[0]["values"] == [0.0, 1.0] and first[1]["values"] == 0
    assert v["train"]["class"] == "Subset" and v["train"]["length"] == 7
    # The split's first item is one of data's rows: x = [2i, 2i + 1] with label i.
    (x, label) = (item["values"] for item in v["train"]["first"]["items"])
    assert x == [2.0 * label, 2.0 * label + 1]
    assert v["loader"]["class"] == "DataLoader"  # PyTorch's name, not the sandbox's subclass
    assert (v["loader"]["batches"], v["loader"]["shuffle"]) == (3, True)  # ceil(7 / 3)
    assert (v["exact"]["batches"], v["exact"]["drop_last"]) == (2, True)  # floor(10 / 4)
    assert v["loader"]["dataset"]["ref"] == v["train"]["ref"]
    # A learner's Dataset: its __len__ is the program's code, which showing a step never runs.
    assert v["theirs"]["batches"] is None and v["theirs"]["dataset"]["class"] == "Mine"
