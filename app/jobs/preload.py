"""Imported once by the runner's fork server, so every run starts warm: a fork (milliseconds)
instead of a second or more of imports.

It imports the worker side (``run_worker``) and the tasks. That is not enough: torch imports
much of itself lazily on first use (the first optimizer step pulls in torch._dynamo and sympy:
about a second on its own). So the fork server also trains each task for a moment, and every run
forked from it inherits all of that loaded.
"""

from torch.utils.tensorboard import SummaryWriter

from app.jobs import classifier, run_worker, tasks, tracking, transfer


def _warm_up() -> None:
    import torch

    with torch.random.fork_rng(devices=[]):
        calls = iter(range(3))  # should_stop: False for two batches, then stop
        classifier.train_digits(
            classifier.DigitsConfig(epochs=1), lambda *_: None, lambda: next(calls, 2) >= 2
        )
        transfer.pretrained()  # the source model, trained once: every run inherits it
        for stage in ("manual", "autograd", "nn"):
            tasks.train_linear_regression(
                tasks.LinearRegressionConfig(stage=stage, epochs=2), lambda *_: None, lambda: False
            )


_warm_up()

__all__ = ["SummaryWriter", "classifier", "run_worker", "tasks", "tracking", "transfer"]
