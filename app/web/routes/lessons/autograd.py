"""The Gradient calculation lesson's API: ``POST /api/autograd/graph`` (API.md "Programs").

A learner's program runs in a sandbox worker, through the program gate
(``app.web.routes.programs``), and the answer is its real autograd graph.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.web.deps import ProgramGateDep, SettingsDep
from app.web.routes.programs import admitted, json_response, program_router
from app.web.schemas import EXAMPLE_PROGRAM, JsonBody, ProgramError

router = program_router()


class GraphRequest(JsonBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": EXAMPLE_PROGRAM, "backward": None}]}
    )

    code: str
    backward: str | None = Field(
        default=None, description="a variable to call .backward() on (a scalar), or null"
    )
    root: str | None = Field(
        default=None,
        description="draw only this variable's graph, without calling backward (not with backward)",
    )
    step: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="stop the program after this many steps, as a stepping page's step N "
        "(inside a call, variables are named name@depth as that step shows them)",
    )

    @model_validator(mode="after")
    def _one_target(self) -> GraphRequest:
        if self.backward is not None and self.root is not None:
            raise ValueError("give backward or root, not both")
        return self


class GraphNode(BaseModel):
    id: str
    kind: Literal["tensor", "function"]
    label: str = Field(description="PyTorch's grad_fn class name, or the variable's name")
    variable: str | None
    shape: list[int] | None
    value: Any = None
    grad: Any = None


class GraphEdge(BaseModel):
    source: str = Field(description="forward direction: input -> function -> output")
    target: str


class BackStep(BaseModel):
    node: str
    grad_outputs: list[Any]
    grad_inputs: list[Any]


class GraphResponse(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    backward_steps: list[BackStep]
    variables: dict[str, dict[str, Any]]
    error: ProgramError | None
    truncated: bool = False
    stdout: str = ""
    notices: list[str] = Field(
        default_factory=list,
        description="what the sandbox left out of the answer, each naming the limit it hit "
        "(max_answer_bytes: backward steps, node values, variables)",
    )


@router.post("/api/autograd/graph", response_model=GraphResponse)
async def autograd_graph(
    body: GraphRequest, request: Request, settings: SettingsDep, gate: ProgramGateDep
) -> Response:
    """The program's real autograd graph, and with ``backward`` set, the engine's backward steps
    (as many as fit in max_answer_bytes; backward itself always runs to the end)."""
    options: str | dict[str, Any] | None = body.backward
    if body.root is not None or body.step is not None:
        options = {"backward": body.backward, "root": body.root, "step": body.step}
    return json_response(await admitted(request, gate, settings, "graph", body.code, options))
