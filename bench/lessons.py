"""Each JSON endpoint and page partial, in process, next to the bare PyTorch it wraps.

The app side is a full HTTP request through the ASGI stack (routing, validation, the threadpool
hop for sync endpoints, JSON or HTML rendering, gzip); the bare side is the same tensor work
written plainly, as a learner would type it. Both run in this process with one torch thread,
alternating call by call. Before timing, each bare function's numbers are checked against the
endpoint's answer, so the two sides provably compute the same thing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import torch
from torch import nn

from app.config import Settings
from app.lessons import softmax_cross_entropy as softmax
from app.main import create_app
from app.web.views import VIEWS
from bench.common import Context, Row, compare

GROUP = "in-process latency (median of n; bare = plain torch, same process)"

# ---- the bare computations ----------------------------------------------------------------------


def bare_softmax(logits: list[float], target: int, temperature: float = 1.0) -> dict[str, Any]:
    """softmax, log_softmax, CrossEntropyLoss and backward on a fresh leaf."""
    z = torch.tensor(logits).requires_grad_(True)  # (K,)
    scaled = z / temperature
    probabilities = torch.softmax(scaled, dim=-1)
    log_probabilities = torch.log_softmax(scaled, dim=-1)
    loss = nn.CrossEntropyLoss()(scaled, torch.tensor(target))
    loss.backward()
    return {"p": probabilities, "logp": log_probabilities, "loss": loss, "grad": z.grad}


def bare_activation(x_min: float = -5.0, x_max: float = 5.0, points: int = 201) -> torch.Tensor:
    """ReLU on a grid and its derivative by autograd."""
    x = torch.linspace(x_min, x_max, points, requires_grad=True)  # (points,)
    torch.relu(x).sum().backward()
    assert x.grad is not None
    return x.grad


def bare_vanishing(
    act: nn.Module, depth: int, width: int, seed: int, init: str = "kaiming"
) -> torch.Tensor:
    """Build the Linear+activation stack, one forward and one backward: weight-grad norms."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        if init == "kaiming":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, act]
    net = nn.Sequential(*layers)
    net(torch.randn(64, width)).pow(2).mean().backward()  # x: (64, width)
    return torch.stack([m.weight.grad.norm() for m in net if isinstance(m, nn.Linear)])


def bare_dead_relu(slope: float, dead: int, steps: int, seed: int) -> dict[str, torch.Tensor]:
    """The dead-ReLU training loop, metrics kept as tensors and stacked once at the end."""
    torch.manual_seed(seed)
    x = torch.linspace(-2, 2, 64).unsqueeze(1)  # (64, 1)
    y = torch.sin(1.5 * x)
    hidden, output = nn.Linear(1, 16), nn.Linear(16, 1)
    with torch.no_grad():
        hidden.bias[:dead] = -3.0
    act = nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()
    optimizer = torch.optim.SGD([*hidden.parameters(), *output.parameters()], lr=0.3)
    start = hidden.weight.detach().clone()
    losses, dead_counts, zero_grads = [], [], []
    for _ in range(steps):
        pre = hidden(x)  # (64, 16)
        loss = nn.functional.mse_loss(output(act(pre)), y)
        optimizer.zero_grad()
        loss.backward()
        losses.append(loss.detach())
        dead_counts.append((pre <= 0).all(dim=0).sum())
        zero_grads.append((hidden.weight.grad == 0).sum())
        optimizer.step()
    return {
        "loss": torch.stack(losses),
        "dead": torch.stack(dead_counts),
        "zero_grad": torch.stack(zero_grads),
        "moved": (hidden.weight.detach() - start).abs().squeeze(1),
    }


def bare_softmax_explore() -> dict[str, Any]:
    """The tensor work of app.lessons.softmax_cross_entropy.explore at its defaults, plainly."""
    loss_fn = nn.CrossEntropyLoss()
    logits, target = torch.tensor([2.0, 1.0, 0.1]), torch.tensor(0)
    main = bare_softmax([2.0, 1.0, 0.1], 0)
    temperatures = torch.logspace(-1, 1, 61)
    sweep = torch.softmax(logits.unsqueeze(0) / temperatures.unsqueeze(1), dim=-1)  # (61, 3)
    mistakes = []
    for scale in [torch.tensor(1.0), *torch.linspace(0, 10, 41)]:
        right = (logits * scale).requires_grad_(True)
        right_loss = loss_fn(right.unsqueeze(0), target.unsqueeze(0))
        right_loss.backward()
        wrong = (logits * scale).requires_grad_(True)
        wrong_loss = loss_fn(torch.softmax(wrong, dim=-1).unsqueeze(0), target.unsqueeze(0))
        wrong_loss.backward()
        mistakes.append(torch.stack([right_loss, wrong_loss, right.grad.norm(), wrong.grad.norm()]))
    shifted = logits + 1000.0
    exps = torch.exp(shifted)
    naive = exps / exps.sum()
    overflow = (naive, torch.log(naive), torch.softmax(shifted, -1), torch.log_softmax(shifted, -1))
    batch = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [1.0, 1.0, 1.0]])  # (3, 3)
    targets = torch.tensor([0, 1, 2])
    per_sample = nn.CrossEntropyLoss(reduction="none")(batch, targets)
    return {
        "main": main,
        "sweep": sweep,
        "mistakes": torch.stack(mistakes),  # (42, 4)
        "overflow": overflow,
        "batch": (torch.softmax(batch, -1), per_sample, loss_fn(batch, targets)),
    }


def bare_activations_explore() -> dict[str, Any]:
    """The tensor work of app.lessons.activations.explore at its defaults, written plainly."""
    x = torch.linspace(-5, 5, 201, requires_grad=True)
    torch.sigmoid(x).sum().backward()
    xs = x.detach()
    softmax_layer = torch.softmax(
        torch.stack([xs, torch.ones_like(xs), -torch.ones_like(xs)], dim=-1), dim=-1
    )  # (201, 3)
    acts = {
        "sigmoid": nn.Sigmoid(),
        "tanh": nn.Tanh(),
        "relu": nn.ReLU(),
        "leaky_relu": nn.LeakyReLU(0.1),
    }
    return {
        "curve": x.grad,
        "softmax": softmax_layer,
        "vanishing": {name: bare_vanishing(act, 20, 32, 0) for name, act in acts.items()},
        "dead_relu": bare_dead_relu(0.0, 16, 200, 0),
        "dead_leaky": bare_dead_relu(0.1, 16, 200, 0),
    }


# ---- checks: the bare side computes what the endpoint answers -----------------------------------


def close(a: Any, b: Any) -> bool:
    """Numbers (or nested lists of them) equal to float32 precision."""
    if isinstance(a, torch.Tensor):
        a = a.detach().tolist()
    if isinstance(b, torch.Tensor):
        b = b.detach().tolist()
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-7)


def check_softmax(body: dict[str, Any], bare: dict[str, Any]) -> bool:
    return (
        close(body["probabilities"], bare["p"])
        and close(body["log_probabilities"], bare["logp"])
        and close(body["loss"], bare["loss"])
        and close(body["gradient"], bare["grad"])
    )


def check_softmax_view(body: dict[str, Any], bare: dict[str, Any]) -> bool:
    result = body["result"]
    sweep = [[m[k] for k in ("right_loss", "wrong_loss", "right_grad_norm", "wrong_grad_norm")]
             for m in [result["mistake"], *result["mistake_sweep"]]]  # fmt: skip
    return (
        close(result["loss"], bare["main"]["loss"])
        and close(result["sweep_probabilities"], bare["sweep"])
        and close(sweep, bare["mistakes"])
        and close(result["overflow"]["softmax"], bare["overflow"][2])
        and close(result["batch_losses"], bare["batch"][1])
        and close(result["batch_mean"], bare["batch"][2])
    )


def check_dead(body: dict[str, Any], bare: dict[str, torch.Tensor]) -> bool:
    return all(close(body[key], bare[key]) for key in ("loss", "dead", "zero_grad", "moved"))


def check_activations_view(body: dict[str, Any], bare: dict[str, Any]) -> bool:
    result = body["result"]
    return (
        close(result["curve"]["derivative"], bare["curve"])
        and close(result["softmax"], bare["softmax"])
        and all(close(result["vanishing"][k], v) for k, v in bare["vanishing"].items())
        and check_dead(result["dead_relu"], bare["dead_relu"])
        and check_dead(result["dead_leaky"], bare["dead_leaky"])
    )


# ---- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One endpoint, the bare computation it wraps, and how to tell they agree."""

    name: str
    method: str
    url: str
    bare: Callable[[], Any]
    json: dict[str, Any] | None = None
    check: Callable[[dict[str, Any], Any], bool] | None = None  # None: an HTML response
    repeat: int = 200
    budget_s: float = 5.0
    notes: str = ""


SOFTMAX_BODY = {"logits": [2.0, 1.0, 0.1], "target": 0}
VANISHING_BODY = {"activation": "sigmoid", "depth": 10, "width": 16, "seed": 0}
DEAD_BODY = {"negative_slope": 0.0, "dead_units": 16, "steps": 200, "seed": 0}

CASES = (
    Case(
        "POST /api/softmax",
        "POST",
        "/api/softmax",
        lambda: bare_softmax([2.0, 1.0, 0.1], 0),
        SOFTMAX_BODY,
        check_softmax,
        notes="logits [2,1,0.1], target 0",
    ),
    Case(
        "GET /api/activations/relu",
        "GET",
        "/api/activations/relu?points=201",
        bare_activation,
        check=lambda body, grad: close(body["derivative"], grad),
        notes="201 points",
    ),
    Case(
        "POST /api/activations/vanishing",
        "POST",
        "/api/activations/vanishing",
        lambda: bare_vanishing(nn.Sigmoid(), 10, 16, 0),
        VANISHING_BODY,
        check=lambda body, norms: close([layer["grad_norm"] for layer in body["layers"]], norms),
        notes="sigmoid, depth 10, width 16",
    ),
    Case(
        "POST /api/activations/dead-relu",
        "POST",
        "/api/activations/dead-relu",
        lambda: bare_dead_relu(0.0, 16, 200, 0),
        DEAD_BODY,
        check_dead,
        repeat=100,
        budget_s=8.0,
        notes="200 SGD steps",
    ),
    Case(
        "GET /api/lessons/softmax-cross-entropy/view",
        "GET",
        "/api/lessons/softmax-cross-entropy/view",
        bare_softmax_explore,
        check=check_softmax_view,
        repeat=100,
        notes="explore() + figures, JSON",
    ),
    Case(
        "GET /lessons/softmax-cross-entropy/partial",
        "GET",
        "/lessons/softmax-cross-entropy/partial",
        bare_softmax_explore,
        repeat=100,
        notes="explore() + figures, HTML",
    ),
    Case(
        "GET /api/lessons/activations/view",
        "GET",
        "/api/lessons/activations/view",
        bare_activations_explore,
        check=check_activations_view,
        repeat=60,
        budget_s=8.0,
        notes="explore() + figures, JSON",
    ),
    Case(
        "GET /lessons/activations/partial",
        "GET",
        "/lessons/activations/partial",
        bare_activations_explore,
        repeat=60,
        budget_s=8.0,
        notes="explore() + figures, HTML",
    ),
)


def direct_cases(settings: Settings) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """The same lesson work called as Python, no HTTP: where the time of a page partial goes."""
    softmax_view, activations_view = VIEWS["softmax-cross-entropy"], VIEWS["activations"]
    return [
        (
            "softmax.explore() (no HTTP)",
            lambda: softmax.explore(softmax.SoftmaxParams(), softmax.SoftmaxLimits()),
            bare_softmax_explore,
        ),
        (
            "softmax view.build() (no HTTP)",
            lambda: softmax_view.build({}, settings),
            bare_softmax_explore,
        ),
        (
            "activations view.build() (no HTTP)",
            lambda: activations_view.build({}, settings),
            bare_activations_explore,
        ),
    ]


class InProcessClient:
    """An httpx client on the ASGI app, driven from synchronous timing code."""

    def __init__(self, ctx: Context) -> None:
        self.settings = Settings(data_dir=ctx.tmp / "data-inprocess", torch_threads=1)
        self.app = create_app(self.settings)
        self.runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers={"Accept-Encoding": "gzip"}
        )
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.runner.run(self.lifespan.__aenter__())

    def request(self, method: str, url: str, body: dict[str, Any] | None) -> httpx.Response:
        response = self.runner.run(self.client.request(method, url, json=body))
        if response.status_code != 200:
            raise RuntimeError(f"{method} {url} gave {response.status_code}: {response.text[:300]}")
        return response

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.run(self.lifespan.__aexit__(None, None, None))
        self.runner.close()


def run(ctx: Context) -> list[Row]:
    torch.set_num_threads(1)  # create_app does the same; set here too so bare never differs
    client = InProcessClient(ctx)
    rows: list[Row] = []
    try:
        health, _ = compare(
            lambda: client.request("GET", "/healthz", None), None, ctx.repeat(200), 20
        )
        rows.append(Row.timed(GROUP, "GET /healthz", health, None, "framework floor, no torch"))
        for case in CASES:
            response = client.request(case.method, case.url, case.json)
            agree = "" if case.check is None else " · bare == app"
            if case.check is not None and not case.check(response.json(), case.bare()):
                raise AssertionError(f"{case.name}: the bare computation disagrees with the app")
            app_t, bare_t = compare(
                lambda case=case: client.request(case.method, case.url, case.json),
                case.bare,
                repeat=ctx.repeat(case.repeat),
                warmup=2,
                budget_s=ctx.budget(case.budget_s),
            )
            size = len(response.content)
            notes = f"{case.notes}; {size:,} B body{agree}"
            rows.append(Row.timed(GROUP, case.name, app_t, bare_t, notes, body_bytes=size))
            assert torch.get_num_threads() == 1
        for name, app_fn, bare_fn in direct_cases(client.settings):
            app_t, bare_t = compare(app_fn, bare_fn, ctx.repeat(60), 2, ctx.budget(5.0))
            notes = "explore() only" if "explore" in name else "explore() + figures + snippet"
            rows.append(Row.timed(GROUP, name, app_t, bare_t, notes))
    finally:
        client.close()
    return rows
