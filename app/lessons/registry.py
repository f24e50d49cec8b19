"""The eleven lessons, in the order of the curriculum notes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lesson:
    """One section of the notes, taught by one page."""

    slug: str
    title: str
    section: str  # the notes' heading this lesson teaches
    summary: str
    apis: tuple[str, ...] = field(default=())  # the JSON twins the page stands on
    parent: str | None = None  # a deeper page of this lesson (not one of the eleven)

    @property
    def path(self) -> str:
        """The page's URL path."""
        return f"/lessons/{self.slug}"


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "tensors",
        "Tensor basics",
        "Tensor Basics",
        "Create tensors, reshape them with view(4, -1), slice them, and watch .numpy() "
        "share memory.",
        apis=("POST /api/tensors/run",),
    ),
    Lesson(
        "autograd",
        "Gradient calculation",
        "Gradient Calculation",
        "See the dynamic computation graph: y = x + 2 gives AddBackward0, and backward() "
        "walks it with the chain rule.",
        apis=("POST /api/autograd/graph", "POST /api/tensors/run"),
    ),
    Lesson(
        "training-pipeline",
        "Training pipeline",
        "Training Pipeline",
        "Linear regression three ways: manual gradients, autograd with optim.SGD, and nn.Linear.",
        apis=("GET /api/lessons/{slug}/view", "POST /api/runs"),
    ),
    Lesson(
        "datasets",
        "Datasets and DataLoaders",
        "Datasets and Dataloaders",
        "A Dataset with __getitem__ and __len__, and the batches a DataLoader draws each epoch.",
        apis=("POST /api/data/batches", "GET /api/lessons/{slug}/view"),
    ),
    Lesson(
        "transforms",
        "Transforms",
        "Transforms",
        "Resize, rotate, grayscale and normalise your own picture, one Compose stage at a time.",
        apis=("POST /api/transforms/apply",),
    ),
    Lesson(
        "softmax-cross-entropy",
        "Softmax and cross entropy",
        "Softmax and Cross Entropy",
        "Turn logits into probabilities, and see why the loss is -log(p) of the true class.",
        apis=("POST /api/softmax",),
    ),
    Lesson(
        "activations",
        "Activation functions",
        "Activation Functions",
        "Sigmoid, tanh, ReLU and leaky ReLU with their derivatives, vanishing gradients, "
        "and dead ReLUs.",
        apis=(
            "GET /api/activations/{name}",
            "POST /api/activations/vanishing",
            "POST /api/activations/dead-relu",
        ),
    ),
    Lesson(
        "cnn",
        "Convolutional neural networks",
        "Convoluted Neural Networks",
        "Slide a 2x2 filter over a 3x3 input, filter your own picture, and max-pool 4x4 to 2x2.",
        apis=("POST /api/cnn/convolve", "POST /api/cnn/pool", "POST /api/cnn/image"),
    ),
    Lesson(
        "transfer-learning",
        "Transfer learning",
        "Transfer Learning",
        "Reuse a trained feature extractor for a new task: freeze it, fine-tune it, or start "
        "from scratch.",
        apis=(
            "GET /api/lessons/{slug}/view",
            "POST /api/runs",
            "GET /api/runs/{run_id}/events",
        ),
    ),
    Lesson(
        "tracking",
        "Tracking with TensorBoard",
        "Tensorboard",
        "Loss and accuracy curves, model architecture, images and precision/recall, as "
        "TensorBoard shows them.",
        apis=(
            "GET /api/lessons/{slug}/view",
            "GET /api/runs/{run_id}",
            "GET /api/runs/{run_id}/events",
            "GET /api/runs/{run_id}/tensorboard",
        ),
    ),
    Lesson(
        "saving-loading",
        "Saving and loading",
        "Saving and Loading Models",
        "torch.save a state_dict, load it back, and checkpoint {'Model', 'Optim', 'epoch'}.",
        apis=(
            "POST /api/checkpoints/inspect",
            "POST /api/checkpoints/evaluate",
            "POST /api/runs",
            "GET /api/runs/{run_id}/checkpoint",
        ),
    ),
)

# Deeper pages that belong to a lesson: reached from it, with its place in the notes' order.
SUBPAGES: tuple[Lesson, ...] = (
    Lesson(
        "cnn-feature-maps",
        "CNN feature maps",
        "Convoluted Neural Networks",
        "Inside a trained CNN: what each conv layer's channels respond to, layer by layer.",
        apis=("GET /api/lessons/{slug}/view",),
        parent="cnn",
    ),
)

BY_SLUG: dict[str, Lesson] = {lesson.slug: lesson for lesson in (*LESSONS, *SUBPAGES)}


def neighbours(slug: str) -> tuple[Lesson | None, Lesson | None]:
    """The lessons before and after ``slug`` in the notes' order; a deeper page sits between
    its lesson and the lesson after it."""
    parent = BY_SLUG[slug].parent
    if parent is not None:
        return BY_SLUG[parent], neighbours(parent)[1]
    index = [lesson.slug for lesson in LESSONS].index(slug)
    before = LESSONS[index - 1] if index > 0 else None
    after = LESSONS[index + 1] if index + 1 < len(LESSONS) else None
    return before, after
