"""Every live lesson page's view, by slug: one module per lesson."""

from __future__ import annotations

from app.web.views import (
    activations,
    autograd,
    cnn,
    cnn_feature_maps,
    datasets,
    saving_loading,
    softmax_cross_entropy,
    tensors,
    tracking,
    training_pipeline,
    transfer_learning,
    transforms,
)
from app.web.views.base import LessonView

VIEWS: dict[str, LessonView] = {
    view.slug: view
    for view in (
        softmax_cross_entropy.VIEW,
        activations.VIEW,
        tensors.VIEW,
        autograd.VIEW,
        cnn.VIEW,
        datasets.VIEW,
        transforms.VIEW,
        tracking.VIEW,
        training_pipeline.VIEW,
        transfer_learning.VIEW,
        saving_loading.VIEW,
        cnn_feature_maps.VIEW,
    )
}

__all__ = ["VIEWS", "LessonView"]
