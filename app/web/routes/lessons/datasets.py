"""The Datasets and DataLoaders lesson's API: ``POST /api/data/batches``, the indices a real
DataLoader draws (API.md "Data and transforms")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.lessons import datasets
from app.lessons.datasets import BatchLimits
from app.web.deps import SettingsDep, limits_from
from app.web.schemas import JsonBody

router = APIRouter(tags=["data"])


def batch_limits(settings: SettingsDep) -> BatchLimits:
    """The datasets lesson's limits, from the settings of the same names."""
    return limits_from(settings, BatchLimits)


BatchLimitsDep = Annotated[BatchLimits, Depends(batch_limits)]


class BatchesRequest(JsonBody):
    size: int = Field(default=10, description="samples in the Dataset, 1 to max_dataset_size")
    batch_size: int = Field(default=4, description="samples per batch")
    shuffle: bool = Field(default=False, description="a new order every epoch")
    drop_last: bool = Field(default=False, description="drop a last batch that is short")
    epochs: int = Field(default=1, description="passes over the whole dataset")
    seed: int = Field(default=0, description="seeds the shuffle, so a link replays it")


class BatchesResponse(BaseModel):
    batches_per_epoch: int = Field(description="ceil(size / batch_size), floor with drop_last")
    epochs: list[list[list[int]]] = Field(description="per epoch, per batch, the sample indices")


@router.post("/api/data/batches")
def batches(body: BatchesRequest, limits: BatchLimitsDep) -> BatchesResponse:
    """Iterate a DataLoader over a Dataset subclass and report which samples each batch held."""
    datasets.check_batches(
        body.size, body.batch_size, body.epochs, body.seed, body.drop_last, limits
    )
    drawn = datasets.draw_batches(
        body.size, body.batch_size, body.shuffle, body.drop_last, body.epochs, body.seed
    )
    per_epoch = datasets.batches_per_epoch(body.size, body.batch_size, body.drop_last)
    return BatchesResponse(batches_per_epoch=per_epoch, epochs=drawn)
