"""Learner programs: the sandbox's cost next to the same statements run directly in PyTorch.

The app side is a full request to POST /api/tensors/run (validation, the worker pool's socket
round trip, the interpreter recording every variable after every statement, JSON); the bare side
is the same program written as plain PyTorch in this process. Also a whole beginner training
script (a learner nn.Module, 100 epochs of logistic regression on scikit-learn's breast-cancer
table) with step recording on (steps "changes") and off (steps "none"), and the requests per
second that POST /api/autograd/graph answers on the notes' example, several clients at once.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import torch
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from app.config import Settings
from app.main import create_app
from app.sandbox.isolation import get_pool
from app.web.routes.programs import ensure_pool
from bench.common import Context, Row, compare

GROUP = "learner programs (median of n; bare = the same statements in plain torch)"

VIEW = "a = torch.ones(2, 2)\nb = a.view(4, -1)\n"
NOTES_GRAPH = "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\n"
DESCENT = """X = torch.tensor([1., 2., 3., 4.])
Y = 2 * X
w = torch.tensor(0.0, requires_grad=True)
lr = 0.01
for epoch in range(20):
    y_pred = w * X
    loss = ((y_pred - Y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
    w.grad.zero_()
"""


# The course's logistic-regression script as a learner pastes it, imports and all: scikit-learn's
# 569 x 30 breast-cancer table, scaled, split, and a learner nn.Module trained for 100 epochs.
TRAINING = """import numpy as np
import torch
import torch.nn as nn
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

bc = datasets.load_breast_cancer()
X, y = bc.data, bc.target
n_samples, n_features = X.shape

X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=1234)

sc = StandardScaler()
X_train = sc.fit_transform(X_train)
X_test = sc.transform(X_test)

X_train = torch.from_numpy(X_train.astype(np.float32))
X_test = torch.from_numpy(X_test.astype(np.float32))
y_train = torch.from_numpy(y_train.astype(np.float32))
y_test = torch.from_numpy(y_test.astype(np.float32))

y_train = y_train.view(y_train.shape[0], 1)
y_test = y_test.view(y_test.shape[0], 1)


class LogisticRegression(nn.Module):
    def __init__(self, n_input_features):
        super(LogisticRegression, self).__init__()
        self.linear = nn.Linear(n_input_features, 1)

    def forward(self, x):
        y_pred = torch.sigmoid(self.linear(x))
        return y_pred


torch.manual_seed(0)
model = LogisticRegression(n_features)

num_epochs = 100
learning_rate = 0.01
criterion = nn.BCELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

for epoch in range(num_epochs):
    y_pred = model(X_train)
    loss = criterion(y_pred, y_train)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    if (epoch + 1) % 10 == 0:
        print(f"epoch: {epoch + 1}, loss = {loss.item():.4f}")

with torch.no_grad():
    y_predicted = model(X_test)
    y_predicted_cls = y_predicted.round()
    acc = y_predicted_cls.eq(y_test).sum() / float(y_test.shape[0])
    print(f"accuracy: {acc.item():.4f}")
"""


class LogisticRegression(nn.Module):
    """The learner's class of TRAINING, written in plain PyTorch."""

    def __init__(self, n_input_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_input_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(x))  # (N, 1)


def bare_training() -> str:
    """TRAINING as plain Python in this process: what it prints."""
    printed: list[str] = []
    bc = datasets.load_breast_cancer()
    x, y = bc.data, bc.target  # (569, 30), (569,)
    n_features = x.shape[1]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=1234)
    sc = StandardScaler()
    x_train = sc.fit_transform(x_train)
    x_test = sc.transform(x_test)
    xt_train = torch.from_numpy(x_train.astype(np.float32))  # (455, 30)
    xt_test = torch.from_numpy(x_test.astype(np.float32))  # (114, 30)
    yt_train = torch.from_numpy(y_train.astype(np.float32)).view(-1, 1)  # (455, 1)
    yt_test = torch.from_numpy(y_test.astype(np.float32)).view(-1, 1)  # (114, 1)
    torch.manual_seed(0)
    model = LogisticRegression(n_features)
    criterion = nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(100):
        loss = criterion(model(xt_train), yt_train)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if (epoch + 1) % 10 == 0:
            printed.append(f"epoch: {epoch + 1}, loss = {loss.item():.4f}\n")
    with torch.no_grad():
        predicted = model(xt_test).round()  # (114, 1)
        acc = predicted.eq(yt_test).sum() / float(yt_test.shape[0])
        printed.append(f"accuracy: {acc.item():.4f}\n")
    return "".join(printed)


def printed(answer: dict[str, object]) -> str:
    """Everything a program printed, from its answer: the steps' stdout, then stdout_after."""
    steps = answer["steps"]
    assert isinstance(steps, list)
    return "".join(step["stdout"] for step in steps) + str(answer["stdout_after"])


def bare_view() -> torch.Tensor:
    a = torch.ones(2, 2)
    return a.view(4, -1)  # (4, 1)


def bare_descent() -> float:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = 2 * x
    w = torch.tensor(0.0, requires_grad=True)
    lr = 0.01
    for _ in range(20):
        loss = ((w * x - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            assert w.grad is not None
            w -= lr * w.grad
        assert w.grad is not None
        w.grad.zero_()
    return w.item()


def bare_graph() -> float:
    x = torch.tensor(1.0, requires_grad=True)
    z = (x + 2) * (x + 2)
    z.backward()
    assert x.grad is not None
    return x.grad.item()


def run(ctx: Context) -> list[Row]:
    torch.set_num_threads(1)
    settings = Settings(data_dir=ctx.tmp / "programs", torch_threads=1)
    app = create_app(settings)
    # Every sandbox worker started and warm, as the server's start-up does (this in-process app
    # runs no lifespan): a cold pool would refuse the clients that wait for a process start.
    ensure_pool(settings)
    get_pool().warm(get_pool().size)
    rows: list[Row] = []
    runner = asyncio.Runner()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")

    async def post(path: str, body: dict[str, object]) -> httpx.Response:
        response = await client.post(path, json=body)
        response.raise_for_status()
        return response

    try:
        # The first call waits for a worker process to start; it is not what a learner waits for.
        runner.run(post("/api/tensors/run", {"code": VIEW}))
        final = runner.run(post("/api/tensors/run", {"code": DESCENT})).json()
        w = final["steps"][-1]["variables"]["w"]["values"]
        assert abs(w - bare_descent()) < 1e-6, (w, bare_descent())
        for name, code, bare in (
            ("POST /api/tensors/run: view(4, -1)", VIEW, bare_view),
            ("POST /api/tensors/run: 20-epoch descent loop", DESCENT, bare_descent),
        ):
            app_t, bare_t = compare(
                lambda code=code: runner.run(post("/api/tensors/run", {"code": code})),
                bare,
                ctx.repeat(100),
                3,
                ctx.budget(8.0),
            )
            rows.append(Row.timed(GROUP, name, app_t, bare_t, "bare == app (final w)"))

        expected = bare_training()
        for steps, note in (
            ("changes", "recording on: the page's format"),
            ("none", "recording off; target <= 3"),
        ):
            request: dict[str, object] = {"code": TRAINING, "steps": steps}
            answer = runner.run(post("/api/tensors/run", request)).json()
            assert answer["error"] is None, answer["error"]
            assert printed(answer) == expected, (printed(answer), expected)
            app_t, bare_t = compare(
                lambda request=request: runner.run(post("/api/tensors/run", request)),
                bare_training,
                ctx.repeat(30),
                2,
                ctx.budget(10.0),
            )
            rows.append(
                Row.timed(
                    GROUP,
                    f'POST /api/tensors/run: 100-epoch logistic regression, steps "{steps}"',
                    app_t,
                    bare_t,
                    f"{note}; bare == app (printed losses)",
                    steps_recorded=len(answer["steps"]),
                )
            )

        body = {"code": NOTES_GRAPH, "backward": "z"}
        graph = runner.run(post("/api/autograd/graph", body)).json()
        assert graph["variables"]["x"]["grad"] == bare_graph() == 6.0
        app_t, bare_t = compare(
            lambda: runner.run(post("/api/autograd/graph", body)),
            bare_graph,
            ctx.repeat(100),
            3,
            ctx.budget(6.0),
        )
        rows.append(
            Row.timed(GROUP, "POST /api/autograd/graph: the notes' z = y * y", app_t, bare_t)
        )

        async def throughput(seconds: float, clients: int = 8) -> tuple[int, float]:
            done = 0
            deadline = time.perf_counter() + seconds

            async def one(index: int) -> None:
                nonlocal done
                # A learner of its own (a client address of its own): the program gate gives
                # each client a share (program_max_per_client), as on a class's network.
                transport = httpx.ASGITransport(app=app, client=(f"10.0.0.{index + 1}", 4000))
                async with httpx.AsyncClient(transport=transport, base_url="http://bench") as own:
                    while time.perf_counter() < deadline:
                        (await own.post("/api/autograd/graph", json=body)).raise_for_status()
                        done += 1

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(clients)))
            return done, time.perf_counter() - started

        runner.run(throughput(1.0))  # warm the clients' paths too
        count, elapsed = runner.run(throughput(ctx.budget(5.0)))
        bare_count, bare_started = 0, time.perf_counter()
        while time.perf_counter() - bare_started < elapsed:
            bare_graph()
            bare_count += 1
        bare_elapsed = time.perf_counter() - bare_started
        rows.append(
            Row(
                group="throughput (requests or calls per second; ratio = app / bare)",
                name="POST /api/autograd/graph, 8 clients in process",
                unit="/s",
                app=count / elapsed,
                bare=bare_count / bare_elapsed,
                notes="bare = the same backward in a plain loop, one thread",
                n=count,
            )
        )
    finally:
        runner.run(client.aclose())
        runner.close()
    return rows
