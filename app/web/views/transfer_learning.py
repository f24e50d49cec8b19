"""The Transfer learning page: three ways to reuse a pretrained feature extractor, measured on
the example runs or on the learner's own runs, followed live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.jobs import transfer as transfer_task
from app.lessons import transfer_learning as transfer
from app.viz import transfer_learning as transfer_figures
from app.web.forms import params_from_query
from app.web.views.base import LessonView, source
from app.web.views.tracking import run_ids, tracked_run


def _parse(query: Mapping[str, str], settings: Settings) -> transfer.TransferParams:
    return params_from_query(transfer.TransferParams(), query, {})


def _explore(params: transfer.TransferParams, settings: Settings, runs: Any) -> dict[str, Any]:
    ids = run_ids(params.runs, settings.tracking_max_runs)
    transfer.check_params(params)
    task = transfer_task.TRANSFER.name
    chosen = [tracked_run(runs, i, task) for i in ids] if ids else transfer.example_runs()
    return transfer.explore(params, chosen, examples=not ids)


def _figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "curves": transfer_figures.curves_figure(
            result["metric"], result["series"], result["per_epoch"]
        ),
        "sweep": transfer_figures.sweep_figure(
            result["sweep"], transfer_task.MODES, result["chosen_examples"]
        ),
    }


def _form(params: transfer.TransferParams) -> dict[str, Any]:
    return asdict(params)


def _snippet(params: transfer.TransferParams) -> str:
    return f'''"""Transfer learning on scikit-learn's digits: pretrain on 0-4, adapt to 5-9."""
import torch
from sklearn.datasets import load_digits
from torch import nn

torch.manual_seed(0)
digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
labels = torch.tensor(digits.target)
order = torch.randperm(len(labels))
test, train = order[:359], order[359:]


def make_net(classes):
    features = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    )
    return nn.Sequential(features, nn.Linear(64, classes))


def fit(model, params, x, y, epochs, batch=10):
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    for _ in range(epochs):
        for i in torch.randperm(len(y)).split(batch):
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


# 1. The source task: digits 0-4, every training example.
src = train[labels[train] < 5]
source = make_net(5)
fit(source, source.parameters(), images[src], labels[src], epochs=12, batch=32)

# 2. The target task: digits 5-9 (relabelled 0-4) with {params.examples} labelled examples each.
pool = train[labels[train] >= 5]
few = torch.cat([pool[labels[pool] == d][:{params.examples}] for d in range(5, 10)])
x, y = images[few], labels[few] - 5
held = test[labels[test] >= 5]

for mode in ("feature-extract", "finetune", "scratch"):
    torch.manual_seed(1)
    model = make_net(5)  # a new head (and, for scratch, a new body)
    if mode != "scratch":
        model[0].load_state_dict(source[0].state_dict())  # the pretrained feature extractor
    if mode == "feature-extract":
        model[0].requires_grad_(False)  # frozen: only the new head trains
        params = model[1].parameters()
    elif mode == "finetune":  # everything trains, the body ten times slower
        params = [{{"params": model[0].parameters(), "lr": 0.005}},
                  {{"params": model[1].parameters()}}]
    else:
        params = model.parameters()
    fit(model, params, x, y, epochs={params.epochs})
    with torch.no_grad():
        accuracy = (model(images[held]).argmax(1) == labels[held] - 5).float().mean()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{{mode:16}} trainable {{trainable:5}}  held-out accuracy {{accuracy:.3f}}")
'''


VIEW = LessonView(
    slug="transfer-learning",
    parse=_parse,
    explore=_explore,
    figures=_figures,
    code={
        "modes": source(transfer_task.build_model),
        "pretrain": source(transfer_task.pretrain_source),
        "data": source(transfer_task.target_data, transfer_task.few_per_class),
        "table": source(transfer_task.parameter_table),
        "measure": source(transfer.epoch_curve, transfer.curve_summary),
    },
    snippet=_snippet,
    form=_form,
    uses_runs=True,
)
