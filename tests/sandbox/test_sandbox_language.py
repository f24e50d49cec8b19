"""Issue 13's language, checked against plain Python: the same program run by ``exec`` here (the
independent computation) and by the sandbox prints the same lines and fails with the same error
at the same line."""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
from typing import Any

import pytest
import torch

from app.sandbox import SandboxLimitExceeded, SandboxLimits, SandboxRefused, run_program


def plain(code: str) -> tuple[str, tuple[int, str] | None]:
    """Printed output and (line, "Type: message") of the error, as plain Python gives them."""
    out = io.StringIO()
    error = None
    torch.manual_seed(0)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(code, "<learner>", "exec"), namespace)  # the independent run
        except Exception as exc:
            frames = [
                f for f in traceback.extract_tb(sys.exc_info()[2]) if f.filename == "<learner>"
            ]
            text = str(exc)
            error = (frames[-1].lineno or 0, f"{type(exc).__name__}: {text}" if text else
                     type(exc).__name__)  # fmt: skip
    return out.getvalue(), error


def sandboxed(code: str, steps: str = "none") -> tuple[str, tuple[int, str] | None]:
    result = run_program(code, steps=steps)  # type: ignore[arg-type]
    printed = "".join(s["stdout"] for s in result["steps"]) + result["stdout_after"]
    error = result["error"]
    return printed, None if error is None else (error["line"], error["message"])


def same_as_python(code: str) -> str:
    expected = plain(code)
    assert sandboxed(code) == expected
    assert sandboxed(code, "changes") == expected  # recording changes nothing a program sees
    return expected[0]


PROGRAMS = {
    "arguments": """
def f(a, b=2, *args, c=3, **kw):
    return (a, b, args, c, sorted(kw.items()))
print(f(1))
print(f(1, 5, 6, 7, c=8, z=9))
print(f(b=1, a=2))
def g(x, /, y):
    return x - y
print(g(5, y=1))
""",
    "missing argument": "def f(a, b):\n    return a\nprint('before')\nf(1)\n",
    "too many arguments": "def f(a, b=1):\n    return a\nf(1, 2, 3)\n",
    "unexpected keyword": "def f(a):\n    return a\nf(a=1, b=2)\n",
    "multiple values": "def f(a):\n    return a\nf(1, a=2)\n",
    "method arguments": "class A:\n    def m(self, x):\n        return x\nA().m(1, 2)\n",
    "closures": """
def make_counter():
    count = 0
    def inc(step=1):
        nonlocal count
        count += step
        return count
    return inc
c = make_counter()
c()
c(5)
print(c(), make_counter()())
adders = [lambda x, n=n: x + n for n in range(3)]
print([a(10) for a in adders])
late = [lambda: n for n in range(3)]
print([f() for f in late])
""",
    "global": "total = 0\ndef add(n):\n    global total\n    total += n\nadd(2)\nadd(3)\n"
    "print(total)\n",
    "unbound local": "x = 1\ndef f():\n    print(x)\n    x = 2\nf()\n",
    "recursion": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    "print(fib(15))\n",
    "classes": """
import torch
class Animal:
    kind = 'animal'
    def __init__(self, name):
        self.name = name
    def speak(self):
        return f'{self.name} makes a sound'
    def __repr__(self):
        return f'Animal({self.name!r})'
class Dog(Animal):
    def __init__(self, name, tricks=None):
        super().__init__(name)
        self.tricks = tricks or []
    def speak(self):
        return super().speak() + ' (woof)'
    def __str__(self):
        return f'Dog {self.name}'
d = Dog('Rex', ['sit'])
print(d.speak(), d.kind, Dog.kind, d.tricks)
print(d, repr(d), [d], str(d))
print(isinstance(d, Animal), isinstance(d, Dog), isinstance(Animal('x'), Dog), type(d) == Dog)
print(type(d), type(1.5), type([]), type('s'), type(torch.ones(1)))
Animal.kind = 'changed'
print(d.kind)
""",
    "class helpers": """
class Temperature:
    scale = 'C'
    def __init__(self, c):
        self.c = c
    @property
    def f(self):
        return self.c * 9 / 5 + 32
    @f.setter
    def f(self, value):
        self.c = (value - 32) * 5 / 9
    @staticmethod
    def describe(x):
        return f'{x} degrees'
    @classmethod
    def freezing(cls):
        return cls(0)
t = Temperature(100)
print(t.f, Temperature.describe(3), t.describe(4), Temperature.freezing().c)
t.f = 32
print(t.c)
""",
    "special methods": """
class Seq:
    def __init__(self, n):
        self.n = n
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError('out of range')
        return i * i
    def __call__(self, x):
        return x + self.n
class Countdown:
    def __init__(self, start):
        self.current = start
    def __iter__(self):
        return self
    def __next__(self):
        if self.current <= 0:
            raise StopIteration
        self.current -= 1
        return self.current + 1
s = Seq(4)
print(len(s), s[2], s(10), list(s), [x for x in s], 9 in s, bool(Seq(0)))
print(list(Countdown(3)), sum(Countdown(4)), next(iter(Countdown(2))))
it = iter([1, 2])
print(next(it), next(it), next(it, 'done'))
""",
    "exceptions": """
def risky(n):
    if n < 0:
        raise ValueError(f'negative: {n}')
    return n
for n in (1, -1):
    try:
        r = risky(n)
    except ValueError as e:
        print('caught', e, e.args)
    else:
        print('no error', r)
    finally:
        print('finally', n)
try:
    {}['missing']
except (IndexError, KeyError) as e:
    print('lookup', repr(e), type(e))
try:
    try:
        1 / 0
    except ZeroDivisionError:
        print('inner')
        raise
except ArithmeticError as e:
    print('outer', e)
def f():
    try:
        return 'try'
    finally:
        print('cleanup')
print(f())
try:
    raise RuntimeError
except Exception as e:
    print(type(e), str(e) == '')
assert 1 + 1 == 2, 'math'
""",
    "uncaught in a function": "def inner(x):\n    return x.view(3)\ndef outer():\n"
    "    return inner(torch.ones(4))\nimport torch\nouter()\n",
    "raise in a method": "class A:\n    def go(self):\n        raise KeyError('k')\nA().go()\n",
    "comprehensions": """
xs = [1, 2, 3, 4]
print([x * y for x in xs for y in xs if x < y])
print({x % 3 for x in xs}, {x: x * x for x in xs if x % 2})
print(sum(x * x for x in range(100)), max(len(w) for w in ['a', 'abc']))
x = 'outer'
squares = [x for x in range(3)]
print(x, squares, list(zip(*[[1, 2], [3, 4]])))
matrix = [[r * 3 + c for c in range(3)] for r in range(3)]
print(matrix, [row[i] for i, row in enumerate(matrix)])
""",
    "builtins": """
words = ['pear', 'fig', 'banana']
print(sorted(words, key=len), sorted(words, key=lambda w: w[-1], reverse=True))
print(min(words, key=len), max([3, 1, 2]), min([], default=0), max(3, 9, 4))
print(list(map(len, words)), list(filter(lambda w: 'a' in w, words)))
print(list(map(lambda a, b: a + b, [1, 2], [3, 4])))
print(list(enumerate(words, start=1)), list(zip(words, range(5))), list(reversed(words)))
print(any(w.startswith('f') for w in words), all(len(w) > 2 for w in words))
print(int('42') + 1, float('2.5'), str(3), bool(0), abs(-2), round(2.567, 2), len({1: 2}))
print(set([1, 2, 2]), tuple([1]), dict(a=1), list(range(2, 10, 3)), isinstance(1, (int, float)))
""",
    "unpacking and strings": """
first, *middle, last = range(6)
print(first, middle, last)
(a, b), c = (1, 2), 3
print(a, b, c, [*middle, *'ab'], {**{'x': 1}, 'y': 2})
def show(*parts, **named):
    print(*parts, sep='-', end='!\\n')
    print(named)
show(1, 2, *[3], **{'k': 4})
pi = 3.14159
print(f'{pi:.2f} {pi:>10.3f} {42:05d} {"s"!r} {pi=} {1e-5:.1e} {0.25:.0%}')
print(1 < 2 < 3, 3 > 2 > 2, 'a' not in 'bc', None is None, [] is not [])
if __name__ == '__main__':
    print('main')
""",
    "modules": """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super(Net, self).__init__()
        self.hidden = nn.Linear(n_in, 4)
        self.act = nn.ReLU()
        self.out = nn.Linear(4, n_out)
    def forward(self, x):
        return self.out(self.act(self.hidden(x)))
torch.manual_seed(3)
model = Net(3, 2)
print(model)
print([k for k in model.state_dict()], sum(p.numel() for p in model.parameters()))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(5, 3)
y = torch.randn(5, 2)
for step in range(3):
    loss = nn.MSELoss()(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f'{loss.item():.6f}')
model.eval()
with torch.no_grad():
    print(model(x).shape, model.training)
copy = Net(3, 2)
copy.load_state_dict(model.state_dict())
print(torch.equal(copy(x), model(x)))
""",
    "shape error in forward": """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
    def forward(self, x):
        return self.fc(x)
Net()(torch.ones(2, 4))
""",
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_runs_as_in_plain_python(name: str) -> None:
    same_as_python(PROGRAMS[name])


def test_a_learner_module_has_the_state_of_the_same_class_in_plain_python() -> None:
    code = PROGRAMS["modules"].split("opt = ")[0] + "sd = model.state_dict()\n"
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<learner>", "exec"), namespace)
    expected = namespace["sd"]
    result = run_program(code)
    module = result["steps"][-1]["variables"]["model"]
    assert list(module["parameters"]) == list(expected)
    for name, tensor in expected.items():
        assert torch.tensor(module["parameters"][name]["values"]).allclose(tensor, atol=0, rtol=0)


def test_an_error_inside_calls_names_the_lines_of_the_calls() -> None:
    result = run_program(PROGRAMS["uncaught in a function"])
    assert result["error"]["line"] == 2
    assert result["error"]["traceback"] == [6, 4, 2]


def test_recursion_stops_at_max_call_depth_and_cannot_be_caught() -> None:
    code = "def f(n):\n    return f(n + 1)\ntry:\n    f(0)\nexcept Exception:\n    print('x')\n"
    with pytest.raises(SandboxLimitExceeded) as info:
        run_program(code, SandboxLimits(max_call_depth=50))
    assert info.value.limit == "max_call_depth"


@pytest.mark.parametrize(
    ("code", "limit"),
    [
        ("try:\n    while True:\n        pass\nexcept BaseException:\n    print('no')\n",
         "max_"),
        ("try:\n    x = [0] * 10**9\nexcept Exception:\n    pass\n", "max_sequence_items"),
        ("def f():\n    try:\n        return torch.ones(10**5, 10**5)\n    finally:\n"
         "        print('cleanup')\nf()\n", "max_tensor_elements"),
        ("for i in range(3000):\n    def f():\n        pass\n", "max_functions"),
        ("for i in range(300):\n    class A:\n        pass\n", "max_classes"),
        ("class A:\n    pass\nxs = [A() for i in range(5000)]\n", "max_objects"),
    ],
)  # fmt: skip
def test_limits_stop_the_program_whatever_handles_them(code: str, limit: str) -> None:
    limits = SandboxLimits(max_functions=2_000, max_classes=100, max_objects=1_000)
    with pytest.raises(SandboxLimitExceeded) as info:
        run_program(code, limits)
    assert limit in str(info.value)
    assert "no" not in "".join(info.value.reason)


def test_a_dataset_whose_len_lies_is_stopped_before_the_loader_uses_it() -> None:
    code = (
        "from torch.utils.data import Dataset, DataLoader\n"
        "class Liar(Dataset):\n    def __getitem__(self, i):\n        return i\n"
        "    def __len__(self):\n        return 10**12\n"
        "loader = DataLoader(Liar(), shuffle=True)\n"
    )
    with pytest.raises(SandboxRefused) as info:
        run_program(code)
    assert "max_sequence_items" in str(info.value) and info.value.line == 7


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("class A:\n    def __eq__(self, o):\n        return True\n", "__eq__"),
        ("class A:\n    def __getattr__(self, n):\n        return 1\n", "__getattr__"),
        ("def __init__():\n    pass\n", "__init__"),
        ("class A(metaclass=type):\n    pass\n", "metaclass"),
        ("@print\ndef f():\n    pass\n", "decorators"),
        ("def f():\n    yield 1\n", "yield"),
        ("class A:\n    pass\nA.__dict__\n", "double-underscore"),
        ("def f():\n    pass\nprint(f.__globals__)\n", "double-underscore"),
        ("class A:\n    pass\nA().__class__\n", "double-underscore"),
    ],
)
def test_what_stays_refused_is_refused_before_running_naming_line_and_reason(
    code: str, reason: str
) -> None:
    with pytest.raises(SandboxRefused) as info:
        run_program("print('ran')\n" + code)
    assert reason in info.value.reason and info.value.line is not None and info.value.line > 1


@pytest.mark.parametrize("steps", ["full", "changes"])
def test_a_step_inside_calls_carries_its_call_stack(steps: str) -> None:
    code = (
        "class Net:\n    def forward(self, x):\n        y = helper(x)\n        return y\n"
        "def helper(v):\n    return v * 2\nout = Net().forward(3)\nprint(out)\n"
    )
    result = run_program(code, steps=steps)  # type: ignore[arg-type]
    stacks = {s["line"]: s.get("stack") for s in result["steps"]}
    assert stacks[6] == [
        {"function": "<module>", "line": 7},
        {"function": "Net.forward", "line": 3},
        {"function": "helper", "line": 6},
    ]
    assert stacks[4] == [
        {"function": "<module>", "line": 7},
        {"function": "Net.forward", "line": 4},
    ]
    assert stacks[7] is None and stacks[8] is None  # the top level has no stack
