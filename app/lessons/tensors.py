"""Tensor basics as a step-through runner: the notes' examples, run one statement at a time.

Each example is a small real program. The page runs it (or the learner's edit of it) through the
sandbox, which records what every statement changed (API.md "Programs", steps "changes"); the
functions here rebuild the variables of one step from that trace and turn them into what the step
shows: the line that just ran, which variables changed, and which share memory. A trace with
every variable in every step (steps "full") works too. Pure data and dict work: the sandbox is
passed in as ``runner``, so this module needs neither the web layer nor a worker process (tests
pass ``app.sandbox.run_program``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.lessons.errors import LessonInputError

# code -> the sandbox's trace, API.md "Programs": {"steps", "error", "truncated", "notices",
# "stdout_after"}; a program the sandbox refuses comes back as {"refused": {"line", "message"}}
# with no steps.
Runner = Callable[[str], Mapping[str, Any]]

# A tensor or array value: the kinds whose values the page draws as grids and a heatmap.
ARRAY_KINDS = ("tensor", "ndarray")


@dataclass(frozen=True)
class Example:
    """One claim of the notes, as a program that shows it."""

    title: str
    code: str
    explanation: str


EXAMPLES: dict[str, Example] = {
    "create": Example(
        "Create: empty, zeros, ones, rand, tensor",
        "e = torch.empty(2, 3)  # (2, 3), uninitialised\n"
        "z = torch.zeros(2, 3)  # (2, 3) of 0.\n"
        "o = torch.ones(2, 3)  # (2, 3) of 1.\n"
        "torch.manual_seed(0)  # rand is random: a seed replays the same numbers\n"
        "r = torch.rand(2, 3)  # (2, 3), uniform on [0, 1)\n"
        "t = torch.tensor([[1., 2., 3.], [4., 5., 6.]])  # your own values\n",
        "The creation functions take the dimensions: torch.zeros(2, 3) is two rows of three. "
        "torch.empty only reserves memory, so in plain PyTorch its values are whatever that "
        "memory held (this sandbox shows zeros there, so every run reads the same). torch.rand "
        "draws uniformly from [0, 1), and torch.tensor builds a tensor from your own nested "
        "list. All of them default to float32.",
    ),
    "dtype": Example(
        "dtype: set it, cast it",
        "a = torch.tensor([1, 2, 3])  # whole numbers: PyTorch picks int64\n"
        "b = torch.tensor([1, 2, 3], dtype=torch.float32)  # set the dtype yourself\n"
        "c = torch.zeros(2, 2, dtype=torch.float64)\n"
        "d = a.to(torch.float32)  # cast: a new tensor in new memory\n"
        "e = b.int()  # cast down to int32: the fractions would be cut off\n"
        "f = a / 2  # true division of int64 gives float32\n",
        "Every tensor has one dtype for all its elements. PyTorch guesses it from the data "
        "(whole numbers give int64, decimals give float32), which is why the notes call setting "
        "it good practice: pass dtype= when you create the tensor, or cast later with .to(dtype), "
        ".float(), .double() or .int(). A cast makes a new tensor with its own storage.",
    ),
    "inplace": Example(
        "In place: add_ vs add",
        "x = torch.ones(2, 2)\n"
        "y = torch.ones(2, 2)\n"
        "z = x.add(y)  # out of place: a new tensor z, x is unchanged\n"
        "x.add_(y)  # in place: the trailing _ changes x itself\n"
        "x.mul_(3)  # in place again: same storage, version goes up\n"
        "y += 1  # += is in place too\n",
        "A method whose name ends in an underscore works in place: x.add_(y) writes the sum into "
        "x's own memory and returns x, while x.add(y) (or x + y) leaves x alone and makes a new "
        "tensor. Watch x's storage stay the same while its values and its version counter change; "
        "z gets a storage of its own.",
    ),
    "slicing": Example(
        "Slicing, as in NumPy",
        "x = torch.arange(12).view(3, 4)  # (3, 4): 0 to 11, row by row\n"
        "row = x[1]  # (4,) the second row\n"
        "col = x[:, 2]  # (3,) the third column\n"
        "block = x[0:2, 1:3]  # (2, 2) rows 0-1, columns 1-2\n"
        "corner = x[-1, -1].item()  # the last element, as a Python number\n"
        "block[0, 0] = 100  # a slice is a view: x changes too\n",
        "Indexing and slicing work as they do on NumPy arrays: x[1] is a row, x[:, 2] a column, "
        "x[0:2, 1:3] a block, and negative indices count from the end. A slice is a view, not a "
        "copy: it shares x's storage (see the strides: the column steps 4 elements at a time), so "
        "writing into block writes into x.",
    ),
    "item": Example(
        ".item(): a scalar out of a tensor",
        "x = torch.tensor([3.5, 1.25, 2.0])\n"
        "total = x.sum()  # a 0-d tensor: shape []\n"
        "value = total.item()  # a plain Python number\n"
        "first = x[0].item()\n"
        "print(total, value)\n",
        ".item() turns a tensor with exactly one element into a plain Python number, for printing, "
        "logging a loss or an if-test. total is still a tensor (shape [], no brackets) while value "
        "is a float. On a tensor with more than one element .item() is an error: try x.item().",
    ),
    "view": Example(
        "view(4, -1): a 2x2 becomes a 4x1",
        "a = torch.tensor([[1., 2.], [3., 4.]])  # (2, 2)\n"
        "b = a.view(4, -1)  # (4, 1): -1 is inferred, 4 elements / 4 rows = 1\n"
        "c = a.view(-1)  # (4,): flat\n"
        "a[0, 0] = 10.  # b and c are views of a: they change too\n",
        "view reshapes a tensor without copying it: the new shape must hold the same number of "
        "elements, and one dimension may be -1, meaning 'whatever makes the count work'. On the "
        "2x2 a, view(4, -1) infers 1 and gives a 4x1 tensor. b and c share a's storage (same "
        "colour), so changing a changes them.",
    ),
    "numpy": Example(
        ".numpy() and from_numpy share memory",
        "a = torch.ones(3)\n"
        "n = a.numpy()  # an array over the same memory as a\n"
        "a.add_(1)  # change the tensor in place...\n"
        "print(n)  # ...and the array has changed too\n"
        "m = np.zeros(3)\n"
        "t = torch.from_numpy(m)  # a tensor over the array's memory (float64)\n"
        "m += 5  # change the array in place...\n"
        "print(t)  # ...and the tensor sees it\n",
        "Converting between PyTorch and NumPy does not copy on the CPU: a.numpy() is an array over "
        "a's memory and torch.from_numpy(m) a tensor over m's. Change one in place and the other "
        "changes with it (same storage colour). Copy with .clone() or np.copy when you need them "
        "independent.",
    ),
    "requires_grad": Example(
        "requires_grad=True",
        "x = torch.tensor([1., 2., 3.], requires_grad=True)  # track what happens to x\n"
        "y = x * 2  # y remembers how it was made: grad_fn=MulBackward0\n"
        "w = torch.ones(3)  # requires_grad is False by default\n"
        "z = (y * w).sum()  # a scalar\n"
        "z.backward()  # dz/dx lands in x.grad\n",
        "requires_grad=True tells PyTorch you will want gradients with respect to this tensor: "
        "every operation on it is recorded (y gets a grad_fn), and z.backward() fills x.grad with "
        "dz/dx, here 2 for every element. Tensors made without it, like w, are constants. The "
        "next lesson, Gradient calculation, draws the graph behind this.",
    ),
    "multiply": Example(
        "* is elementwise, @ is the matrix product",
        "a = torch.tensor([[1., 2.], [3., 4.]])\n"
        "b = torch.tensor([[10., 20.], [30., 40.]])\n"
        "elementwise = a * b  # each entry times the entry in the same place\n"
        "product = a @ b  # rows of a times columns of b\n"
        "same = torch.matmul(a, b)  # @ is torch.matmul\n",
        "* multiplies element by element (the shapes must match or broadcast), as the notes say. "
        "The matrix product is @ (torch.matmul): entry (i, j) is row i of a dotted with column j "
        "of b, so a @ b and a * b differ everywhere here.",
    ),
}


@dataclass(frozen=True)
class TensorParams:
    """What the page's URL holds: the example (or the learner's own code) and the step shown."""

    example: str = "create"  # the notes' first claim: how tensors are made
    code: str = ""  # the learner's edited program; empty means the example's own code
    step: int = 1  # 1-based, as the page counts; past the end shows the last step
    var: str = ""  # the tensor in the heatmap; empty: the one this step changed


def check_example(name: str) -> Example:
    """The example called ``name``, or a message listing the ones there are."""
    example = EXAMPLES.get(name)
    if example is None:
        names = ", ".join(EXAMPLES)
        raise LessonInputError(f"There is no example {name[:40]!r}; the examples are {names}.")
    return example


def program(params: TensorParams) -> str:
    """The program the page runs: the learner's code, else the chosen example's."""
    example = check_example(params.example)
    return params.code if params.code.strip() else example.code


def positions(trace: Mapping[str, Any]) -> int:
    """How many steps the page can show: one per recorded statement, plus one for an error."""
    return len(trace.get("steps") or []) + (1 if trace.get("error") else 0)


def apply_step(variables: dict[str, Any], step: Mapping[str, Any]) -> None:
    """Bring ``variables`` (as the step before left them) up to after ``step``: drop what it
    removed, then set what it changed (a new name goes last, as in the program's own dict)."""
    changes = step.get("changes")
    if changes is None:  # a step of a "full" trace holds every variable itself
        variables.clear()
        variables.update(step["variables"])
        return
    for name in step.get("removed") or ():
        variables.pop(name, None)
    variables.update(changes)


def variables_around(
    steps: list[Mapping[str, Any]], index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every variable before and after step ``index`` (0-based), rebuilt from the first step."""
    variables: dict[str, Any] = {}
    for step in steps[:index]:
        apply_step(variables, step)
    before = dict(variables)
    apply_step(variables, steps[index])
    return before, variables


def changed_variables(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Variables that are new or hold a different Value after the step than before it."""
    return [name for name, value in after.items() if before.get(name) != value]


def shared_storage(variables: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Groups of tensors and arrays that share memory: same storage token, two names or more."""
    groups: dict[str, list[str]] = {}
    for name, value in variables.items():
        if value.get("kind") in ARRAY_KINDS and value.get("storage"):
            groups.setdefault(str(value["storage"]), []).append(name)
    return [{"storage": token, "names": names} for token, names in groups.items() if len(names) > 1]


def heatmap_variable(
    variables: Mapping[str, Mapping[str, Any]], changed: list[str], wanted: str = ""
) -> str | None:
    """The tensor to draw: the one asked for, else the first this step changed, else the last."""
    arrays = [n for n, v in variables.items() if v.get("kind") in ARRAY_KINDS]
    if wanted in arrays:
        return wanted
    changed_arrays = [n for n in changed if n in arrays]
    if changed_arrays:
        return changed_arrays[0]
    return arrays[-1] if arrays else None


def step_view(trace: Mapping[str, Any], step: int, wanted: str = "") -> dict[str, Any]:
    """What step ``step`` (1-based, clamped) of a trace shows.

    The step after the last recorded one, when the program failed, is the error: the failing
    line, with the variables as the last statement left them.
    """
    steps = list(trace.get("steps") or [])
    error = trace.get("error")
    count = positions(trace)
    if count == 0:
        return {"step": 0, "count": 0, "index": None, "line": None, "is_error": False,
                "changed": [], "shared": [], "variable": None, "stdout_before": "",
                "variables": {}}  # fmt: skip
    step = min(max(step, 1), count)
    is_error = bool(error) and step == count
    index = step - 1 if not is_error else (len(steps) - 1 if steps else None)
    before, variables = variables_around(steps, index) if index is not None else ({}, {})
    changed = [] if is_error else changed_variables(before, variables)
    line = error["line"] if error and is_error else steps[step - 1]["line"]
    shown = index + 1 if index is not None else 0
    stdout_before = "".join(s["stdout"] for s in steps[: shown - (0 if is_error else 1)])
    return {
        "step": step,
        "count": count,
        "index": index,  # into trace["steps"]: whose variables this step shows
        "line": line,
        "is_error": is_error,
        "changed": changed,
        "shared": shared_storage(variables),
        "variable": heatmap_variable(variables, changed, wanted),
        "stdout_before": stdout_before,  # printed by earlier steps; the step's own is its stdout
        "variables": variables,  # every variable after the step shown
    }


def explore(params: TensorParams, runner: Runner) -> dict[str, Any]:
    """Run the page's program through the sandbox and describe the step the URL asks for."""
    code = program(params)
    trace = runner(code)
    steps = list(trace.get("steps") or [])
    return {
        "example": params.example,
        "edited": code != EXAMPLES[params.example].code,
        "code": code,
        "lines": code.splitlines(),
        "steps": steps,
        "error": trace.get("error"),
        "refused": trace.get("refused"),
        "truncated": bool(trace.get("truncated")),
        "notices": list(trace.get("notices") or []),
        "stdout_after": str(trace.get("stdout_after") or ""),  # printed after the last step
        "final": trace.get("final"),  # the variables it ended with, when recording stopped early
        "steps_format": trace.get("steps_format", "full"),
        "files": list(trace.get("files") or []),  # what the program saved, for download
        "figures": list(trace.get("figures") or []),  # the PNGs it drew, with their steps
        **step_view(trace, params.step, params.var),
    }


def snippet(params: TensorParams) -> str:
    """The program itself, with the imports the sandbox has already made: paste it into Python."""
    return "import numpy as np\nimport torch\n\n" + program(params)
