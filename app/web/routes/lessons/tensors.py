"""The Tensor basics lesson's API: ``POST /api/tensors/run`` (API.md "Programs"), and
``POST /api/tensors/heatmap``, the heatmap its page draws at each step.

A learner's program runs one statement at a time in a sandbox worker, through the program gate
(``app.web.routes.programs``). The autograd page runs programs here too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.web.deps import ProgramGateDep, SettingsDep
from app.web.routes.programs import admitted, json_response, program_router
from app.web.schemas import EXAMPLE_PROGRAM, JsonBody, ProgramError
from app.web.views.tensors import heatmap

router = program_router()

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


@router.post("/api/tensors/run", response_model=ProgramResponse)
async def run_tensors(
    body: ProgramRequest, request: Request, settings: SettingsDep, gate: ProgramGateDep
) -> Response:
    """Run a program one statement at a time; every variable after every step (``steps:
    "full"``), or only what each step changed (``steps: "changes"``), within max_answer_bytes.

    A program the sandbox refuses is a 422 naming the line and the reason; a runtime error
    inside an allowed program is a 200 with the steps so far and ``error``.
    """
    answer = await admitted(request, gate, settings, "run", body.code, None, body.steps)
    return json_response(answer)


class HeatmapValue(JsonBody):
    """What a heatmap draws of a tensor or ndarray Value (a whole Value may be sent)."""

    kind: Literal["tensor", "ndarray"]
    shape: list[Annotated[int, Field(ge=0, le=2**63 - 1)]] = Field(max_length=64)
    dtype: str = Field(max_length=40)
    values: Any = Field(
        default=None, description="nested lists of the shape; null: too many elements to list"
    )


class HeatmapRequest(JsonBody):
    name: str | None = Field(max_length=1_000, description="the variable; null: no tensor")
    value: HeatmapValue | None = Field(description="its Value as POST /api/tensors/run gave it")


class HeatmapResponse(BaseModel):
    figure: dict[str, Any] = Field(description="the Plotly figure app/viz/tensors.py draws")


@router.post("/api/tensors/heatmap")
def tensor_heatmap(body: HeatmapRequest, settings: SettingsDep) -> HeatmapResponse:
    """The Tensors page's heatmap of one variable's Value at a step, built by the server as the
    page's first view is; 422 when the values do not fit the shape or number more than
    program_max_display_elements."""
    value = body.value.model_dump() if body.value is not None else None
    return HeatmapResponse(figure=heatmap(body.name, value, settings))
