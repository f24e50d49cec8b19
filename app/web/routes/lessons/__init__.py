"""Each lesson's own routes, one module per lesson under the lesson's name (its slug from
``app.lessons.registry`` with ``-`` as ``_``): the lesson's ``router``, its request and response
models, and its ``*LimitsDep``.

Lessons with no module here have no routes of their own: their pages stand on the shared ones
(``GET /api/lessons/{slug}/view`` in ``pages.py``, the runs API in ``runs.py``, the sample
pictures in ``images.py``).
"""

from __future__ import annotations

from fastapi import APIRouter

from app.web.routes.lessons import (
    activations,
    autograd,
    cnn,
    datasets,
    saving_loading,
    softmax_cross_entropy,
    tensors,
    transforms,
)

# In the notes' order (app.lessons.registry), which is the order /docs lists them in.
LESSON_ROUTERS: tuple[APIRouter, ...] = (
    tensors.router,
    autograd.router,
    datasets.router,
    transforms.router,
    softmax_cross_entropy.router,
    activations.router,
    cnn.router,
    saving_loading.router,
)
