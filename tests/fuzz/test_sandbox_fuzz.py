"""Hypothesis-generated programs against the learner-code sandbox, through POST /api/tensors/run.

A grammar of statements (tensors of random shapes and dtypes, arithmetic, loops,
comprehensions, dunder walks, imports, open(), eval/exec, getattr tricks, huge numbers and
allocations, sizes given as tensors, NumPy integers and bools, deep nesting, format-string tricks,
and issue 13's language: def with defaults, *args, returns, closures and recursion, lambda,
classes with methods and special methods, nn.Module subclasses with forward, Dataset-like
classes with __getitem__/__len__, try/except/finally and raise) and raw random text. Properties:
the answer is
a 200 or a 4xx with a message, never a 5xx; the server keeps answering /healthz; the marker file
the programs try to create never exists; a secret in the server's environment never shows.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.main import create_app

EXAMPLES = 150
MARKER = Path("/tmp") / f"explorer-fuzz-escape-{uuid.uuid4().hex}"
SECRET = f"fuzz-secret-{uuid.uuid4().hex}"
# Set before the app (and its sandbox workers) start, so a leak would have something to leak.
os.environ["EXPLORER_FUZZ_SECRET"] = SECRET

M = str(MARKER)
ESCAPES = [
    f"open({M!r}, 'w').write('x')",
    f"import os\nos.system('touch {M}')",
    f"__import__('os').system('touch {M}')",
    "().__class__.__bases__[0].__subclasses__()",
    "x = ().__class__.__mro__[1].__subclasses__()",
    "(lambda: 0).__globals__",
    "f = lambda: 0\ng = f.__globals__['__builtins__']",
    "__builtins__",
    "torch.__dict__",
    "getattr(torch, '__loader__')",
    "getattr(getattr(torch, 'tensor'), '__globals__')",
    "torch.tensor(1).__class__.__init__.__globals__",
    f"eval(\"open({M!r}, 'w')\")",
    f"exec(\"import os; os.system('touch {M}')\")",
    "compile('1', 'x', 'eval')",
    "globals()",
    "locals()",
    "vars()",
    "import subprocess\nsubprocess.run(['id'])",
    "from os import environ\nprint(environ)",
    "import sys\nprint(sys.modules)",
    "print(torch.load)",
    f"torch.save(torch.ones(1), {M!r})",
    "'{0.__class__.__init__.__globals__}'.format(torch)",
    "'{.__class__}'.format(1)",
    "f'{torch.__spec__}'",
    "print('%s' % (torch.__file__,))",
    "type('X', (), {})",
    "object.__subclasses__()",
    "x = [].__class__.__base__",
    "torch.ones(2).numpy().__array_interface__",
    "torch.ops.aten",
    "torch.from_file('/etc/passwd')",
    "torch.hub.load('x', 'y')",
    "breakpoint()",
    "input()",
    "help()",
    "while True:\n    pass",
    "x = 10 ** 10 ** 10",
    "x = 2 ** 100000",
    "x = 'a' * 10 ** 9",
    "x = [0] * 10 ** 9",
    "x = torch.zeros(100000, 100000)",
    "x = torch.ones(10 ** 12)",
    "def f():\n    return f()\nf()",
    "raise SystemExit",
    "import builtins",
    "del torch",
    "x = (1" + "+1" * 5000 + ")",
]

# Issue 11: sizes given as tensors, NumPy integers and bools skipped the size checks, and memory
# kept out of sight (grads, optimizer state in dicts, autograd's saved tensors) went uncounted.
# (program, the limit its 422 must name)
SIZE_ESCAPES = [
    ("x = torch.linspace(0, 1, torch.tensor(400000000))", "max_tensor_elements"),
    ("x = torch.randperm(torch.tensor(200000000))", "max_tensor_elements"),
    ("x = torch.eye(torch.tensor(100000))", "max_tensor_elements"),
    ("m = nn.Linear(torch.tensor(100000), np.array([100000])[0])", "max_tensor_elements"),
    ("x = np.linspace(0, 1, np.array([10 ** 9])[0])", "max_tensor_elements"),
    ("x = np.linspace(np.zeros(1000), np.ones(1000), 2000)", "max_tensor_elements"),
    ("x = np.arange(10 ** 9, None)", "max_tensor_elements"),
    ("x = torch.ones(1).expand(torch.tensor(10 ** 9))", "max_tensor_elements"),
    ("x = torch.ones(2).repeat(np.array(10 ** 9))", "max_tensor_elements"),
    ("x = [0] * torch.tensor(10 ** 9)", "max_sequence_items"),
    ("x = 'a' * np.array([10 ** 9])[0]", "max_string_chars"),
    ("x = True << 10 ** 9", "max_int_bits"),
    (
        "d = {}\nfor i in range(15):\n    d[i] = torch.zeros(1000, 1000, requires_grad=True)\n"
        "o = {'opt': torch.optim.Adam(list(d.values()), lr=0.1)}\nfor i in range(15):\n"
        "    d[i].sum().backward()\no['opt'].step()",
        "max_total_bytes",
    ),
    (
        "x = torch.randn(1000, 1000, requires_grad=True)\nt = torch.zeros(1000, dtype=torch.long)\n"
        "ls = []\nfor i in range(100):\n    ls.append(F.cross_entropy(x * 1, t))",
        "max_total_bytes",
    ),
]
# Issue 13: the same walks and escapes through functions, classes, exceptions, files and figures.
LANGUAGE_ESCAPES = [
    "class A:\n    def m(self):\n        return self.__class__.__mro__\nA().m()",
    "def f():\n    pass\ng = f.__globals__",
    "(lambda: 0).__code__",
    "def f(a=print):\n    return a\nf.__defaults__",
    "try:\n    1 / 0\nexcept Exception as e:\n    g = e.__traceback__.tb_frame.f_globals",
    "class A:\n    def __getattr__(self, name):\n        return name",
    f"class E:\n    def __reduce__(self):\n        return (eval, ('open({M!r}, \"w\")',))\n"
    "torch.save(E(), 'e.pth')\ntorch.load('e.pth', weights_only=False)",
    "x = super(int, 1)",
    "X = type('X', (nn.Module,), {'forward': print})",
    f"def f():\n    import os\n    os.system('touch {M}')\nf()",
    "class M(type):\n    pass\nclass A(metaclass=M):\n    pass",
    "class D:\n    def __len__(self):\n        return -1\nlen(D())",
    "def g():\n    yield 1\nfor v in g():\n    pass",
    "def f():\n    return f()\ntry:\n    f()\nexcept BaseException:\n    pass",
    "try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass",
    f"f = open({M!r}, 'wb')\nf.write(b'x')",
    f"from torch.utils.tensorboard import SummaryWriter\nw = SummaryWriter(log_dir={M!r})\n"
    "w.add_scalar('a', 1.0, 0)\nw.close()",
    f"import matplotlib.pyplot as plt\nplt.plot([1])\nplt.savefig({M!r})",
    "class A:\n    def __repr__(self):\n        return repr(self)\nprint(A())",
    "x = sum(i for i in range(10 ** 12))",
]
ESCAPES += LANGUAGE_ESCAPES
ESCAPES += [code for code, _ in SIZE_ESCAPES]
ESCAPES.append("x = round(5, -torch.tensor(10 ** 9))")

METHODS = ["sum()", "T", "view(-1)", "reshape(2, -1)", "float()", "shape", "grad", "mean()"]
DTYPES = ["torch.float32", "torch.float64", "torch.int64", "torch.bool", "torch.float16"]
NAMES = st.sampled_from(["a", "b", "x", "y", "t"])
SMALL = st.integers(min_value=-3, max_value=6)
SHAPE = st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=4).map(
    lambda dims: ", ".join(map(str, dims)) or "()"
)
HUGE = st.sampled_from(["10 ** 400", "2 ** 64", "-1", "0", "1e308", "float('nan')", "10 ** 7"])
# A size as a program may spell it: a Python int, a tensor, a NumPy integer, a 0-d array, a bool.
SIZE = st.tuples(
    st.sampled_from(
        ["{}", "torch.tensor({})", "torch.tensor([{}])", "np.array([{}])[0]", "np.array({})"]
        + ["torch.tensor({}, dtype=torch.int32)", "bool({})", "torch.tensor({}.5)"]
    ),
    st.sampled_from(["3", "0", "-1", "1000", "10 ** 6", "10 ** 9", "400000000", "2 ** 62"]),
).map(lambda pair: pair[0].format(pair[1]))
SIZED = [
    "torch.ones({0})",
    "torch.zeros(({0}, 2))",
    "torch.rand({0}, {1})",
    "torch.full(({0},), 1.0)",
    "torch.randint(0, 5, ({0},))",
    "torch.arange({0})",
    "torch.linspace(0, 1, {0})",
    "torch.eye({0}, {1})",
    "torch.randperm({0})",
    "nn.Linear({0}, {1})",
    "np.ones({0})",
    "np.zeros(({0}, {1}))",
    "np.arange(0, {0})",
    "np.linspace(0, 1, num={0})",
    "torch.ones(2).repeat({0})",
    "torch.ones(1).expand({0}, {1})",
    "[0] * {0}",
    "'ab' * {0}",
    "round(1.5, {0})",
]
# Issue 13's language: parameter lists and the calls that may (or may not) match them, the
# exceptions a handler names, special methods (allowed and refused) and recursion depths.
PARAMS = ["", "a", "a, b=2", "*args", "a, *args, k=1, **kw", "a=[]", "a=print", "a, /, b=1"]
ARGS = ["", "1", "1, 2", "x", "*[1, 2]", "a=1", "**{'k': 3}", "torch.ones(2)"]
EXCEPTIONS = [
    "Exception",
    "ValueError",
    "BaseException",
    "(TypeError, IndexError)",
    "RecursionError",
]
DUNDERS = ["__init__", "__call__", "__getitem__", "__len__", "__iter__", "__next__", "__repr__"]
DUNDERS += ["__str__", "__getattr__", "__eq__", "__reduce__", "__del__", "__torch_function__"]
DEPTHS = st.sampled_from(["3", "50", "10 ** 6", "-1"])


@st.composite
def statement(draw: st.DrawFn, depth: int = 0) -> str:
    name, other = draw(NAMES), draw(NAMES)
    options = [
        f"{name} = torch.{draw(st.sampled_from(['ones', 'zeros', 'rand', 'randn']))}"
        f"({draw(SHAPE)}, dtype={draw(st.sampled_from(DTYPES))})",
        f"{name} = torch.arange({draw(SMALL)}, {draw(HUGE)})",
        f"{name} = torch.tensor({draw(st.lists(SMALL, max_size=6))})",
        f"{name} = {other} {draw(st.sampled_from(['+', '-', '*', '/', '@', '**', '//', '%']))} "
        f"{draw(st.one_of(NAMES, SMALL.map(str), HUGE))}",
        f"{name} = {other}.{draw(st.sampled_from(METHODS))}",
        f"{name} = [{other} for _ in range({draw(HUGE)})]",
        f"{name} = " + draw(st.sampled_from(SIZED)).format(draw(SIZE), draw(SIZE)),
        f"print({name}, {other!r}, f'{{{name}}}')",
        draw(st.sampled_from(ESCAPES)),
    ]
    options += language(draw, name, other)
    if depth < 3:
        inner = draw(statement(depth + 1))
        body, deeper = inner.replace("\n", "\n    "), inner.replace("\n", "\n        ")
        exc = draw(st.sampled_from(EXCEPTIONS))
        options += [
            f"for i in range({draw(HUGE)}):\n    {body}",
            f"if {name}:\n    {body}",
            f"def g():\n    {body}\ng()",
            f"def fn({draw(st.sampled_from(PARAMS))}):\n    {body}\n    return {other}\n"
            f"{name} = fn({draw(st.sampled_from(ARGS))})",
            f"try:\n    {body}\nexcept {exc} as e:\n    {name} = str(e)\nfinally:\n    {other} = 0",
            f"try:\n    {body}\nexcept:\n    {name} = 1\nelse:\n    {name} = 2",
            f"class C:\n    k = {draw(SMALL)}\n    def __init__(self, v):\n        self.v = v\n"
            f"    def get(self):\n        {deeper}\n        return self.v\n"
            f"{name} = C({other}).get()",
        ]
    return draw(st.sampled_from(options))


def language(draw: st.DrawFn, name: str, other: str) -> list[str]:
    """Statements of issue 13's language that need no body: calls, recursion, lambdas,
    comprehensions, modules, dataset-like classes, special methods and raise."""
    size, dims = draw(HUGE), (draw(SIZE), draw(SIZE))
    op = draw(st.sampled_from(["+", "*", "@", "-"]))
    return [
        "def r(n):\n    if n == 0:\n        return 0\n    return r(n - 1) + 1\n"
        f"{name} = r({draw(DEPTHS)})",
        f"def outer(k):\n    def inner(v):\n        return v {op} k\n    return inner\n"
        f"{name} = outer({draw(SMALL)})({other})",
        f"{name} = (lambda v, w=1: v {op} w)({other})",
        "fn = lambda *a: fn(*a)\nfn(1)",
        f"{name} = [{other} {op} i for i in range({size})]",
        f"{name} = {{i: {other} for i in range({size})}}",
        f"{name} = sum(i for i in range({size}))",
        f"{name} = [v for v in {other}]",
        f"{name} = list(map(lambda v: v {op} 1, {other}))",
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"        self.l = nn.Linear({dims[0]}, {dims[1]})\n    def forward(self, x):\n"
        f"        return self.l(x)\n{name} = M()({other})",
        f"class D:\n    def __len__(self):\n        return {size}\n    def __getitem__(self, i):\n"
        f"        return {other}\n{name} = len(D())\nfor v in D():\n    pass",
        f"class H:\n    def {draw(st.sampled_from(DUNDERS))}(self, *a):\n        return {other}\n"
        f"h = H()\nprint(h, h[0])",
        f"raise {draw(st.sampled_from(['ValueError', 'TypeError', 'StopIteration']))}({other})",
        f"raise ValueError({size}) from None",
    ]


PROGRAMS = st.one_of(
    st.lists(statement(), min_size=1, max_size=6).map("\n".join),
    st.text(max_size=200),  # raw text: syntax errors, odd unicode, NULs
    st.integers(min_value=1, max_value=400).map(lambda n: "(" * n + "1" + ")" * n),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("sandbox-fuzz") / "data"
    # Hundreds of programs a minute from one learner: the per-learner rate is not what is tested.
    settings = Settings(
        data_dir=data, warm_lessons=False, program_max_seconds=2.0, program_max_per_minute=100_000
    )
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    MARKER.unlink(missing_ok=True)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(code=PROGRAMS)
def test_no_program_crashes_the_server_or_escapes(client: TestClient, code: str) -> None:
    response = client.post("/api/tensors/run", json={"code": code})
    assert response.status_code < 500, (code, response.text[:500])
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        detail = response.json().get("detail")
        assert isinstance(detail, str) and detail.strip(), (code, response.text[:500])
    assert SECRET not in response.text, code
    assert not MARKER.exists(), f"the program created {MARKER}: {code!r}"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_escape_attempts_are_each_refused_or_harmless(client: TestClient) -> None:
    for code in ESCAPES:
        response = client.post("/api/tensors/run", json={"code": code})
        assert response.status_code in (200, 422, 429), (code, response.text[:300])
        body = response.json()
        assert SECRET not in json.dumps(body)
    assert not MARKER.exists()


@pytest.mark.parametrize(("code", "limit"), SIZE_ESCAPES)
def test_a_size_or_memory_escape_is_a_422_naming_its_limit(
    client: TestClient, code: str, limit: str
) -> None:
    response = client.post("/api/tensors/run", json={"code": code})
    assert response.status_code == 422, (code, response.text[:300])
    body = response.json()
    assert body["limit"] == limit, body
    assert limit in body["detail"]
    assert client.get("/healthz").json() == {"status": "ok"}
