"""Imported once by the runner's fork server, so every run starts with torch, the tasks, the
TensorBoard writer and the digits already in memory: each run is then a fork (milliseconds), not
a second of imports."""

from torch.utils.tensorboard import SummaryWriter

from app.jobs import classifier, tasks, tracking

classifier.digits_split(0)  # loads scikit-learn's digits into the cache the forks inherit

__all__ = ["SummaryWriter", "classifier", "tasks", "tracking"]
