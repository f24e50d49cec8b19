"""Process-wide torch settings for the web process."""

from __future__ import annotations

import torch


def configure_torch(threads: int) -> None:
    """Lesson tensors are tiny: more intra-op threads only contend between requests."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
