"""What a run leaves on disk besides its checkpoint: TensorBoard event files and a summary.

Every metric is written through ``torch.utils.tensorboard.SummaryWriter`` as it arrives (by the
runner's supervisor, with the wall time the worker logged it at), so ``tensorboard --logdir <run
dir>/tensorboard`` shows the same scalars the app streams. At the end the worker adds, in its
own event file beside them, what the task's summary holds (per-class precision/recall curves,
sample predictions as images, the architecture as text), and writes the summary as
``summary.json`` for the app's own Tracking views.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TENSORBOARD_DIR = "tensorboard"
SUMMARY_FILE = "summary.json"
WRITER_QUEUE = 100_000  # events held in memory before add_* waits; a run logs a few thousand


class ArtifactMissing(LookupError):
    """The run exists but has not written this file (yet)."""

    def __init__(self, run: Any, what: str) -> None:
        why = (
            f"it is still {run.status}"
            if not run.is_final
            else f"it ended {run.status} before writing one"
        )
        super().__init__(f"Run {run.id} has no {what}: {why}.")


def open_writer(artifacts_dir: Path) -> Any:
    """A SummaryWriter for the run (imported here: the tensorboard package is heavy)."""
    from torch.utils.tensorboard import SummaryWriter

    # A deep queue: with the default of 10, every add_scalar waits for the writer thread, which
    # cost a training step ~60 us of GIL ping-pong per scalar (make bench measured it).
    return SummaryWriter(
        log_dir=str(artifacts_dir / TENSORBOARD_DIR), max_queue=WRITER_QUEUE, flush_secs=5
    )


def write_summary(
    writer: Any, artifacts_dir: Path, summary: dict[str, Any] | None, step: int
) -> None:
    """Write the task's summary as ``summary.json`` and as TensorBoard's own panels."""
    import torch  # here, not at the top: the web layer reads summaries without torch

    summary = summary or {}
    (artifacts_dir / SUMMARY_FILE).write_text(json.dumps(summary))
    rows = summary.get("architecture") or []
    if rows:
        table = "| layer | output shape | parameters |\n|---|---|---|\n" + "\n".join(
            f"| {r['name']}: {r['layer']} | {tuple(r['output_shape'])} | {r['parameters']} |"
            for r in rows
        )
        writer.add_text("architecture", table, step)
    evaluation = summary.get("eval")
    if evaluation:
        labels = torch.tensor(evaluation["labels"])
        probs = torch.tensor(evaluation["probabilities"])
        for k, name in enumerate(summary.get("classes") or range(probs.shape[1])):
            writer.add_pr_curve(f"pr/class_{name}", labels == k, probs[:, k], step)
    samples = summary.get("samples") or []
    if samples:
        images = torch.tensor([s["image"] for s in samples]).unsqueeze(1).clamp(0, 1)
        writer.add_images("samples", images, step, dataformats="NCHW")
        writer.add_text(
            "samples/predictions",
            ", ".join(f"{s['predicted']} (true {s['label']})" for s in samples),
            step,
        )
    writer.flush()


def parse_summary(data: bytes | str | None) -> dict[str, Any] | None:
    """A ``summary.json``'s contents (None when there is none, or it is not an object)."""
    if data is None:
        return None
    summary = json.loads(data)
    return summary if isinstance(summary, dict) else None


def read_summary(artifacts_dir: Path) -> dict[str, Any] | None:
    path = artifacts_dir / SUMMARY_FILE
    return parse_summary(path.read_bytes()) if path.is_file() else None
