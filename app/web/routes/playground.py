"""The playground: ``GET /playground``, any program stepped through as Python Tutor does, with
what a PyTorch learner needs on top (docs/api.md "GET /playground").

The page is rendered with the program from the link (``?code=``, packed by
``app.web.code_url``) already in its editor; its script runs it through ``POST
/api/tensors/run`` (steps ``"changes"``) and draws every step in the browser: the call stack
frame by frame, objects and modules, loops by iteration, any number plotted across the run, and a
tensor's autograd graph at a step (``POST /api/autograd/graph`` with ``step`` and ``root``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.lessons.autograd import graph_nodes
from app.lessons.errors import LessonInputError
from app.lessons.registry import LESSONS, SUBPAGES
from app.viz.autograd import graph_figure
from app.web.code_url import decode_code, encode_code
from app.web.deps import ProgramGateDep, SettingsDep
from app.web.routes.programs import admitted
from app.web.schemas import EXAMPLE_PROGRAM, JsonBody, error_responses
from app.web.templating import render

router = APIRouter()

# The program the playground opens on: a whole beginner script, with a class, a loop over epochs
# and batches, a loss and an optimizer, short enough to step through in a minute.
DEFAULT_PROGRAM = """\
# A tiny classifier, trained the way the notes do it: a Dataset and a DataLoader,
# an nn.Module, a loss, an optimizer, and a loop over epochs and batches.
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
X = torch.randn(64, 2)
y = (X[:, 0] + X[:, 1] > 0).long()
loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        return self.out(h)


model = Net()
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

for epoch in range(5):
    for inputs, labels in loader:
        logits = model(inputs)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.4f}")

accuracy = (model(X).argmax(1) == y).float().mean()
print(f"accuracy {accuracy.item():.2f}")
"""

_LESSONS = {lesson.slug: lesson for lesson in (*LESSONS, *SUBPAGES)}


def playground_url(code: str, lesson: str | None = None) -> str:
    """The playground's link for ``code`` (and the lesson it came from)."""
    url = f"/playground?code={encode_code(code)}"
    return f"{url}&from={lesson}" if lesson else url


@router.get("/playground", response_class=HTMLResponse, include_in_schema=False)
def playground_page(
    request: Request,
    settings: SettingsDep,
    code: Annotated[str | None, Query(description="the program, packed (app.web.code_url)")] = None,
    step: Annotated[int, Query(ge=0, le=10_000_000, description="the step shown, 1-based")] = 0,
    source: Annotated[
        str | None, Query(alias="from", description="the lesson it came from")
    ] = None,
) -> Response:
    """The playground page, with the program of the link in its editor."""
    limit = settings.program_max_code_chars
    program = DEFAULT_PROGRAM if code is None else decode_code(code, limit)
    origin = _LESSONS.get(source or "")
    if source and origin is None:
        raise LessonInputError(f"from: there is no lesson called {source!r}")
    form = {
        "code": program,
        "step": step,
        "default": program == DEFAULT_PROGRAM,
        "from": origin.slug if origin else None,
        "max_code_chars": settings.program_max_code_chars,
    }
    context = {"form": form, "origin": origin, "lines": program.split("\n")}
    return render(request, "playground.html", context)


class PlaygroundGraphRequest(JsonBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": EXAMPLE_PROGRAM, "step": 3, "root": "z"}]}
    )

    code: str
    step: int = Field(ge=1, le=10_000_000, description="the step shown (1-based): the program "
                      "stops after it, as the page's trace does")  # fmt: skip
    root: str = Field(
        min_length=1,
        max_length=200,
        description="the variable whose graph is drawn, as the step names it (name@depth inside "
        "a call)",
    )


class GradText(BaseModel):
    name: str
    text: str


class PlaygroundGraphResponse(BaseModel):
    figure: dict[str, Any] = Field(description="a Plotly figure: the Gradient lesson's graph")
    note: str
    grads: list[GradText] = Field(description="the .grad of each leaf in the graph at that step")
    graph: dict[str, Any] = Field(description="POST /api/autograd/graph's answer it was drawn from")


@router.post(
    "/api/playground/graph",
    response_model=PlaygroundGraphResponse,
    tags=["programs"],
    responses=error_responses(422, 429),
)
async def playground_graph(
    body: PlaygroundGraphRequest, request: Request, settings: SettingsDep, gate: ProgramGateDep
) -> PlaygroundGraphResponse:
    """The autograd graph of one variable at one step of a program, drawn as the Gradient lesson
    draws it, with the gradients that had arrived in its leaves by then."""
    options = {"backward": None, "root": body.root, "step": body.step}
    answer = json.loads(await admitted(request, gate, settings, "graph", body.code, options))
    error = answer.get("error")
    if error is not None and error.get("line") is None:  # the root is not a tensor at that step
        raise LessonInputError(str(error["message"]))
    name = body.root.split("@")[0]
    nodes = graph_nodes(answer)
    # Every leaf drawn, a model's parameters (model.fc.weight) included, with the .grad it holds.
    grads = [
        GradText(name=n["label"].split("@")[0], text=n["grad_text"])
        for n in nodes
        if n["kind"] == "tensor" and n["leaf"] and n["grad"] is not None
    ]
    functions = sum(1 for n in nodes if n["kind"] == "function")
    if error is not None:
        note = f"The program failed before step {body.step}: line {error['line']}: "
        note += str(error["message"])
    elif functions == 0:
        note = f"{name} has no grad_fn at step {body.step}: no operation on a tensor that "
        note += "requires grad made it, so there is no graph behind it."
    else:
        note = f"{functions} functions: backward() runs right to left through them, from {name} "
        note += "to the leaves, whose .grad it fills."
    title = f"{name} at step {body.step}"
    figure = graph_figure(nodes, answer["edges"], [], 0, title)
    return PlaygroundGraphResponse(figure=figure, note=note, grads=grads, graph=answer)
