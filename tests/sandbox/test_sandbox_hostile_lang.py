"""Hostile programs that use the language issue 13 adds: def, lambda, closures, classes,
nn.Module and Dataset subclasses, special methods, decorators, try/except/raise, comprehensions,
generators, imports as written, in-memory files, figures and TensorBoard logs.

Each program goes through ``POST /api/tensors/run`` on one app (one warm pool of sandbox workers
for the whole module) and must end in one of four ways: refused (422 naming the line and a
reason), a runtime ``error`` at a line, a limit (422 naming the limit in parentheses), or a normal
run. Which of these is allowed is written beside each program; on top of that, every answer is
checked the same way: no 5xx, the server still answers, nothing was written to the server's disk,
the server's environment never shows, and no real interpreter object (a module with its path, a
built-in, a frame, a code object, the sandbox's own classes) shows in what comes back.

While a feature is not built yet, a program that needs it may also be refused or fail at its
line (the module's probes say which features run): these tests stay valid, and grow strict,
as the engine grows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.sandbox import SandboxLimits, SandboxRefused, run_program_isolated
from app.sandbox.isolation import configure_pool, shutdown_pool
from app.web.routes.programs import sandbox_limits

ROOT = Path(__file__).resolve().parents[2]
NAME = f"explorer-hostile-{uuid.uuid4().hex}"
MARKER = Path(tempfile.gettempdir()) / NAME
M = str(MARKER)
SECRET = f"hostile-secret-{uuid.uuid4().hex}"
# Set before this module's workers start (the fixture starts a fresh pool), so a leak of the
# server's environment would have something to show.
os.environ["EXPLORER_HOSTILE_SECRET"] = SECRET

# The limits of this module's app: small enough that a loop meets each new limit well before
# max_statements, and the deepest call depth the settings allow, so deep recursion stresses the
# interpreter's own stack.
SETTINGS: dict[str, Any] = {
    "program_max_seconds": 2.0,
    "program_max_call_depth": 400,
    "program_max_functions": 200,
    "program_max_classes": 20,
    "program_max_objects": 500,
    "program_max_files": 4,
    "program_max_file_bytes": 200_000,
    "program_max_figures": 3,
}
# A hung program is stopped at max_seconds plus the worker's kill margin; well past that, the
# sandbox let it hang (the wait for a replacement worker is included).
HANG_SECONDS = 20.0
# An error message or refusal longer than this was not cut (the interpreter cuts at 2,000).
MAX_MESSAGE_CHARS = 5_000

# Signs of a real interpreter object, or of the server's own files, in an answer. The sandbox's
# own reprs (``<module 'torch'>``, ``<function print>``) are fine; Python's are not.
LEAKS = [
    re.compile(r"<module '[^']*' (from |\(built-in\)|\(frozen\))"),
    re.compile(r"<built-in"),
    re.compile(r"<function (Interpreter|Guard|SafeFunction|Namespace|_)"),
    re.compile(r"<bound method"),
    re.compile(r"<(method-wrapper|slot wrapper|wrapper_descriptor|method ')"),
    re.compile(r"<(cell at|traceback object|frame at|frame object|code object)"),
    re.compile(r"\bframe\b"),
    re.compile(r"code object"),
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"app\.sandbox|app/sandbox"),
    re.compile(r"<class 'app\."),
    re.compile(r"/work/"),
    re.compile(r"site-packages|\.venv"),
]
LOOP = ("limit:max_statements", "limit:max_loop_iterations", "limit:max_seconds")
SAFE = ("refused", "error")
ANY = ("refused", "error", "ok", "limit:*")


def src(text: str) -> str:
    """A program written as an indented triple-quoted block; line 1 is its first line."""
    return textwrap.dedent(text).lstrip("\n")


@dataclass(frozen=True)
class Hostile:
    """One hostile program and the outcomes it may have.

    Attributes:
        code: the program.
        expect: the allowed outcomes: "refused", "error", "ok", "limit:<name>" or "limit:*".
        needs: features (keys of PROBES) it uses; while one does not run yet, a refusal or an
            error at a line is allowed too.
        line: the line (or lines) a refusal or error must name.
        mentions: a regular expression the refusal's reason or the error's message must match.
        allow: reprs in the output that are the learner's own (e.g. ``<bound method A.m``).
        stdout_has: text the printed output must hold when the program runs normally.
        stdout_lacks: text that must never be printed (a file's contents).
    """

    code: str
    expect: tuple[str, ...]
    needs: tuple[str, ...] = ()
    line: int | tuple[int, ...] | None = None
    mentions: str | None = None
    allow: tuple[str, ...] = ()
    stdout_has: str | None = None
    stdout_lacks: tuple[str, ...] = ()


# Each feature the issue adds, with a program that uses it and what that program prints.
PROBES: dict[str, tuple[str, str]] = {
    "def": (
        "def f(a, b=2, *args, **kw):\n    return a + b + len(args) + len(kw)\nprint(f(1))",
        "3",
    ),
    "lambda": ("f = lambda v, w=1: v + w\nprint(f(2))", "3"),
    "class": (
        src(
            """
            class A:
                k = 1
                def __init__(self, v):
                    self.v = v
                def get(self):
                    return self.v + A.k
            class B(A):
                def get(self):
                    return super().get() * 10
            print(B(2).get())
            """
        ),
        "30",
    ),
    "decorators": (
        src(
            """
            class A:
                @staticmethod
                def s():
                    return 1
                @classmethod
                def c(cls):
                    return 2
                @property
                def p(self):
                    return 3
            print(A.s() + A.c() + A().p)
            """
        ),
        "6",
    ),
    "module": (
        src(
            """
            class Net(nn.Module):
                def __init__(self):
                    super(Net, self).__init__()
                    self.l = nn.Linear(2, 3)
                def forward(self, x):
                    return self.l(x)
            print(Net()(torch.ones(1, 2)).shape)
            """
        ),
        "torch.Size([1, 3])",
    ),
    "dataset": (
        src(
            """
            from torch.utils.data import Dataset, DataLoader
            class D(Dataset):
                def __len__(self):
                    return 4
                def __getitem__(self, i):
                    return torch.tensor(float(i))
            for b in DataLoader(D(), batch_size=2):
                print(b.shape)
            """
        ),
        "torch.Size([2])",
    ),
    "try": (
        "try:\n    raise ValueError('v')\nexcept ValueError as e:\n    print('caught', e)\n"
        "finally:\n    print('done')",
        "caught v",
    ),
    "comprehension": ("print([i * i for i in range(3)], {i: 1 for i in range(2)})", "[0, 1, 4]"),
    "genexp": ("print(sum(i for i in range(4)))", "6"),
    "builtins": (
        "print(isinstance(1, int), type(1), list(map(abs, [-1])), set([1]), next(iter([7])))",
        "True <class 'int'> [1] {1} 7",
    ),
    "imports": (
        "import math\nfrom torch.utils.data import DataLoader\nprint(math.floor(2.5))",
        "2",
    ),
    "save": (
        "torch.save({'w': torch.ones(2)}, 'm.pth')\nprint(torch.load('m.pth')['w'].sum().item())",
        "2.0",
    ),
    "open": ("f = open('data/wine/wine.csv')\nprint(len(f.readline()) > 0)", "True"),
    "plot": (
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\nprint('drawn')",
        "drawn",
    ),
    "tensorboard": (
        "from torch.utils.tensorboard import SummaryWriter\nw = SummaryWriter()\n"
        "w.add_scalar('loss', 1.0, 0)\nw.close()\nprint('logged')",
        "logged",
    ),
    "sklearn": (
        "from sklearn import datasets\nX, y = datasets.load_iris(return_X_y=True)\nprint(X.shape)",
        "(150, 4)",
    ),
}

DATASET = """
from torch.utils.data import Dataset, DataLoader
class D(Dataset):
    def __len__(self):
        return {length}
    def __getitem__(self, i):
        return {item}
"""


def dataset(length: str, item: str, rest: str) -> str:
    """A learner Dataset (lines 1-6) and the lines that use it."""
    return src(DATASET.format(length=length, item=item)) + src(rest)


NET = src(
    """
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(2, 2)
        def forward(self, x):
            return self.l(x)
    """
)
ENDLESS = src(
    """
    class It:
        def __iter__(self):
            return self
        def __next__(self):
            return 1
    """
)
# A protocol-0 pickle that runs os.system on loading: as a bytes literal, and as text (protocol 0
# is ASCII, so a program may write it with open(..., 'w') where bytes literals are refused).
PICKLE = f"b\"cos\\nsystem\\n(S'touch {M}'\\ntR.\""
PICKLE_TEXT = f"\"cos\\nsystem\\n(S'touch {M}'\\ntR.\""

# Special methods a learner may not define (issue 13 allows only __init__, __call__, __getitem__,
# __len__, __iter__, __next__, __repr__ and __str__): each one would let the program hook into
# Python or the libraries (attribute lookup, pickling, hashing, torch's dispatch, NumPy's).
FORBIDDEN_DUNDERS = [
    "__getattr__",
    "__getattribute__",
    "__setattr__",
    "__delattr__",
    "__del__",
    "__eq__",
    "__hash__",
    "__lt__",
    "__init_subclass__",
    "__class_getitem__",
    "__new__",
    "__reduce__",
    "__reduce_ex__",
    "__getstate__",
    "__setstate__",
    "__index__",
    "__bool__",
    "__format__",
    "__enter__",
    "__exit__",
    "__fspath__",
    "__set_name__",
    "__get__",
    "__set__",
    "__instancecheck__",
    "__subclasscheck__",
    "__mro_entries__",
    "__add__",
    "__setitem__",
    "__contains__",
    "__copy__",
    "__deepcopy__",
    "__torch_function__",
    "__array__",
    "__array_ufunc__",
    "__array_function__",
    "__float__",
    "__int__",
    "__dir__",
    "__sizeof__",
]

CASES: dict[str, Hostile] = {
    # -- class attribute walks -----------------------------------------------------------------
    "self_class": Hostile(
        src(
            """
            class A:
                def m(self):
                    return self.__class__
            print(A().m())
            """
        ),
        ("refused",),
        ("class",),
        line=3,
        mentions="__class__",
    ),
    "module_mro": Hostile(
        src(
            """
            class Net(nn.Module):
                def forward(self, x):
                    return x
            print(Net.__mro__)
            """
        ),
        ("refused",),
        ("module",),
        line=4,
        mentions="__mro__",
    ),
    "class_dict": Hostile(
        "class A:\n    k = 1\nd = A.__dict__", ("refused",), ("class",), 3, "__dict__"
    ),
    "instance_dict": Hostile(
        "class A:\n    def __init__(self):\n        self.v = 1\nprint(A().__dict__)",
        ("refused",),
        ("class",),
        4,
        "__dict__",
    ),
    "class_bases": Hostile(
        "class A(object):\n    pass\nb = A.__bases__[0]", ("refused",), ("class",), 3, "__bases__"
    ),
    "class_subclasses": Hostile(
        "class A:\n    pass\ns = A.__subclasses__()", ("refused",), ("class",), 3, "__subclasses__"
    ),
    "object_subclasses": Hostile(
        "s = object.__subclasses__()", ("refused",), ("class",), 1, "__subclasses__"
    ),
    "type_subclasses": Hostile(
        "t = type(1).__subclasses__()", ("refused",), ("builtins",), 1, "__subclasses__"
    ),
    "method_globals": Hostile(
        "class A:\n    def m(self):\n        return 1\ng = A.m.__globals__",
        ("refused",),
        ("class",),
        4,
        "__globals__",
    ),
    "bound_method_func": Hostile(
        "class A:\n    def m(self):\n        return 1\na = A()\ng = a.m.__func__",
        ("refused",),
        ("class",),
        5,
        "__func__",
    ),
    "closure_cells": Hostile(
        src(
            """
            def outer():
                p = print
                def inner():
                    return p
                return inner
            c = outer().__closure__
            """
        ),
        ("refused",),
        ("def",),
        6,
        "__closure__",
    ),
    "function_code": Hostile(
        "def f():\n    return 1\nc = f.__code__", ("refused",), ("def",), 3, "__code__"
    ),
    "function_defaults": Hostile(
        "def f(a=print):\n    return a\nd = f.__defaults__",
        ("refused",),
        ("def",),
        3,
        "__defaults__",
    ),
    "lambda_globals": Hostile(
        "f = lambda: 0\ng = f.__globals__['__builtins__']",
        ("refused",),
        ("lambda",),
        2,
        "__globals__",
    ),
    "builtins_through_a_function": Hostile(
        "def f():\n    return __builtins__\nb = f()", ("refused",), ("def",), 2, "__builtins__"
    ),
    "getattr_dunder_string": Hostile(
        "def f():\n    return 1\ng = getattr(f, '__globals__')", SAFE, ("def",), 3
    ),
    "setattr_class": Hostile(
        "class A:\n    pass\na = A()\nsetattr(a, '__class__', int)", SAFE, ("class",), 4
    ),
    "getattr_class_of_object": Hostile(
        "class A:\n    pass\ng = getattr(A(), '__class__')", SAFE, ("class",), 3
    ),
    "assign_class": Hostile(
        "class A:\n    pass\na = A()\na.__class__ = int", ("refused",), ("class",), 4, "__class__"
    ),
    "assign_dict_in_init": Hostile(
        "class A:\n    def __init__(self):\n        self.__dict__ = {}\nA()",
        ("refused",),
        ("class",),
        3,
        "__dict__",
    ),
    "private_attribute_mangled": Hostile(
        "class A:\n    def __init__(self):\n        self.__secret = 1\nA()",
        ("refused",),
        ("class",),
        3,
    ),
    "class_slots": Hostile(
        "class A:\n    __slots__ = ()", ("refused",), ("class",), 2, "__slots__"
    ),
    "class_getattr_assigned": Hostile(
        "class A:\n    __getattr__ = lambda self, name: name\na = A()",
        ("refused",),
        ("class",),
        2,
        "__getattr__",
    ),
    "class_dunder_set_from_outside": Hostile(
        "class A:\n    pass\nA.__getattr__ = print", ("refused",), ("class",), 3, "__getattr__"
    ),
    "vars_and_dir": Hostile("class A:\n    pass\nprint(vars(A()), dir(A))", SAFE, ("class",), 3),
    "object_new": Hostile(
        "class A:\n    pass\na = object.__new__(A)", ("refused",), ("class",), 3, "__new__"
    ),
    "init_called_again": Hostile(
        "class A:\n    def __init__(self):\n        self.__init__()\nA()",
        ("refused",),
        ("class",),
        3,
    ),
    "method_self_via_bound_tensor_method": Hostile(
        "x = torch.ones(1)\nm = x.sum\nprint(m.__self__)", ("refused",), line=3, mentions="__self__"
    ),
    "class_body_loops_forever": Hostile(
        "class A:\n    for i in range(10 ** 6):\n        pass", LOOP, ("class",)
    ),
    "class_body_huge_list": Hostile(
        "class A:\n    x = [0] * 10 ** 9", ("limit:max_sequence_items",), ("class",)
    ),
    # -- type() --------------------------------------------------------------------------------
    "type_three_args": Hostile(
        "X = type('X', (object,), {'a': 1})\nprint(X)", SAFE, ("builtins",), 1
    ),
    "type_three_args_module": Hostile(
        "X = type('X', (nn.Module,), {'forward': print})\nX()(1)", SAFE, ("builtins",), 1
    ),
    "type_of_type_called": Hostile(
        "t = type(type(1))\nprint(t('X', (), {}))", SAFE, ("builtins",), (1, 2)
    ),
    "type_of_tensor_called_huge": Hostile(
        "T = type(torch.ones(1))\nx = T(10 ** 9)",
        ("refused", "error", "limit:max_tensor_elements", "limit:max_total_bytes"),
        ("builtins",),
    ),
    "type_of_array_called_huge": Hostile(
        "A = type(np.ones(1))\nx = A((10 ** 5, 10 ** 5))",
        ("refused", "error", "limit:max_tensor_elements", "limit:max_total_bytes"),
        ("builtins",),
    ),
    "type_of_learner_object_prints_main": Hostile(
        NET + "print(type(Net()), type(Net()) is Net)",
        ("ok",),
        ("module", "builtins"),
        stdout_has="<class '__main__.Net'> True",
    ),
    "type_of_interpreter_values": Hostile(
        "print(type(print), type(torch), type(len), type(torch.ones(1).sum))",
        ("ok", "error", "refused"),
        ("builtins",),
    ),
    "objects_made_through_type": Hostile(
        "class A:\n    pass\nfor i in range(2000):\n    a = type(A())()",
        ("limit:max_objects",),
        ("class", "builtins"),
    ),
    # -- super() -------------------------------------------------------------------------------
    "super_int_1": Hostile("s = super(int, 1)\nprint(s)", SAFE, ("class",), 1),
    "super_getattribute": Hostile(
        src(
            """
            class A:
                def m(self):
                    return super().__getattribute__('__dict__')
            A().m()
            """
        ),
        ("refused",),
        ("class",),
        3,
        "__getattribute__",
    ),
    "super_type_net": Hostile(
        src(
            """
            class Net(nn.Module):
                def forward(self, x):
                    return x
            s = super(type, Net)
            print(s)
            """
        ),
        SAFE,
        ("module",),
        4,
    ),
    "super_outside_a_method": Hostile(
        "def f():\n    return super()\nprint(f())", SAFE, ("def", "class"), (2, 3)
    ),
    "super_setattr": Hostile(
        src(
            """
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    super().__setattr__('training', print)
            Net()
            """
        ),
        ("refused",),
        ("module",),
        4,
        "__setattr__",
    ),
    "super_init_unbound": Hostile(
        src(
            """
            class Net(nn.Module):
                def forward(self, x):
                    return x
            s = super(Net, Net).__init__()
            """
        ),
        SAFE,
        ("module",),
        4,
    ),
    "super_init_read_not_called": Hostile(
        src(
            """
            class A:
                def __init__(self):
                    self.init = super().__init__
                    print(self.init)
            A()
            """
        ),
        SAFE,
        ("class",),
        3,
    ),
    "super_mro": Hostile(
        "class A:\n    def m(self):\n        return super().mro()\nA().m()",
        SAFE,
        ("class",),
        (3, 4),
    ),
    "super_with_a_foreign_object": Hostile(
        src(
            """
            class A:
                def m(self):
                    return 1
            class B(A):
                def m(self):
                    return super(B, 5).m()
            B().m()
            """
        ),
        SAFE,
        ("class",),
        (6, 7),
    ),
    # -- closures capturing interpreter objects ------------------------------------------------
    "closure_over_print": Hostile(
        src(
            """
            def make():
                p = print
                def inner():
                    return p
                return inner
            g = make()
            print(g, g(), repr(g()), str(g()))
            """
        ),
        ("ok", "error", "refused"),
        ("def",),
    ),
    "closure_over_torch": Hostile(
        src(
            """
            def make():
                t = torch
                return lambda: t
            m = make()()
            print(m, m.nn, m.ones(2))
            """
        ),
        ("ok", "error", "refused"),
        ("def", "lambda"),
    ),
    "printed_namespaces": Hostile(
        "import torch.nn as nn\nimport torch.nn.functional as F\nprint(torch, nn, F, np, optim)",
        ("ok",),
    ),
    "closure_over_a_tensor_method": Hostile(
        "def make():\n    x = torch.ones(2)\n    return x.sum\nf = make()\nprint(f, f())",
        ("ok", "error", "refused"),
        ("def",),
    ),
    "nonlocal_swaps_a_builtin": Hostile(
        src(
            """
            def outer():
                f = len
                def inner():
                    nonlocal f
                    f = print
                    return f
                return inner()
            outer()('x')
            """
        ),
        ("ok", "error", "refused"),
        ("def",),
    ),
    "global_rebinds_torch": Hostile(
        "def f():\n    global torch\n    torch = None\nf()\nprint(torch.ones(1))", SAFE, ("def",)
    ),
    "defaults_hold_interpreter_objects": Hostile(
        "def f(p=print, t=torch, n=nn.Module):\n    return p, t, n\nprint(f())",
        ("ok", "error", "refused"),
        ("def",),
    ),
    "learner_function_repr": Hostile(
        "def f():\n    pass\nprint(f, repr(f), f'{f!r}')",
        ("ok",),
        ("def",),
        stdout_has="<function f",
    ),
    "learner_bound_method_repr": Hostile(
        "class A:\n    def m(self):\n        return 1\nprint(A().m)",
        ("ok",),
        ("class",),
        allow=("<bound method A.m of <__main__.A object at",),
        stdout_has="A.m",
    ),
    "learner_object_repr": Hostile(
        "class A:\n    pass\nprint(A(), repr(A()), str(A))",
        ("ok",),
        ("class",),
        stdout_has="<class '__main__.A'>",
    ),
    "class_attribute_holds_print": Hostile(
        "class A:\n    f = print\nA().f('hi')", ("ok", "error", "refused"), ("class",)
    ),
    # -- exceptions and their tracebacks -------------------------------------------------------
    "traceback_frame_globals": Hostile(
        src(
            """
            try:
                1 / 0
            except ZeroDivisionError as e:
                g = e.__traceback__.tb_frame.f_globals
            """
        ),
        ("refused",),
        ("try",),
        4,
        "__traceback__",
    ),
    "with_traceback": Hostile(
        src(
            """
            try:
                1 / 0
            except ZeroDivisionError as e:
                x = e.with_traceback(None)
                print(x)
            """
        ),
        ("ok", "error", "refused"),
        ("try",),
    ),
    "raise_from_then_cause": Hostile(
        src(
            """
            try:
                try:
                    1 / 0
                except ZeroDivisionError as e:
                    raise ValueError('v') from e
            except ValueError as v:
                c = v.__cause__
            """
        ),
        ("refused",),
        ("try",),
        7,
        "__cause__",
    ),
    "exception_kept_and_printed": Hostile(
        src(
            """
            try:
                [].pop()
            except IndexError as e:
                err = e
            print(err, repr(err))
            """
        ),
        ("ok",),
        ("try",),
        stdout_has="pop from empty list",
    ),
    "reraised_exception": Hostile(
        "try:\n    1 / 0\nexcept Exception as e:\n    raise e",
        ("error",),
        ("try",),
        (2, 4),
        "ZeroDivisionError",
    ),
    "except_exception_around_an_endless_loop": Hostile(
        "try:\n    while True:\n        pass\nexcept Exception:\n    print('caught')",
        LOOP,
        ("try",),
    ),
    "except_baseexception_around_recursion": Hostile(
        src(
            """
            def f():
                return f()
            try:
                f()
            except BaseException:
                print('caught')
            """
        ),
        ("limit:max_call_depth",),
        ("def", "try"),
    ),
    "except_recursionerror_around_recursion": Hostile(
        src(
            """
            def f(n):
                return f(n + 1)
            try:
                f(0)
            except RecursionError:
                print('caught')
            """
        ),
        ("limit:max_call_depth",),
        ("def", "try"),
    ),
    "bare_except_around_max_statements": Hostile(
        "try:\n    for i in range(10 ** 6):\n        x = i\nexcept:\n    pass\nprint('after')",
        ("limit:max_statements", "limit:max_loop_iterations"),
        ("try",),
    ),
    "bare_except_around_max_seconds": Hostile(
        src(
            """
            x = torch.ones(1000, 1000)
            try:
                for i in range(4000):
                    y = x @ x
            except:
                print('caught')
            """
        ),
        ("limit:max_seconds",),
        ("try",),
    ),
    "finally_loops_forever": Hostile(
        "try:\n    x = 1\nfinally:\n    while True:\n        pass", LOOP, ("try",)
    ),
    "finally_loops_after_a_limit": Hostile(
        "try:\n    while True:\n        pass\nfinally:\n    while True:\n        x = 1",
        LOOP,
        ("try",),
    ),
    "finally_in_every_recursive_frame": Hostile(
        src(
            """
            def f(n):
                try:
                    return f(n + 1)
                finally:
                    while True:
                        pass
            f(0)
            """
        ),
        ("limit:max_call_depth", *LOOP),
        ("def", "try"),
    ),
    "except_around_a_size_limit": Hostile(
        "try:\n    x = torch.ones(100000, 100000)\nexcept Exception as e:\n    print('caught', e)",
        ("limit:max_tensor_elements",),
        ("try",),
    ),
    "except_baseexception_around_a_sequence_limit": Hostile(
        "try:\n    x = [0] * 10 ** 9\nexcept BaseException:\n    print('caught')",
        ("limit:max_sequence_items",),
        ("try",),
    ),
    "except_around_a_runtime_refusal": Hostile(
        "x = torch.ones(2)\ntry:\n    x.data = torch.zeros(2)\nexcept Exception:\n"
        "    print('caught')",
        ("refused",),
        ("try",),
        3,
        "data",
    ),
    "except_importerror_around_import_os": Hostile(
        "try:\n    import os\nexcept ImportError:\n    print('no os')",
        ("refused",),  # OS modules are refused before running (the HTTP contract)
        ("try", "imports"),
    ),
    "huge_exception_message": Hostile(
        "raise ValueError('x' * 10 ** 6)", ("limit:max_string_chars",), ("try",)
    ),
    "long_exception_message_is_cut": Hostile(
        "raise ValueError('x' * 99999)", ("error",), ("try",), 1, "ValueError"
    ),
    "exception_with_huge_star_args": Hostile(
        "raise ValueError(*range(10 ** 6))",
        ("limit:max_sequence_items", "error", "refused"),
        ("try",),
    ),
    "raise_a_non_exception": Hostile("raise print", SAFE, ("try",), 1),
    "raise_systemexit": Hostile("raise SystemExit(0)", SAFE, ("try",), 1),
    "raise_keyboardinterrupt": Hostile("raise KeyboardInterrupt", SAFE, ("try",), 1),
    "raise_memoryerror": Hostile("raise MemoryError('fake')", SAFE, ("try",), 1),
    "raise_stopiteration_at_top": Hostile("raise StopIteration", SAFE, ("try",), 1),
    "learner_exception_class": Hostile(
        "class E(Exception):\n    pass\ntry:\n    raise E('x')\nexcept E as e:\n"
        "    print('caught', e)",
        ("ok", "refused", "error"),
        ("class", "try"),
        1,
    ),
    "repr_raises_inside_an_error_message": Hostile(
        "class A:\n    def __repr__(self):\n        raise ValueError('in repr')\nd = {}\nd[A()]",
        ("error",),
        ("class",),
        (3, 5),
    ),
    "repr_loops_inside_an_error_message": Hostile(
        "class A:\n    def __repr__(self):\n        while True:\n            pass\nd = {}\nd[A()]",
        ("error", *LOOP),
        ("class",),
    ),
    "huge_repr_inside_an_error_message": Hostile(
        "class A:\n    def __repr__(self):\n        return 'x' * 99999\nd = {}\nd[A()]",
        ("error",),
        ("class",),
        (3, 5),
    ),
    # -- generators ----------------------------------------------------------------------------
    "yield_in_a_def": Hostile(
        src(
            """
            def gen():
                i = 0
                while True:
                    yield i
                    i += 1
            for x in gen():
                pass
            """
        ),
        ("refused", *LOOP),
        ("def",),
        4,
    ),
    "genexp_over_a_huge_range_summed": Hostile(
        "x = sum(i for i in range(10 ** 12))", LOOP, ("genexp",)
    ),
    "sum_over_a_huge_range": Hostile("x = sum(range(10 ** 12))", ("limit:*",)),
    "stopiteration_inside_a_genexp": Hostile(
        "def stop():\n    raise StopIteration\nx = list(stop() for _ in range(3))\nprint(x)",
        ("error", "ok"),
        ("def", "try", "genexp", "builtins"),
    ),
    "next_on_an_exhausted_iterator": Hostile(
        "it = iter([])\nnext(it)", ("error",), ("builtins",), 2, "StopIteration"
    ),
    "iter_with_a_sentinel_never_met": Hostile(
        "x = sum(iter(int, 1))", ("refused", "error", "limit:*"), ("builtins",)
    ),
    "any_over_an_endless_c_iterator": Hostile(
        "x = any(iter(int, 1))", ("refused", "error", "limit:*"), ("builtins",)
    ),
    "map_of_a_learner_function_over_a_huge_range": Hostile(
        "def f(v):\n    return v\ny = list(map(f, range(10 ** 9)))",
        ("limit:*",),
        ("def", "builtins"),
    ),
    "map_of_a_builtin_over_a_huge_range": Hostile(
        "y = list(map(abs, range(10 ** 9)))", ("limit:*",), ("builtins",)
    ),
    "filter_of_a_lambda_over_a_huge_range": Hostile(
        "y = sum(filter(lambda v: v % 2, range(10 ** 9)))", ("limit:*",), ("lambda", "builtins")
    ),
    "set_of_a_huge_range": Hostile("s = set(range(10 ** 9))", ("limit:*",), ("builtins",)),
    "sorted_with_a_learner_key_over_max_statements": Hostile(
        "def key(v):\n    return -v\nx = sorted(range(50000), key=key)",
        ("limit:max_statements", "limit:max_seconds"),
        ("def",),
    ),
    "sorted_with_a_recursive_key": Hostile(
        "def key(v):\n    return key(v)\nx = sorted([3, 1, 2], key=key)",
        ("limit:max_call_depth",),
        ("def",),
    ),
    "isinstance_with_a_nested_tuple_of_2_40_leaves": Hostile(
        "t = (str,)\nfor i in range(40):\n    t = (t, t)\nprint(isinstance(1, t))",
        ("refused", "error", "limit:*"),
        ("builtins",),
    ),
    "isinstance_with_a_huge_flat_tuple": Hostile(
        "t = (str,) * 10 ** 6\nprint(isinstance(1, t))",
        ("limit:max_sequence_items",),
        ("builtins",),
    ),
    "dict_comprehension_huge": Hostile(
        "d = {i: i for i in range(10 ** 6)}",
        (*LOOP, "limit:max_sequence_items"),
        ("comprehension",),
    ),
    "nested_list_comprehension_huge": Hostile(
        "x = [[j for j in range(10 ** 5)] for i in range(10 ** 5)]",
        (*LOOP, "limit:max_sequence_items"),
        ("comprehension",),
    ),
    # -- recursion -----------------------------------------------------------------------------
    "huge_recursion": Hostile(
        "def f(n):\n    return f(n + 1)\nf(0)", ("limit:max_call_depth",), ("def",)
    ),
    "mutual_recursion": Hostile(
        "def a(n):\n    return b(n)\ndef b(n):\n    return a(n)\na(1)",
        ("limit:max_call_depth",),
        ("def",),
    ),
    "recursion_through_repr_and_print": Hostile(
        "class A:\n    def __repr__(self):\n        print(self)\n        return 'a'\nprint(A())",
        ("limit:max_call_depth",),
        ("class",),
    ),
    "recursion_through_str": Hostile(
        "class A:\n    def __str__(self):\n        return str(self)\nprint(A())",
        ("limit:max_call_depth",),
        ("class",),
    ),
    "recursion_through_len": Hostile(
        "class A:\n    def __len__(self):\n        return len(self)\nlen(A())",
        ("limit:max_call_depth",),
        ("class",),
    ),
    "recursion_through_getitem": Hostile(
        "class A:\n    def __getitem__(self, i):\n        return self[i + 1]\nA()[0]",
        ("limit:max_call_depth",),
        ("class",),
    ),
    "recursion_through_module_call": Hostile(
        src(
            """
            class Net(nn.Module):
                def forward(self, x):
                    return self(x)
            Net()(torch.ones(1))
            """
        ),
        ("limit:max_call_depth",),
        ("module",),
    ),
    "recursion_through_a_property": Hostile(
        "class A:\n    @property\n    def p(self):\n        return self.p\nprint(A().p)",
        ("limit:max_call_depth",),
        ("class", "decorators"),
    ),
    "lambda_calls_itself_through_a_default_argument": Hostile(
        "box = []\nf = lambda n, box=box: box[0](n + 1)\nbox.append(f)\nf(0)",
        ("limit:max_call_depth",),
        ("lambda",),
    ),
    "y_combinator": Hostile(
        "Y = lambda f: (lambda x: x(x))(lambda x: f(lambda *a: x(x)(*a)))\n"
        "count = Y(lambda r: lambda n: r(n + 1))\ncount(0)",
        ("limit:max_call_depth", "limit:max_functions"),
        ("lambda",),
    ),
    "init_makes_another_instance": Hostile(
        "class A:\n    def __init__(self):\n        self.child = A()\nA()",
        ("limit:max_call_depth", "limit:max_objects"),
        ("class",),
    ),
    # -- learner protocols, and a Dataset whose __len__ lies ------------------------------------
    "iter_returns_self_and_next_never_stops": Hostile(
        ENDLESS + "for x in It():\n    pass", LOOP, ("class",)
    ),
    "list_of_an_endless_iterator": Hostile(
        ENDLESS + "x = list(It())", ("limit:*",), ("class", "builtins")
    ),
    "tensor_from_an_endless_iterator": Hostile(
        ENDLESS + "x = torch.tensor(It())", ("error", "refused", "limit:*"), ("class",)
    ),
    "iter_returns_a_non_iterator": Hostile(
        "class A:\n    def __iter__(self):\n        return 5\nfor x in A():\n    pass",
        ("error",),
        ("class",),
        4,
        "iter",
    ),
    "getitem_iteration_never_ends": Hostile(
        "class D:\n    def __getitem__(self, i):\n        return i\nfor x in D():\n    pass",
        LOOP,
        ("class",),
    ),
    "sequence_with_a_lying_len_to_torch": Hostile(
        "class S:\n    def __len__(self):\n        return 10 ** 9\n    def __getitem__(self, i):\n"
        "        return 1\nx = torch.tensor(S())",
        ("error", "refused", "limit:*"),
        ("class",),
    ),
    "sequence_with_a_lying_len_to_numpy": Hostile(
        "class S:\n    def __len__(self):\n        return 10 ** 9\n    def __getitem__(self, i):\n"
        "        return 1\nx = np.array(S())",
        ("error", "refused", "limit:*"),
        ("class",),
    ),
    "sequence_with_a_lying_len_to_list": Hostile(
        "class S:\n    def __len__(self):\n        return 10 ** 12\n    def __getitem__(self, i):\n"
        "        if i > 2:\n            raise IndexError(i)\n        return i\nprint(list(S()))",
        ("ok", "error", "limit:*"),
        ("class", "try", "builtins"),
    ),
    "dataset_len_huge_through_a_dataloader": Hostile(
        dataset(
            "10 ** 12", "torch.tensor(1.0)", "for b in DataLoader(D(), batch_size=2):\n    pass"
        ),
        ("error", "limit:max_sequence_items", *LOOP),
        ("dataset",),
    ),
    "dataset_len_huge_shuffled": Hostile(
        dataset(
            "10 ** 12",
            "torch.tensor(1.0)",
            "for b in DataLoader(D(), batch_size=2, shuffle=True):\n    pass",
        ),
        ("limit:max_tensor_elements", "limit:max_sequence_items", "error", *LOOP),
        ("dataset",),
    ),
    "dataset_len_tensor_huge_shuffled": Hostile(
        dataset(
            "torch.tensor(10 ** 12)",
            "torch.tensor(1.0)",
            "for b in DataLoader(D(), batch_size=2, shuffle=True):\n    pass",
        ),
        ("limit:max_tensor_elements", "limit:max_sequence_items", "error", *LOOP),
        ("dataset",),
    ),
    "dataset_len_negative": Hostile(
        dataset("-1", "1", "print(len(D()))"), ("error",), ("dataset",), 7, r"len|>= 0"
    ),
    "dataset_len_float": Hostile(
        dataset("2.5", "1", "print(len(D()))"), ("error",), ("dataset",), 7, "float|integer"
    ),
    "dataset_len_two_element_tensor": Hostile(
        dataset("torch.tensor([3, 4])", "1", "print(len(D()))"), ("error",), ("dataset",), 7
    ),
    "dataset_len_past_an_index": Hostile(
        dataset("10 ** 30", "1", "print(len(D()))"),
        ("error", "limit:max_sequence_items"),
        ("dataset",),
        7,
    ),
    "dataset_len_string": Hostile(
        dataset("'5'", "1", "for b in DataLoader(D()):\n    pass"),
        ("error", "limit:max_sequence_items"),
        ("dataset",),
    ),
    "random_split_of_a_lying_len": Hostile(
        dataset("2 * 10 ** 9", "i", "a, b = random_split(D(), [10 ** 9, 10 ** 9])").replace(
            "import Dataset, DataLoader", "import Dataset, DataLoader, random_split"
        ),
        ("limit:max_tensor_elements", "limit:max_sequence_items", "error"),
        ("dataset",),
    ),
    "getitem_returns_self_to_a_dataloader": Hostile(
        dataset("4", "self", "for b in DataLoader(D(), batch_size=2):\n    print(b)"),
        ("error",),
        ("dataset",),
    ),
    "getitem_returns_huge_tensors_to_a_dataloader": Hostile(
        dataset(
            "100",
            "torch.ones(1000, 1000)",
            "for b in DataLoader(D(), batch_size=100):\n    print(b.shape)",
        ),
        ("limit:max_tensor_elements", "limit:max_total_bytes"),
        ("dataset",),
    ),
    "getitem_gets_interpreter_objects_as_indices": Hostile(
        dataset(
            "2",
            "str(i)",
            "for b in DataLoader(D(), sampler=[print, torch, len], batch_size=3):\n    print(b)",
        ),
        ("ok", "error", "refused"),
        ("dataset",),
    ),
    "dataloader_with_learner_callables_and_workers": Hostile(
        dataset(
            "4",
            "i",
            "loader = DataLoader(D(), batch_size=2, collate_fn=lambda b: b, num_workers=4, "
            "worker_init_fn=print)\nfor b in loader:\n    print(b)",
        ),
        ("ok", "error", "refused"),
        ("dataset", "lambda"),
    ),
    "dataloader_over_a_huge_sampler": Hostile(
        dataset("2", "i", "for b in DataLoader(D(), sampler=range(10 ** 12)):\n    pass"),
        ("error", "refused", *LOOP),
        ("dataset",),
    ),
    # -- nn.Module internals -------------------------------------------------------------------
    "module_private_modules": Hostile(
        NET + "print(Net()._modules)", ("refused",), ("module",), 7, "_modules"
    ),
    "module_private_parameters_write": Hostile(
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self._parameters = {}\nNet()",
        ("refused",),
        ("module",),
        4,
        "_parameters",
    ),
    "module_forward_hook": Hostile(
        NET + "n = Net()\nn.register_forward_hook(print)\nn(torch.ones(2))", SAFE, ("module",)
    ),
    "module_apply_print": Hostile(
        NET + "Net().apply(print)", ("ok", "error", "refused"), ("module",)
    ),
    "module_forward_replaced_by_print": Hostile(
        NET + "n = Net()\nn.forward = print\nn(torch.ones(2))",
        ("ok", "error", "refused"),
        ("module",),
    ),
    "module_without_super_init": Hostile(
        "class Net(nn.Module):\n    def __init__(self):\n        self.l = nn.Linear(2, 2)\nNet()",
        ("error",),
        ("module",),
        (3, 4),
        "__init__",
    ),
    "module_huge_parameter": Hostile(
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.w = nn.Parameter(torch.ones(10 ** 7))\nNet()",
        ("limit:max_tensor_elements",),
        ("module",),
    ),
    # -- forbidden definitions: dunders, metaclasses, keywords, decorators, bases ----------------
    **{
        f"defines_{name.strip('_')}": Hostile(
            f"class A:\n    def {name}(self, *args):\n        return 1\na = A()",
            ("refused",),
            ("class",),
            2,
            re.escape(name),
        )
        for name in FORBIDDEN_DUNDERS
    },
    "module_defines_setattr": Hostile(
        "class Net(nn.Module):\n    def __setattr__(self, name, value):\n        pass\nNet()",
        ("refused",),
        ("module",),
        2,
        "__setattr__",
    ),
    "classmethod_torch_function": Hostile(
        src(
            """
            class T:
                @classmethod
                def __torch_function__(cls, func, types, args=(), kwargs=None):
                    return func
            torch.add(T(), 1)
            """
        ),
        ("refused",),
        ("class",),
        (2, 3),
        "__torch_function__",
    ),
    "module_level_getattr": Hostile(
        "def __getattr__(name):\n    return print", ("refused",), ("def",), 1, "__getattr__"
    ),
    "metaclass_type": Hostile(
        "class A(metaclass=type):\n    pass", ("refused",), ("class",), 1, "metaclass"
    ),
    "metaclass_learner": Hostile(
        "class M(type):\n    pass\nclass A(metaclass=M):\n    pass",
        ("refused",),
        ("class",),
        (1, 3),
    ),
    "class_keyword": Hostile("class A(object, flag=1):\n    pass", ("refused",), ("class",), 1),
    "base_int": Hostile("class A(int):\n    pass\nA()", SAFE, ("class",), 1),
    "base_tensor": Hostile("class T(torch.Tensor):\n    pass\nT()", SAFE, ("class",), 1),
    "base_multiple": Hostile(
        "class B:\n    pass\nclass C:\n    pass\nclass A(B, C):\n    pass", SAFE, ("class",), 5
    ),
    "base_from_a_call": Hostile("class A(type(torch.ones(1))):\n    pass", SAFE, ("class",), 1),
    "base_print": Hostile("class A(print):\n    pass", SAFE, ("class",), 1),
    "base_dataloader": Hostile(
        "from torch.utils.data import DataLoader\nclass L(DataLoader):\n    pass",
        SAFE,
        ("class", "imports"),
        2,
    ),
    "decorator_functools_wraps": Hostile(
        "import functools\n@functools.wraps(print)\ndef f():\n    pass",
        ("refused",),
        ("def",),
        (2, 3),
    ),
    "decorator_learner_function": Hostile(
        "def deco(f):\n    return f\n@deco\ndef g():\n    return 1",
        ("refused",),
        ("def",),
        (3, 4),
        "decorator|deco",
    ),
    "decorator_lambda": Hostile(
        "@(lambda f: f)\ndef g():\n    pass", ("refused",), ("def",), (1, 2)
    ),
    "decorator_on_a_class": Hostile("@print\nclass A:\n    pass", ("refused",), ("class",), (1, 2)),
    "decorator_property_setter": Hostile(
        "class A:\n    @property\n    def p(self):\n        return 1\n    @p.setter\n"
        "    def p(self, v):\n        pass",
        ("refused", "ok"),
        ("class",),
        (5, 6),
    ),
    "decorator_setter_of_a_learner_object": Hostile(
        src(
            """
            class A:
                def setter(self, f):
                    print('decorated', f)
                    return print
            a = A()
            class B:
                @a.setter
                def p(self, v):
                    pass
            B.p('called')
            """
        ),
        ("refused", "error"),
        ("class",),
        (7, 8),
    ),
    "decorator_no_grad_without_call": Hostile(
        "@torch.no_grad\ndef f():\n    return 1\nprint(f())", ("refused", "ok"), ("def",)
    ),
    "decorator_no_grad_really_turns_grad_off": Hostile(
        "@torch.no_grad()\ndef f(x):\n    return x * 2\nprint(f(torch.ones(1, requires_grad=True))"
        ".requires_grad)",
        ("ok",),
        ("def", "decorators"),
        stdout_has="False",
    ),
    "staticmethod_at_module_level": Hostile(
        "@staticmethod\ndef f():\n    return 1\nprint(f())", ("refused", "ok", "error"), ("def",)
    ),
    "classmethod_walks_subclasses": Hostile(
        "class A:\n    @classmethod\n    def m(cls):\n        return cls.__subclasses__()\nA.m()",
        ("refused",),
        ("class",),
        4,
        "__subclasses__",
    ),
    # -- imports as written --------------------------------------------------------------------
    "import_os_inside_a_function": Hostile(
        "def f():\n    import os\n    return os\nprint(f())",
        ("refused",),
        ("def", "imports"),
        2,
        "ImportError|os",
    ),
    "from_os_import_system": Hostile(
        f"from os import system\nsystem('touch {M}')",
        ("refused",),
        ("imports",),
        1,
        "ImportError|os",
    ),
    "dunder_import": Hostile(
        f"__import__('os').system('touch {M}')", ("refused",), line=1, mentions="__import__"
    ),
    "dunder_import_inside_a_function": Hostile(
        "def f():\n    return __import__('os')\nf()", ("refused",), ("def",), 2, "__import__"
    ),
    "importlib": Hostile(
        "import importlib\nm = importlib.import_module('os')", SAFE, ("imports",), (1, 2)
    ),
    "sys_modules": Hostile("import sys\nprint(sys.modules['os'])", SAFE, ("imports",), (1, 2)),
    "import_builtins": Hostile(
        f"import builtins\nbuiltins.open({M!r}, 'w')", SAFE, ("imports",), (1, 2)
    ),
    "from_os_import_star": Hostile("from os import *", SAFE, ("imports",), 1),
    "relative_import": Hostile("from . import config\nprint(config)", SAFE, ("imports",), 1),
    "import_the_app": Hostile(
        "import app.sandbox.interpreter as i\nprint(i)", SAFE, ("imports",), 1
    ),
    "from_torch_import_c": Hostile("from torch import _C\nprint(_C)", SAFE, ("imports",), 1),
    "from_torch_import_multiprocessing": Hostile(
        "from torch import multiprocessing\nprint(multiprocessing)", SAFE, ("imports",), 1
    ),
    "from_torch_hub_import_load": Hostile(
        "from torch.hub import load\nload('a', 'b')", SAFE, ("imports",), 1
    ),
    "from_torch_serialization_import_pickle": Hostile(
        "from torch.serialization import pickle\nprint(pickle)", SAFE, ("imports",), 1
    ),
    "import_numpy_ctypeslib": Hostile(
        "import numpy.ctypeslib as c\nprint(c)", SAFE, ("imports",), 1
    ),
    "imported_modules_print_without_paths": Hostile(
        "import torch.utils.data as d\nimport math\nprint(d, d.DataLoader, math)",
        ("ok", "error"),
        ("imports",),
    ),
    # -- files without a filesystem ------------------------------------------------------------
    "torch_save_a_lambda": Hostile("torch.save(lambda x: x, 'f.pth')", SAFE, ("lambda", "save"), 1),
    "torch_save_a_learner_function": Hostile(
        "def f():\n    return 1\ntorch.save(f, 'f.pth')", SAFE, ("def", "save"), 3
    ),
    "torch_save_a_malicious_reduce": Hostile(
        src(
            f"""
            class Evil:
                def __reduce__(self):
                    return (print, ('touch {M}',))
            torch.save(Evil(), 'evil.pth')
            x = torch.load('evil.pth')
            """
        ),
        ("refused",),
        ("class",),
        2,
        "__reduce__",
    ),
    "torch_load_of_a_whole_model_fails_as_in_pytorch": Hostile(
        NET + "torch.save(Net(), 'model.pth')\nm = torch.load('model.pth')",
        ("error",),
        ("module", "save"),
        8,
        "weights_only|Weights only",
    ),
    "torch_load_weights_only_false": Hostile(
        "torch.save({'a': torch.ones(1)}, 'a.pth')\nx = torch.load('a.pth', weights_only=False)",
        ("refused",),
        ("save",),
        2,
        "weights_only",
    ),
    "torch_load_weights_only_false_from_a_variable": Hostile(
        "w = False\ntorch.save({'a': torch.ones(1)}, 'a.pth')\n"
        "x = torch.load('a.pth', weights_only=w)",
        SAFE,
        ("save",),
        3,
        "weights_only",
    ),
    "torch_load_weights_only_false_from_kwargs": Hostile(
        "kw = {'weights_only': False}\ntorch.save({'a': torch.ones(1)}, 'a.pth')\n"
        "x = torch.load('a.pth', **kw)",
        SAFE,
        ("save",),
        3,
    ),
    "torch_load_of_a_crafted_pickle_written_with_open": Hostile(
        f"payload = {PICKLE}\nf = open('evil.pth', 'wb')\nf.write(payload)\nf.close()\n"
        "x = torch.load('evil.pth')",
        SAFE,
        ("open", "save"),
    ),
    "torch_load_of_a_crafted_pickle_weights_only_false": Hostile(
        f"payload = {PICKLE}\nf = open('evil.pth', 'wb')\nf.write(payload)\nf.close()\n"
        "x = torch.load('evil.pth', weights_only=False)",
        SAFE,
        ("open", "save"),
    ),
    "torch_load_of_a_crafted_pickle_written_as_text": Hostile(
        f"payload = {PICKLE_TEXT}\nf = open('evil.pth', 'w')\nf.write(payload)\nf.close()\n"
        "x = torch.load('evil.pth')",
        ("error",),
        ("open", "save"),
        5,
    ),
    "torch_load_of_a_crafted_pickle_written_as_encoded_text": Hostile(
        f"payload = {PICKLE_TEXT}\nf = open('evil.pth', 'wb')\nf.write(payload.encode())\n"
        "f.close()\nx = torch.load('evil.pth', weights_only=True)",
        SAFE,
        ("open", "save"),
    ),
    "np_load_allow_pickle_of_a_crafted_pickle": Hostile(
        f"f = open('evil.npy', 'w')\nf.write({PICKLE_TEXT})\nf.close()\n"
        "x = np.load('evil.npy', allow_pickle=True)",
        SAFE,
        ("open", "save"),
        4,
    ),
    "np_load_of_a_crafted_pickle": Hostile(
        f"f = open('evil.npy', 'w')\nf.write({PICKLE_TEXT})\nf.close()\nx = np.load('evil.npy')",
        SAFE,
        ("open", "save"),
        4,
    ),
    "torch_load_of_bytes": Hostile(f"x = torch.load({PICKLE})", SAFE, ("save",), 1),
    "torch_load_of_a_learner_file_object": Hostile(
        src(
            f"""
            class F:
                def read(self, n=-1):
                    return {PICKLE}
                def readline(self):
                    return b''
                def seek(self, *args):
                    return 0
                def tell(self):
                    return 0
            x = torch.load(F())
            """
        ),
        SAFE,
        ("class", "save"),
    ),
    "torch_load_with_a_callable_map_location": Hostile(
        "torch.save({'a': torch.ones(1)}, 'a.pth')\n"
        "x = torch.load('a.pth', map_location=lambda s, loc: print(s))",
        ("ok", "error", "refused"),
        ("save", "lambda"),
    ),
    "torch_load_with_a_pickle_module": Hostile(
        "torch.save({'a': torch.ones(1)}, 'a.pth')\nx = torch.load('a.pth', pickle_module=torch)",
        SAFE,
        ("save",),
        2,
    ),
    "torch_save_with_a_pickle_module": Hostile(
        "torch.save(torch.ones(1), 'a.pth', pickle_module=np)", SAFE, ("save",), 1
    ),
    "torch_save_to_disk_paths": Hostile(
        f"torch.save(torch.ones(1), {M!r})\ntorch.save(torch.ones(1), '../{NAME}')\n"
        f"torch.save(torch.ones(1), '../../{NAME}')",
        ("ok", "error", "refused"),
        ("save",),
    ),
    "torch_save_to_a_learner_file_object": Hostile(
        "class F:\n    def write(self, b):\n        print(len(b))\n        return len(b)\n"
        "    def flush(self):\n        pass\ntorch.save(torch.ones(1), F())",
        ("ok", "error", "refused"),
        ("class", "save"),
    ),
    "np_load_allow_pickle": Hostile(
        "torch.save({'a': 1}, 'a.npy')\nx = np.load('a.npy', allow_pickle=True)", SAFE, ("save",), 2
    ),
    "open_etc_passwd": Hostile(
        "print(open('/etc/passwd').read())", SAFE, ("open",), 1, stdout_lacks=("root:",)
    ),
    "open_app_config_relative": Hostile(
        "print(open('../../app/config.py').read())",
        SAFE,
        ("open",),
        1,
        stdout_lacks=("program_max",),
    ),
    "open_app_config_through_the_data_folder": Hostile(
        "print(open('data/wine/../../app/config.py').read())",
        SAFE,
        ("open",),
        1,
        stdout_lacks=("program_max",),
    ),
    "open_app_config_absolute": Hostile(
        f"print(open({str(ROOT / 'app' / 'config.py')!r}).read())",
        SAFE,
        ("open",),
        1,
        stdout_lacks=("program_max",),
    ),
    "open_proc_environ": Hostile("print(open('/proc/self/environ').read())", SAFE, ("open",), 1),
    "open_stdin_descriptor": Hostile("print(open(0).read())", SAFE, ("open",), 1),
    "open_a_worker_descriptor": Hostile("print(open(3, 'rb').read(10))", SAFE, ("open",), 1),
    "open_stdout_descriptor_for_writing": Hostile("open(1, 'w').write('x')", SAFE, ("open",), 1),
    "open_the_wine_data_for_writing": Hostile(
        "f = open('data/wine/wine.csv', 'w')\nf.write('x')", SAFE, ("open",), 1
    ),
    "open_the_wine_data_for_appending": Hostile(
        "f = open('data/wine/wine.csv', 'a')\nf.write('x')", SAFE, ("open",), 1
    ),
    "open_the_wine_data_read_write": Hostile(
        "f = open('data/wine/wine.csv', 'r+')\nf.write('x')", SAFE, ("open",), 1
    ),
    "write_to_a_file_opened_for_reading": Hostile(
        "f = open('data/wine/wine.csv')\nf.write('x')", SAFE, ("open",), 2
    ),
    "open_with_an_opener": Hostile(
        "f = open('data/wine/wine.csv', opener=print)", SAFE, ("open",), 1
    ),
    "open_a_disk_path_for_writing": Hostile(
        f"f = open({M!r}, 'w')\nf.write('x')\nf.close()", SAFE, ("open",), 1
    ),
    "write_more_than_max_file_bytes_with_open": Hostile(
        "f = open('big.txt', 'w')\nfor i in range(100):\n    f.write('x' * 99999)",
        ("limit:max_file_bytes",),
        ("open",),
    ),
    "open_more_than_max_files": Hostile(
        "for i in range(10):\n    f = open(f'f{i}.txt', 'w')\n    f.write('x')\n    f.close()",
        ("limit:max_files",),
        ("open",),
    ),
    "open_a_folder": Hostile("print(open('data').read())", SAFE, ("open",), 1),
    "read_the_wine_data_a_thousand_times": Hostile(
        "s = open('data/wine/wine.csv').read() * 1000", ("limit:max_string_chars",), ("open",)
    ),
    "np_loadtxt_etc_passwd": Hostile(
        "x = np.loadtxt('/etc/passwd', dtype=str)\nprint(x)",
        SAFE,
        ("open",),
        1,
        stdout_lacks=("root:",),
    ),
    "np_genfromtxt_app_config": Hostile(
        "x = np.genfromtxt('../../app/config.py', dtype=str, delimiter='|')\nprint(x)",
        SAFE,
        ("open",),
        1,
        stdout_lacks=("program_max",),
    ),
    "np_loadtxt_a_url": Hostile("x = np.loadtxt('http://127.0.0.1:9/x.csv')", SAFE, ("open",), 1),
    "np_genfromtxt_with_a_print_converter": Hostile(
        "x = np.genfromtxt('data/wine/wine.csv', delimiter=',', skip_header=1, "
        "converters={0: print})",
        ("ok", "error", "refused"),
        ("open",),
    ),
    "save_over_max_file_bytes": Hostile(
        "torch.save(torch.ones(100000), 'big.pth')", ("limit:max_file_bytes",), ("save",)
    ),
    "save_over_max_file_bytes_in_all": Hostile(
        "for i in range(3):\n    torch.save(torch.ones(20000), f'f{i}.pth')",
        ("limit:max_file_bytes",),
        ("save",),
    ),
    "save_a_nested_object_over_max_file_bytes": Hostile(
        "torch.save({'a': list(range(90000))}, 'd.pth')",
        ("limit:max_file_bytes",),
        ("save",),
    ),
    "save_more_than_max_files": Hostile(
        "for i in range(10):\n    torch.save(torch.ones(1), f'f{i}.pth')",
        ("limit:max_files",),
        ("save",),
    ),
    # -- figures -------------------------------------------------------------------------------
    "more_than_max_figures": Hostile(
        "import matplotlib.pyplot as plt\nfor i in range(10):\n    plt.figure()\n"
        "    plt.plot([1, 2])",
        ("limit:max_figures",),
        ("plot",),
    ),
    "figsize_1000_by_1000": Hostile(
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(1000, 1000))\nplt.plot([1, 2])\n"
        "plt.show()",
        ("limit:max_figure_pixels",),
        ("plot",),
    ),
    "subplots_figsize_1000_by_1000": Hostile(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(1000, 1000))",
        ("limit:max_figure_pixels",),
        ("plot",),
    ),
    "figure_dpi_huge": Hostile(
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(4, 4), dpi=100000)\nplt.show()",
        ("limit:max_figure_pixels",),
        ("plot",),
    ),
    "rcparams_dpi_huge": Hostile(
        "import matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 100000\nplt.figure()\n"
        "plt.plot([1])\nplt.show()",
        ("limit:max_figure_pixels", "refused", "error"),
        ("plot",),
    ),
    "figure_resized_after_creation": Hostile(
        "import matplotlib.pyplot as plt\nfig = plt.figure()\nfig.set_size_inches(1000, 1000)\n"
        "plt.show()",
        ("limit:max_figure_pixels", "refused", "error"),
        ("plot",),
    ),
    "savefig_dpi_huge": Hostile(
        "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.savefig('p.png', dpi=100000)",
        ("limit:max_figure_pixels", "limit:max_file_bytes", "refused", "error"),
        ("plot",),
    ),
    "savefig_to_a_disk_path": Hostile(
        f"import matplotlib.pyplot as plt\nplt.plot([1])\nplt.savefig({M + '.png'!r})",
        ("ok", "error", "refused"),
        ("plot",),
    ),
    "subplots_grid_of_a_million_axes": Hostile(
        "import matplotlib.pyplot as plt\nfig, axes = plt.subplots(1000, 1000)",
        ("refused", "error", "limit:*"),
        ("plot",),
    ),
    "text_with_a_huge_font": Hostile(
        "import matplotlib.pyplot as plt\nplt.text(0.5, 0.5, 'x', fontsize=10 ** 6)\nplt.show()",
        ANY,
        ("plot",),
    ),
    "deeply_nested_mathtext": Hostile(
        "import matplotlib.pyplot as plt\nplt.title('$' + '{' * 500 + 'x' + '}' * 500 + '$')\n"
        "plt.show()",
        ANY,
        ("plot",),
    ),
    "switch_the_backend": Hostile(
        "import matplotlib.pyplot as plt\nplt.switch_backend('TkAgg')\nplt.plot([1])\nplt.show()",
        ("ok", "error", "refused"),
        ("plot",),
    ),
    "plot_a_huge_range": Hostile(
        "import matplotlib.pyplot as plt\nplt.plot(range(10 ** 9))", ("limit:*",), ("plot",)
    ),
    # -- TensorBoard ---------------------------------------------------------------------------
    "summarywriter_log_dir_in_tmp": Hostile(
        "from torch.utils.tensorboard import SummaryWriter\n"
        f"w = SummaryWriter(log_dir={M + '-tb'!r})\nw.add_scalar('a', 1.0, 0)\nw.close()",
        ("ok", "error", "refused"),
        ("tensorboard",),
    ),
    "summarywriter_log_dir_above": Hostile(
        "from torch.utils.tensorboard import SummaryWriter\n"
        f"w = SummaryWriter(log_dir='../{NAME}-tb')\nw.add_scalar('a', 1.0, 0)\n"
        "print(w.log_dir)\nw.close()",
        ("ok", "error", "refused"),
        ("tensorboard",),
    ),
    "summarywriter_huge_text": Hostile(
        "from torch.utils.tensorboard import SummaryWriter\nw = SummaryWriter()\n"
        "w.add_text('t', 'x' * 10 ** 6)",
        ("limit:max_string_chars",),
        ("tensorboard",),
    ),
    "summarywriter_image_over_max_file_bytes": Hostile(
        "from torch.utils.tensorboard import SummaryWriter\nw = SummaryWriter()\n"
        "w.add_image('i', torch.rand(3, 300, 300))\nw.close()",
        ("limit:max_file_bytes",),
        ("tensorboard",),
    ),
    "summarywriter_endless_scalars": Hostile(
        "from torch.utils.tensorboard import SummaryWriter\nw = SummaryWriter()\n"
        "for i in range(100000):\n    w.add_scalar('a', 1.0, i)",
        (*LOOP, "limit:max_file_bytes"),
        ("tensorboard",),
    ),
    "summarywriter_graph_of_a_learner_module": Hostile(
        "from torch.utils.tensorboard import SummaryWriter\n"
        + NET
        + "w = SummaryWriter()\nw.add_graph(Net(), torch.ones(1, 2))\nw.close()",
        ("ok", "error", "refused"),
        ("tensorboard", "module"),
    ),
    # -- functions, classes and objects made in a loop -----------------------------------------
    "many_functions_in_a_loop": Hostile(
        "for i in range(1000):\n    def f():\n        return i", ("limit:max_functions",), ("def",)
    ),
    "many_lambdas_in_a_loop": Hostile(
        "fs = []\nfor i in range(1000):\n    fs.append(lambda: i)",
        ("limit:max_functions",),
        ("lambda",),
    ),
    "many_lambdas_in_a_comprehension": Hostile(
        "fs = [lambda: i for i in range(1000)]",
        ("limit:max_functions",),
        ("lambda", "comprehension"),
    ),
    "a_nested_def_made_at_every_call": Hostile(
        "def outer():\n    def inner():\n        return 1\n    return inner()\n"
        "for i in range(1000):\n    outer()",
        ("limit:max_functions",),
        ("def",),
    ),
    "many_classes_in_a_loop": Hostile(
        "for i in range(100):\n    class A:\n        pass", ("limit:max_classes",), ("class",)
    ),
    "many_objects_in_a_loop": Hostile(
        "class A:\n    pass\nfor i in range(2000):\n    a = A()", ("limit:max_objects",), ("class",)
    ),
    "many_objects_in_a_comprehension": Hostile(
        "class A:\n    pass\nxs = [A() for i in range(2000)]",
        ("limit:max_objects",),
        ("class", "comprehension"),
    ),
    "many_modules_in_a_loop": Hostile(
        "class Net(nn.Module):\n    pass\nfor i in range(2000):\n    n = Net()",
        ("limit:max_objects",),
        ("module",),
    ),
    # -- formatting learner objects ------------------------------------------------------------
    "fstring_repr_returns_a_non_string": Hostile(
        "class A:\n    def __repr__(self):\n        return 5\nprint(f'{A()!r}')",
        ("error",),
        ("class",),
        (3, 4),
        "non-string|str",
    ),
    "fstring_repr_returns_a_huge_string": Hostile(
        "class A:\n    def __repr__(self):\n        return 'x' * 10 ** 6\ns = f'{A()!r}'",
        ("limit:max_string_chars",),
        ("class",),
    ),
    "str_returns_none": Hostile(
        "class A:\n    def __str__(self):\n        return None\nprint(A())",
        ("error",),
        ("class",),
        (3, 4),
        "non-string|str",
    ),
    "format_width_on_a_learner_object": Hostile(
        "class A:\n    def __str__(self):\n        return 'a'\ns = f'{A():>{10 ** 9}}'",
        SAFE,
        ("class",),
        4,
    ),
    "repr_loops_when_the_object_is_recorded": Hostile(
        "class A:\n    def __repr__(self):\n        while True:\n            pass\na = A()\nx = 1",
        ("ok", *LOOP),
        ("class",),
    ),
    # -- scikit-learn and torchvision ----------------------------------------------------------
    "make_classification_huge": Hostile(
        "from sklearn.datasets import make_classification\n"
        "X, y = make_classification(n_samples=10 ** 9)",
        ("limit:*",),
        ("sklearn",),
    ),
    "fetch_openml_downloads": Hostile(
        "from sklearn.datasets import fetch_openml\nX = fetch_openml('mnist_784')",
        SAFE,
        ("sklearn",),
        (1, 2),
    ),
    "load_files_from_etc": Hostile(
        "from sklearn.datasets import load_files\nx = load_files('/etc')",
        SAFE,
        ("sklearn",),
        (1, 2),
    ),
    "torchvision_dataset_download_to_disk": Hostile(
        f"from torchvision import datasets\nd = datasets.MNIST(root={M!r}, download=True)",
        SAFE,
        ("imports",),
        (1, 2),
    ),
    "transforms_lambda_walks_a_class": Hostile(
        "import torchvision.transforms as T\nt = T.Lambda(lambda x: x.__class__)",
        ("refused",),
        ("imports", "lambda"),
        line=2,
        mentions="__class__",
    ),
}


@dataclass(frozen=True)
class Outcome:
    """What one program's answer was, reduced to what the assertions need."""

    kind: str  # "refused" | "limit" | "error" | "ok"
    status: int
    line: int | None
    message: str  # the refusal's detail or the error's message
    limit: str | None
    stdout: str
    body: dict[str, Any]
    text: str
    seconds: float

    def label(self) -> str:
        return f"limit:{self.limit}" if self.kind == "limit" else self.kind


def _outcome(response: Any, seconds: float) -> Outcome:
    body = response.json()
    if response.status_code == 422:
        limit = body.get("limit")
        return Outcome(
            "limit" if limit else "refused",
            422,
            body.get("line"),
            str(body.get("detail", "")),
            limit,
            "",
            body,
            json.dumps(body, ensure_ascii=False),
            seconds,
        )
    # Decoded: the answer's own JSON escapes "<" (it is safe to put in a page).
    text = json.dumps(body, ensure_ascii=False)
    printed = "".join(step.get("stdout", "") for step in body.get("steps", []))
    printed += body.get("stdout_after", "")
    error = body.get("error")
    if error:
        return Outcome(
            "error", 200, error.get("line"), str(error["message"]), None, printed, body, text,
            seconds,
        )  # fmt: skip
    return Outcome("ok", 200, None, "", None, printed, body, text, seconds)


def _disk_traces() -> list[Path]:
    """Files or folders named after this module's marker, wherever a program might have put one."""
    places = {MARKER.parent, Path.cwd(), Path.cwd().parent, ROOT, ROOT.parent, ROOT / "data"}
    return [path for place in places if place.is_dir() for path in place.glob(f"{NAME}*")]


def _shipped_data() -> dict[str, str]:
    """Digests of the data files a program may read, so a write to one would show."""
    import sklearn

    files = [*ROOT.glob("app/**/*.csv"), *ROOT.glob("data/**/*.csv")]
    files += Path(sklearn.__file__).parent.glob("datasets/data/wine_data.csv")
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("sandbox-hostile") / "data"
    return Settings(
        data_dir=data,
        warm_lessons=False,
        program_workers=2,
        program_queue_seconds=60.0,
        program_max_per_minute=100_000,  # hundreds of programs from one learner, by design
        **SETTINGS,
    )


@pytest.fixture(scope="module")
def client(app_settings: Settings) -> Iterator[TestClient]:
    """One app for the module, on a fresh pool of two workers that inherited SECRET."""
    configure_pool(size=2, wait_seconds=60.0)
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as test_client:
        yield test_client
    shutdown_pool()
    for path in _disk_traces():  # a failed test's traces, so they do not outlive it
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _probe(code: str, limits: SandboxLimits) -> str | None:
    """What a probe printed, or None when it did not run to its end."""
    try:
        answer = run_program_isolated(code, limits)
    except SandboxRefused:
        return None
    if answer["error"] is not None:
        return None
    return "".join(step["stdout"] for step in answer["steps"]) + answer["stdout_after"]


@pytest.fixture(scope="module")
def features(client: TestClient, app_settings: Settings) -> frozenset[str]:
    """The issue-13 features this engine runs already (each probe prints what Python prints).

    Each probe runs on both workers at once, with time to spare: a worker imports scikit-learn,
    matplotlib and TensorBoard on first use, which must not count against the hostile programs'
    short max_seconds.
    """
    limits = replace(sandbox_limits(app_settings), max_seconds=120.0)
    running = set()
    with ThreadPoolExecutor(2) as both:
        for name, (code, printed) in PROBES.items():
            outputs = list(both.map(lambda text: _probe(text, limits), [code, code]))
            if all(out is not None and printed in out for out in outputs):
                running.add(name)
    return frozenset(running)


@pytest.fixture(scope="module")
def shipped(client: TestClient) -> Iterator[dict[str, str]]:
    """The data files' digests before the module's programs ran; checked again after them."""
    before = _shipped_data()
    runs_before = {place: (place / "runs").exists() for place in (Path.cwd(), ROOT)}
    yield before
    assert _shipped_data() == before, "a program changed a shipped data file"
    for place, existed in runs_before.items():
        assert (place / "runs").exists() == existed, f"a program wrote {place / 'runs'} to disk"


def _leaks(text: str, code: str, allow: tuple[str, ...]) -> list[str]:
    for own in allow:
        text = text.replace(own, "")
    return [
        found.group(0)
        for pattern in LEAKS
        if (found := pattern.search(text)) and not pattern.search(code)
    ]


def _saved_bytes(body: dict[str, Any]) -> list[bytes]:
    """The files an answer offers for download, decoded (a pickle could name the server's code)."""
    out = []
    for item in body.get("files", []) or []:
        try:
            out.append(base64.b64decode(item.get("base64", ""), validate=False))
        except (binascii.Error, ValueError):
            out.append(b"")
    return out


def check_safety(client: TestClient, case: Hostile, outcome: Outcome) -> None:
    """What must hold for every program, whatever its outcome."""
    what = f"{outcome.label()} {outcome.message[:300]!r}"
    assert outcome.status in (200, 422), (outcome.status, outcome.text[:500])
    assert outcome.seconds < HANG_SECONDS, f"took {outcome.seconds:.1f} s: {what}"
    assert client.get("/healthz").json() == {"status": "ok"}
    assert not _disk_traces(), f"the program wrote {_disk_traces()} to disk"
    assert SECRET not in outcome.text, "the server's environment leaked"
    leaks = _leaks(outcome.text, case.code, case.allow)
    assert not leaks, f"interpreter objects or server paths in the answer: {leaks}: {what}"
    for saved in _saved_bytes(outcome.body):
        assert b"app.sandbox" not in saved and b"/work/" not in saved, (
            "a saved file names the server"
        )
        assert SECRET.encode() not in saved
    for lacked in case.stdout_lacks:
        assert lacked not in outcome.stdout, f"printed {lacked!r}: {outcome.stdout[:300]!r}"
    assert len(outcome.message) <= MAX_MESSAGE_CHARS, f"a message of {len(outcome.message)} chars"
    if outcome.kind in ("refused", "limit", "error"):
        assert outcome.message.strip(), outcome.text[:300]
    if outcome.kind == "refused":
        assert isinstance(outcome.line, int), f"a refusal without a line: {what}"
        assert outcome.message.startswith(f"line {outcome.line}: "), what
    if outcome.kind == "limit":
        assert f"({outcome.limit})" in outcome.message, f"the limit is not named: {what}"
    if outcome.kind == "error":
        assert isinstance(outcome.line, int), f"an error without a line: {what}"


def check_expected(case: Hostile, outcome: Outcome, missing: set[str]) -> None:
    """The outcome the issue asks for; while a needed feature is missing, also a refusal or an
    error (the program stopped at a construct the engine does not run yet)."""
    label = outcome.label()
    expected = label in case.expect or (outcome.kind == "limit" and "limit:*" in case.expect)
    if not expected and missing and outcome.kind in ("refused", "error"):
        return  # stopped at a construct not built yet: safe, and nothing more to check
    assert expected, (
        f"expected {' or '.join(case.expect)}, got {label}: {outcome.message[:400]!r}"
        f"{' (features not running yet: ' + ', '.join(sorted(missing)) + ')' if missing else ''}"
        f" stdout={outcome.stdout[:200]!r}"
    )
    if outcome.kind in ("refused", "error") and not missing:
        lines = (case.line,) if isinstance(case.line, int) else case.line
        if lines is not None:
            assert outcome.line in lines, (
                f"{label} at line {outcome.line}, not {lines}: {outcome.message[:300]!r}"
            )
        if case.mentions is not None:
            assert re.search(case.mentions, outcome.message, re.IGNORECASE), (
                f"{label} does not mention {case.mentions!r}: {outcome.message[:300]!r}"
            )
    if outcome.kind == "ok" and case.stdout_has is not None:
        assert case.stdout_has in outcome.stdout, f"printed {outcome.stdout[:300]!r}"


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_program_stops_safely_with_its_expected_outcome(
    client: TestClient, features: frozenset[str], shipped: dict[str, str], name: str
) -> None:
    case = CASES[name]
    started = time.monotonic()
    response = client.post("/api/tensors/run", json={"code": case.code})
    seconds = time.monotonic() - started
    assert response.status_code < 500, (name, response.status_code, response.text[:500])
    outcome = _outcome(response, seconds)
    check_safety(client, case, outcome)
    check_expected(case, outcome, set(case.needs) - features)


def test_there_are_at_least_seventy_hostile_programs() -> None:
    assert len(CASES) >= 70
    assert all(need in PROBES for case in CASES.values() for need in case.needs)


def test_the_sandbox_still_runs_programs_after_the_hostile_ones(client: TestClient) -> None:
    """Last in the module: every worker the hostile programs killed has been replaced."""
    for _ in range(4):  # more than the pool's two workers: each one answers
        response = client.post(
            "/api/tensors/run", json={"code": "x = torch.ones(2)\nprint(x.sum())"}
        )
        assert response.status_code == 200, response.text[:300]
        assert "tensor(2.)" in json.dumps(response.json())
