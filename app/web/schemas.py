"""Request and response models of the JSON API (they make /openapi.json)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Finite = Annotated[float, Field(allow_inf_nan=False)]


class JsonBody(BaseModel):
    """A request body read as its schema says: strict, so ``false`` is not taken for 0, nor
    ``"3"`` for 3 (JSON numbers still fill float fields)."""

    model_config = ConfigDict(strict=True)


class ApiError(BaseModel):
    """Every error answer of the API; other fields (``limit``, ``line``, ``errors``...) may join."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="what was wrong, for a learner: which field, which limit")


# What each error status means across the API, for the OpenAPI ``responses`` of the routes.
ERROR_MEANINGS: dict[int, str] = {
    400: "the body could not be parsed as its Content-Type says",
    404: "there is no such resource (the detail names it)",
    408: "the request's body stopped arriving for body_timeout_seconds",
    413: "the body or upload is over its byte limit (the detail names the setting)",
    415: "the upload is not a picture format the lesson reads",
    422: "a field is invalid or over a limit (the detail names which)",
    429: "too busy right now: try again after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each an :class:`ApiError`."""
    return {s: {"model": ApiError, "description": ERROR_MEANINGS[s]} for s in statuses}


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class SoftmaxRequest(JsonBody):
    """Logits for one sample (a list) or a batch (a list of rows)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"logits": [2.0, 1.0, 0.1], "target": 0}]}
    )

    logits: list[Finite] | list[list[Finite]] = Field(
        description="Raw network outputs: K numbers, or N rows of K numbers."
    )
    target: int | list[int] | None = Field(
        default=None, description="The true class (one per row for a batch), or null."
    )
    temperature: Finite = Field(default=1.0, description="softmax(logits / temperature).")


class SoftmaxResponse(BaseModel):
    probabilities: list[float] | list[list[float]]
    log_probabilities: list[float] | list[list[float]]
    loss: float | None = Field(
        description="nn.CrossEntropyLoss() (batch mean), null without target"
    )
    gradient: list[float] | list[list[float]] | None = Field(
        description="d loss / d logits from autograd, null without target"
    )


class ActivationCurve(BaseModel):
    name: str
    x: list[float]
    y: list[float]
    derivative: list[float] = Field(description="dy/dx from autograd")


class VanishingRequest(JsonBody):
    activation: str = Field(default="sigmoid", examples=["sigmoid"])
    depth: int = Field(default=10, description="Linear+activation layers")
    width: int = Field(default=16, description="units per layer")
    seed: int = 0
    init: str = Field(default="kaiming", description="kaiming, xavier or default (nn.Linear's)")
    negative_slope: Finite = Field(default=0.01, description="leaky_relu's slope for x < 0")


class LayerGradient(BaseModel):
    index: int = Field(description="0 is the layer nearest the input")
    grad_norm: float


class VanishingResponse(BaseModel):
    activation: str
    layers: list[LayerGradient]


class DeadReluRequest(JsonBody):
    negative_slope: Finite = Field(default=0.0, description="0 is plain ReLU")
    dead_units: int = Field(default=16, description="hidden units (of 16) that start dead")
    steps: int = Field(default=200, description="SGD steps")
    seed: int = 0


class DeadReluResponse(BaseModel):
    loss: list[float]
    dead: list[float] = Field(description="units negative for every input, per step")
    zero_grad: list[float] = Field(description="units whose weight got exactly zero gradient")
    moved: list[float] = Field(description="|w_end - w_start| per hidden unit")


class LessonViewResponse(BaseModel):
    """Everything a lesson page shows: its parameters, the numbers, and the Plotly figures."""

    slug: str
    params: dict[str, object]
    result: dict[str, object]
    figures: dict[str, dict[str, object]]


# ---- programs ----------------------------------------------------------------------------------

EXAMPLE_PROGRAM = "x = torch.tensor([1., 2.], requires_grad=True)\ny = x + 2\nz = y * y\n"


VALUE_DESCRIPTION = (
    'name -> Value: {"kind": "tensor", "shape", "dtype", "stride", "values", "requires_grad", '
    '"is_leaf", "grad_fn", "grad", "storage", "version"}, {"kind": "ndarray", ...} or '
    '{"kind": "number", "value"}'
)


class ProgramRequest(JsonBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": EXAMPLE_PROGRAM}]})

    code: str = Field(description="PyTorch-flavoured Python: parsed and interpreted, never exec'd")
    steps: Literal["full", "changes"] = Field(
        default="full",
        description='"full": each step holds every variable after it (variables). "changes": '
        "each step holds only the variables new or changed since the step before (changes) and "
        "those deleted (removed), with variables empty; apply removed, then changes, step by "
        "step to a dict to rebuild every variable. Both fit in max_answer_bytes.",
    )


class ProgramError(BaseModel):
    line: int | None = Field(description="the failing line, 1-based")
    message: str = Field(description="PyTorch's own message")


class Step(BaseModel):
    line: int
    source: str
    variables: dict[str, dict[str, Any]] = Field(
        description=VALUE_DESCRIPTION + ': every variable after this step (steps "full"); '
        'empty with steps "changes"'
    )
    stdout: str
    changes: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description='steps "changes" only: the variables new, or whose Value differs, since the '
        "step before (" + VALUE_DESCRIPTION + ")",
    )
    removed: list[str] | None = Field(
        default=None,
        description='steps "changes" only: the variables deleted since the step before',
    )


class ProgramResponse(BaseModel):
    steps: list[Step]
    error: ProgramError | None
    truncated: bool = Field(default=False, description="later steps ran but were not recorded")
    notices: list[str] = Field(
        default_factory=list,
        description="what the sandbox trimmed from the answer, each naming the limit it hit "
        "(steps recorded, numbers recorded, max_answer_bytes, printed output)",
    )
    steps_format: Literal["full", "changes"] = Field(
        default="full", description="the format of steps, as the request asked"
    )
    stdout_after: str = Field(
        default="",
        description="print output of the statements after the last recorded step (those not "
        "recorded, and a failing statement's): the steps' stdout, then this, is all it printed",
    )


class GraphRequest(JsonBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": EXAMPLE_PROGRAM, "backward": None}]}
    )

    code: str
    backward: str | None = Field(
        default=None, description="a variable to call .backward() on (a scalar), or null"
    )


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
