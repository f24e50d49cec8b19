"""The Tensor basics lesson's API: ``POST /api/tensors/run`` (API.md "Programs"), and
``POST /api/tensors/heatmap``, the heatmap its page draws at each step.

A learner's program runs one statement at a time in a sandbox worker, through the program gate
(``app.web.routes.programs``). The autograd page runs programs here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.lessons.errors import LessonInputError, LimitExceeded
from app.viz import tensors as tensor_figures
from app.viz.common import Figure
from app.web.deps import ProgramGateDep, SettingsDep
from app.web.routes.programs import admitted, json_response, program_router
from app.web.schemas import EXAMPLE_PROGRAM, JsonBody, ProgramError

router = program_router()

VALUE_DESCRIPTION = (
    'name -> Value: {"kind": "tensor", "shape", "dtype", "stride", "values", "requires_grad", '
    '"is_leaf", "grad_fn", "grad", "storage", "version"}, {"kind": "ndarray", ...} or '
    '{"kind": "number", "value"}'
)


class ProgramRequest(JsonBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": EXAMPLE_PROGRAM}]})

    code: str = Field(description="PyTorch-flavoured Python: parsed and interpreted, never exec'd")
    steps: Literal["full", "changes", "none"] = Field(
        default="full",
        description='"full": each step holds every variable after it (variables). "changes": '
        "each step holds only the variables new or changed since the step before (changes) and "
        "those deleted (removed), with variables empty; apply removed, then changes, step by "
        'step to a dict to rebuild every variable. "none": no steps are recorded (steps is '
        "empty; the fastest way to run a whole script): the print output comes back in "
        "stdout_after, with error, notices, files and figures as ever. All fit in "
        "max_answer_bytes.",
    )


class StackFrame(BaseModel):
    """One frame of the call stack a step ran in."""

    function: str = Field(
        description='"<module>", or the function\'s qualified name ("Net.forward")'
    )
    line: int = Field(description="the line this frame is at: a caller's is the line of its call")


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
    stack: list[StackFrame] | None = Field(
        default=None,
        description="inside a call only: the frames from the module down to the one running. "
        "The step's variables are then the module's variables by name and each running call's "
        "as name@depth (depth 1 is stack[1], the outermost call), so no frame hides another",
    )


class ProgramFile(BaseModel):
    """A file the program saved in its own in-memory files, offered for download."""

    name: str = Field(description='the name the program gave it, e.g. "model.pth"')
    bytes: int = Field(ge=0, description="its size in bytes (of the decoded base64)")
    base64: str = Field(description="its bytes, base64-encoded")
    kind: Literal["file", "tensorboard"] = Field(
        description='"file": what torch.save (or a write) made, as plain torch.load opens it; '
        '"tensorboard": every SummaryWriter log of the program as one zip, for '
        "tensorboard --logdir <unzipped folder>"
    )


class ProgramFigure(BaseModel):
    """A matplotlib figure the program drew, as a PNG, with the step that drew it."""

    step: int = Field(
        ge=0,
        description="the steps recorded before the statement that drew it ran (plt.show(), or "
        "for a figure never shown, the statement that last drew on it): that statement is step "
        "step + 1 (1-based, steps[step]); past the last step when recording had stopped",
    )
    line: int = Field(ge=0, description="the line of the statement that drew it")
    png: str = Field(description="the PNG's bytes, base64-encoded")
    width: int = Field(ge=1, description="the PNG's width in pixels")
    height: int = Field(ge=1, description="the PNG's height in pixels")


class ProgramResponse(BaseModel):
    steps: list[Step]
    error: ProgramError | None
    truncated: bool = Field(default=False, description="later steps ran but were not recorded")
    notices: list[str] = Field(
        default_factory=list,
        description="what the sandbox trimmed from the answer, each naming the limit it hit "
        "(steps recorded, numbers recorded, max_answer_bytes, printed output)",
    )
    steps_format: Literal["full", "changes", "none"] = Field(
        default="full", description="the format of steps, as the request asked"
    )
    stdout_after: str = Field(
        default="",
        description="print output of the statements after the last recorded step (those not "
        "recorded, and a failing statement's): the steps' stdout, then this, is all it printed",
    )
    statements: int = Field(
        default=0,
        ge=0,
        description="statements the program ran, each loop iteration's again (max_statements)",
    )
    files: list[ProgramFile] = Field(
        default_factory=list,
        description="the files the program saved (torch.save, its SummaryWriter logs as one zip), "
        "within max_files and max_file_bytes",
    )
    figures: list[ProgramFigure] = Field(
        default_factory=list,
        description="the matplotlib figures it drew, in order, within max_figures and "
        "max_figure_pixels",
    )


@router.post("/api/tensors/run", response_model=ProgramResponse)
async def run_tensors(
    body: ProgramRequest, request: Request, settings: SettingsDep, gate: ProgramGateDep
) -> Response:
    """Run a program one statement at a time; every variable after every step (``steps:
    "full"``), only what each step changed (``steps: "changes"``), or no steps at all (``steps:
    "none"``), within max_answer_bytes; with the files it saved and the figures it drew.

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


# What a tensor's element may be in a Value: a number, a bool, or a non-finite float's name.
NON_FINITE = ("nan", "inf", "-inf")


def _check_values(values: Any, shape: list[int], where: str = "values") -> None:
    """``values`` is a nested list of exactly ``shape`` (at most MAX_HEATMAP_DIMS deep)."""
    if not shape:
        if not isinstance(values, bool | int | float) and values not in NON_FINITE:
            raise LessonInputError(
                f"{where} must be a number, true/false or one of {', '.join(NON_FINITE)}, "
                f"not {str(values)[:40]!r}"
            )
        return
    if not isinstance(values, list) or len(values) != shape[0]:
        got = f"{len(values)} items" if isinstance(values, list) else type(values).__name__
        raise LessonInputError(f"{where} must be a list of {shape[0]} (shape {shape}), not {got}")
    for i, item in enumerate(values):
        _check_values(item, shape[1:], f"{where}[{i}]")


def heatmap(name: str | None, value: Mapping[str, Any] | None, settings: Settings) -> Figure:
    """The heatmap of one tensor or array Value (as ``POST /api/tensors/run`` gives it), checked
    first: a 422 names what does not fit its shape, or a tensor with more elements than the
    sandbox lists (``program_max_display_elements``). No name and no value: no tensor to draw."""
    if name is None or value is None:
        if name is not None or value is not None:
            raise LessonInputError("name and value come together: both, or neither (no tensor)")
        return tensor_figures.heatmap(None, None)
    shape = list(value["shape"])
    values = value.get("values")
    limit = settings.program_max_display_elements
    count = math.prod(shape)  # an exact int: a shape sent can be vast
    if values is not None and count > limit:
        shown = count if count < 10**15 else float("inf")  # past a float: "inf"
        raise LimitExceeded(
            "elements of a tensor to draw", "program_max_display_elements", limit, shown
        )
    if values is not None:
        _check_values(values, shape)
    return tensor_figures.heatmap(name, dict(value))


@router.post("/api/tensors/heatmap")
def tensor_heatmap(body: HeatmapRequest, settings: SettingsDep) -> HeatmapResponse:
    """The Tensors page's heatmap of one variable's Value at a step, built by the server as the
    page's first view is; 422 when the values do not fit the shape or number more than
    program_max_display_elements."""
    value = body.value.model_dump() if body.value is not None else None
    return HeatmapResponse(figure=heatmap(body.name, value, settings))
