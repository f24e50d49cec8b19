"""The Saving and loading lesson's API: inspect an uploaded .pth, or evaluate it on a task's
held-out data (``/api/checkpoints/...``, API.md "Training runs").

The routes are ``async`` because the upload is read as it streams in, with its byte limit; the
file is then opened (only ever with ``torch.load(..., weights_only=True)``, in
``app.jobs.safe_load``) and evaluated in the thread pool, never on the event loop.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.jobs import ConfigError
from app.jobs.checkpoints import evaluate_checkpoint, inspect_checkpoint
from app.jobs.safe_load import CheckpointLimits
from app.web.deps import SettingsDep, limits_from
from app.web.uploads import read_upload

router = APIRouter(tags=["checkpoints"])


# -- response models ----------------------------------------------------------------------------


class TensorEntry(BaseModel):
    """One tensor of the model's state_dict."""

    key: str = Field(description="its state_dict key, e.g. conv.weight")
    shape: list[int]
    dtype: str = Field(description="torch's dtype without 'torch.', e.g. float32")
    numel: int = Field(description="elements: the product of the shape")


class Buffer(BaseModel):
    """One tensor the optimizer keeps for a parameter (SGD's momentum_buffer, Adam's exp_avg)."""

    name: str = Field(examples=["momentum_buffer"])
    shape: list[int]
    dtype: str
    numel: int


class ParamState(BaseModel):
    param: int = Field(description="the parameter's id, as the groups' params list it")
    buffers: list[Buffer]
    scalars: dict[str, Any] = Field(
        default_factory=dict, description="non-tensor state values, by name (rare)"
    )


class ParamGroup(BaseModel):
    """A parameter group: every scalar hyperparameter under its own name (lr, momentum,
    dampening, weight_decay, nesterov, ...; lists such as Adam's betas too), and ``params``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"example": {"lr": 0.05, "momentum": 0.9, "params": [0, 1, 2, 3]}},
    )

    params: list[int] = Field(description="ids of the parameters in this group")


class OptimizerState(BaseModel):
    param_groups: list[ParamGroup]
    state: list[ParamState] = Field(description="per parameter id, in id order")


class InspectResponse(BaseModel):
    format: Literal["state_dict", "checkpoint"] = Field(
        description="state_dict: a flat dict name -> tensor; checkpoint: a dict with the "
        "model's state_dict under 'model' (or 'Model') and more"
    )
    epoch: int | None = Field(description="the checkpoint's 'epoch', when it has one")
    tensors: list[TensorEntry] = Field(description="the model's tensors, in the file's order")
    total_parameters: int = Field(
        description="sum of numel over the model's tensors (parameters, and buffers if any)"
    )
    task: str | None = Field(default=None, description="the checkpoint's 'task' (checkpoint only)")
    config: dict[str, Any] | None = Field(
        default=None, description="the checkpoint's 'config' (checkpoint only)"
    )
    optimizer: OptimizerState | None = Field(
        default=None, description="the checkpoint's optimizer state_dict, described"
    )
    other_keys: dict[str, str] = Field(
        default_factory=dict,
        description="any other key of the checkpoint, with a short description of its value",
    )
    bytes: int = Field(description="the file's size")


class EvaluateResponse(BaseModel):
    task: str
    config: dict[str, Any] = Field(description="the config the model was built with")
    format: Literal["state_dict", "checkpoint"]
    epoch: int | None
    loss: float | None = Field(
        description="on the task's held-out data (cross-entropy; MSE for linear regression); "
        "null when not finite"
    )
    accuracy: float | None = Field(description="null for linear-regression")
    n: int = Field(description="held-out examples scored")
    predicted: list[int] = Field(description="each held-out example's class (empty: regression)")
    labels: list[int] = Field(description="each held-out example's true class")
    result: dict[str, Any] = Field(description="the task's own evaluate() output")


class ErrorBody(BaseModel):
    detail: str
    limit: str | None = Field(default=None, description="the setting of a limit that was hit")
    refused: str | None = Field(
        default=None, description="the global a refused pickle asked for, e.g. posix.system"
    )


class MismatchEntry(BaseModel):
    key: str
    file: list[int] = Field(description="the shape in the file")
    model: list[int] = Field(description="the shape the model has")


class ArchitectureErrorBody(ErrorBody):
    missing: list[str] = Field(default_factory=list, description="keys the model needs")
    unexpected: list[str] = Field(default_factory=list, description="keys it has no place for")
    mismatched: list[MismatchEntry] = Field(default_factory=list)
    field: str | None = Field(default=None, description="a bad form field: task or config")


ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "the file is over max_checkpoint_bytes"},
    422: {
        "model": ArchitectureErrorBody,
        "description": "not a torch.save file, damaged, over a limit, refused (it would run "
        "code), or (evaluate) the wrong architecture or a bad task/config",
    },
}

CheckpointFile = Annotated[
    UploadFile,
    File(description="a .pth file torch.save wrote: a state_dict or a checkpoint dict"),
]


def checkpoint_limits(settings: SettingsDep) -> CheckpointLimits:
    """The lesson's limits on an uploaded file, from the settings of the same names."""
    return limits_from(settings, CheckpointLimits)


CheckpointLimitsDep = Annotated[CheckpointLimits, Depends(checkpoint_limits)]


async def read_checkpoint(file: UploadFile, settings: SettingsDep) -> bytes:
    return await read_upload(
        file, settings, limit=settings.max_checkpoint_bytes, setting="max_checkpoint_bytes"
    )


def parse_config(text: str | None) -> dict[str, Any] | None:
    """The config form field: a JSON object, or None when it is left out or blank."""
    if text is None or not text.strip():
        return None
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        where = (
            f" ({error.msg} at character {error.pos})"
            if isinstance(error, json.JSONDecodeError)
            else ""
        )
        raise ConfigError(
            f'config is not valid JSON{where}: send an object such as {{"channels": 8}}.',
            "config",
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(
            f'config must be a JSON object such as {{"channels": 8}}, not {type(config).__name__}.',
            "config",
        )
    return config


# -- routes ---------------------------------------------------------------------------------------


@router.post("/api/checkpoints/inspect", responses=ERRORS)
async def inspect(
    file: CheckpointFile, settings: SettingsDep, limits: CheckpointLimitsDep
) -> InspectResponse:
    """What a .pth holds: the model's tensors (key, shape, dtype, numel), the parameter count,
    and for a checkpoint its epoch, task, config, optimizer state (momentum buffers...) and any
    other keys. Opened only with ``torch.load(..., weights_only=True)``: a pickle that would run
    code is refused with 422 and never runs."""
    data = await read_checkpoint(file, settings)
    report = await run_in_threadpool(inspect_checkpoint, data, limits)
    return InspectResponse.model_validate(report)


@router.post("/api/checkpoints/evaluate", responses=ERRORS)
async def evaluate(
    file: CheckpointFile,
    settings: SettingsDep,
    limits: CheckpointLimitsDep,
    task: Annotated[
        str | None,
        Form(
            description="the task whose model to load it into (default: the checkpoint's "
            "'task', else digits-cnn)"
        ),
    ] = None,
    config: Annotated[
        str | None,
        Form(
            description="that task's config as a JSON object (default: the checkpoint's "
            "'config' when it is the same task's, else the task's defaults)",
            examples=['{"channels": 8}'],
        ),
    ] = None,
) -> EvaluateResponse:
    """Load the file's state_dict into the task's model (strict ``load_state_dict``), switch to
    ``model.eval()`` and score it on the task's held-out data. The wrong architecture is a 422
    that lists every missing, unexpected and mismatched key."""
    parsed = parse_config(config)
    data = await read_checkpoint(file, settings)
    result = await run_in_threadpool(evaluate_checkpoint, data, limits, task or None, parsed)
    return EvaluateResponse.model_validate(result)
