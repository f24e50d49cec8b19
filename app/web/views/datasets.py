"""The Datasets and DataLoaders page: a Dataset over the wine table, and the batches a loader draws.

The URL holds every control, the step-through's iteration included. The server runs the loader
with num_workers=0 whatever the page shows: worker processes never start in the web process, and
with a seeded generator the batches would be the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.lessons import datasets
from app.viz import datasets as datasets_figures
from app.web.deps import limits_from
from app.web.forms import params_from_query, parse_bool
from app.web.views.base import LessonView, source


def _parse(query: Mapping[str, str], settings: Settings) -> datasets.DatasetsParams:
    special = {
        "shuffle": lambda text: parse_bool("shuffle", text),
        "drop_last": lambda text: parse_bool("drop_last", text),
    }
    return params_from_query(datasets.DatasetsParams(), query, special)


def _explore(params: datasets.DatasetsParams, settings: Settings) -> dict[str, Any]:
    limits = limits_from(settings, datasets.BatchLimits)
    result = datasets.explore(params, limits)
    result["limits"] = asdict(limits)
    return result


VIEW = LessonView(
    slug="datasets",
    parse=_parse,
    explore=_explore,
    figures=datasets_figures.figures,
    code={
        "dataset": source(datasets.WineDataset),
        "loop": source(datasets.make_loader, datasets.wine_batches),
        "count": source(datasets.batches_per_epoch),
    },
    snippet=datasets.snippet,
    form=asdict,
)
