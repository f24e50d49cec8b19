"""Plain-words hints for the errors beginners meet most, read off PyTorch's own exception.

PyTorch's messages are exact but terse ("mat1 and mat2 shapes cannot be multiplied (4x3 and
2x5)"). A hint says the same thing in a learner's words, with the program's own shapes and
values, and names the usual fix. Each hint is computed from the exception PyTorch (or NumPy)
raised: its message, parsed with the patterns below, and where the message leaves something out
(which layer raised, how many classes the loss saw), the library frames of its traceback. The
error's ``message`` stays PyTorch's own; the hint goes beside it, so a wrong hint can only add
words, never hide the real error.

CrossEntropyLoss on probabilities raises nothing, so it is a notice of the run instead
(``notice_probabilities``), checked only when a program calls ``nn.CrossEntropyLoss`` or
``F.cross_entropy``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from types import CodeType
from typing import Any

import torch
import torch.nn.functional as torch_f
from torch import nn

from app.sandbox.guards import Guard

Builder = Callable[[re.Match[str], BaseException], str | None]

# PyTorch's dtype names as its messages spell them ("Long", "long int"): the name its messages
# use most, and the torch name a program writes.
_DTYPES = {
    "float": ("Float", "torch.float32"),
    "double": ("Double", "torch.float64"),
    "half": ("Half", "torch.float16"),
    "bfloat16": ("BFloat16", "torch.bfloat16"),
    "long": ("Long", "torch.int64"),
    "long int": ("Long", "torch.int64"),
    "int": ("Int", "torch.int32"),
    "short": ("Short", "torch.int16"),
    "char": ("Char", "torch.int8"),
    "byte": ("Byte", "torch.uint8"),
    "unsigned char": ("Byte", "torch.uint8"),
    "bool": ("Bool", "torch.bool"),
}
_FLOATING = frozenset({"float", "double", "half", "bfloat16"})
# A probability row sums to 1 within this (softmax in float32 is well inside it).
_SUM_TOLERANCE = 1e-4
_PROBABILITIES = "was given probabilities (each row sums to 1)"


def hint_for(exc: BaseException, message: str) -> str | None:
    """A plain-words hint for a beginner's error, or None when there is none for it.

    Args:
        exc: the exception the program raised (PyTorch's, NumPy's or Python's own).
        message: its text as the answer shows it (``error_message``), which is what is parsed.

    Never raises: a hint is a courtesy, and the error must come back whatever happens here.
    """
    try:
        for pattern, build in _RULES:
            match = pattern.search(message)
            if match is not None:
                return build(match, exc)
    except Exception:
        return None
    return None


def notice_probabilities(
    guard: Guard, name: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
) -> None:
    """Add a notice (once a run) when a cross-entropy ``input`` holds probabilities.

    ``nn.CrossEntropyLoss`` and ``F.cross_entropy`` apply log_softmax themselves, so softmax's
    output goes through softmax twice and the loss barely learns, with no error to say so. Rows
    (along the class dimension, 1, or 0 for one unbatched sample) that all lie in [0, 1] and sum
    to 1 are that mistake. Costs one pass over the input, only on these two callables; never
    raises.
    """
    try:
        if any(_PROBABILITIES in notice for notice in guard.notices):
            return
        scores = args[0] if args else (kwargs or {}).get("input")
        if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
            return
        class_dim = 1 if scores.dim() >= 2 else 0
        if scores.dim() == 0 or scores.shape[class_dim] < 2 or scores.numel() == 0:
            return
        with torch.no_grad():
            values = scores.detach()
            low, high = torch.aminmax(values)  # one pass, no tensor of the input's size
            if not (bool(low >= 0) and bool(high <= 1)):
                return
            sums = values.sum(dim=class_dim, dtype=torch.float64)
            if not bool(((sums - 1).abs() <= _SUM_TOLERANCE).all()):
                return
        guard.notice(
            f"line {guard.line}: {name} {_PROBABILITIES}: it applies log_softmax itself, so "
            "pass the raw scores (logits), not softmax's output"
        )
    except Exception:
        return


# -- reading the exception -------------------------------------------------------------------------

# (pattern, builder) in the order they are tried: the builders below register themselves.
_RULES: list[tuple[re.Pattern[str], Builder]] = []


def _rule(pattern: str) -> Callable[[Builder], Builder]:
    """Register ``build`` for the messages ``pattern`` finds (its groups are what it reads)."""

    def register(build: Builder) -> Builder:
        _RULES.append((re.compile(pattern), build))
        return build

    return register


def _raised_in(exc: BaseException, code: CodeType) -> dict[str, Any] | None:
    """The locals of the library frame running ``code`` when ``exc`` was raised, if it ran."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return tb.tb_frame.f_locals
        tb = tb.tb_next
    return None


def _dtype(name: str) -> str:
    """``Float (torch.float32)``: PyTorch's name for a dtype with the one a program writes."""
    known = _DTYPES.get(name.strip().lower())
    return f"{known[0]} ({known[1]})" if known else name.strip()


def _convert_to(name: str) -> str:
    """The tensor method that converts to dtype ``name`` (``.float()``, ``.long()``)."""
    known = _DTYPES.get(name.strip().lower())
    return f".{known[0].lower()}()" if known else f".to(torch.{name.strip().lower()})"


def _dims(text: str) -> list[int]:
    return [int(d) for d in re.findall(r"-?\d+", text)]


# -- shapes ----------------------------------------------------------------------------------------


@_rule(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")
def _matmul(match: re.Match[str], exc: BaseException) -> str:
    n, k, k2, m = (int(match.group(i)) for i in range(1, 5))
    hint = (
        f"The shapes {n}x{k} and {k2}x{m} cannot be multiplied: the {k} columns of the first "
        f"must equal the {k2} rows of the second."
    )
    if _raised_in(exc, nn.Linear.forward.__code__) is not None:
        return (
            f"{hint} Here the second is the weight of an nn.Linear({k2}, {m}) (in_features x "
            f"out_features), so check in_features of your nn.Linear: it takes rows of {k2} "
            f"features but was given rows of {k}. Make it nn.Linear({k}, {m}), or reshape the "
            "input. After a Conv2d and a flatten, in_features is channels x height x width of "
            f"what the convolutions produce ({k} here)."
        )
    return (
        f"{hint} Transpose one of them (.T) or reshape it so the inner sizes agree; if the "
        f"second is an nn.Linear's weight, check the in_features of your nn.Linear ({k} here)."
    )


@_rule(r"size mismatch, got input \(\d+\), mat \((\d+)x(\d+)\), vec \((\d+)\)")
def _matrix_vector(match: re.Match[str], exc: BaseException) -> str:
    rows, cols, length = int(match.group(1)), int(match.group(2)), int(match.group(3))
    return (
        f"A {rows}x{cols} matrix times a vector of {length}: the {cols} columns of the matrix "
        f"must equal the vector's length ({length})."
    )


@_rule(
    r"Expected size for first two dimensions of batch2 tensor to be: \[([\d, ]+)\]"
    r" but got: \[([\d, ]+)\]"
)
def _batched_matmul(match: re.Match[str], exc: BaseException) -> str:
    expected, got = match.group(1), match.group(2)
    return (
        f"In a batched matrix product the second tensor's first two dimensions must be "
        f"[{expected}] (the batch size, then the last size of the first tensor), but they are "
        f"[{got}]: the last dimension of the first must equal the second-to-last of the second."
    )


@_rule(
    r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at"
    r" non-singleton dimension (\d+)"
)
def _broadcast(match: re.Match[str], exc: BaseException) -> str:
    a, b, dim = match.group(1), match.group(2), match.group(3)
    return (
        f"At dimension {dim} the first tensor has size {a} and the second size {b}. Elementwise "
        "operations line the shapes up from the last dimension, and each pair of sizes must be "
        f"equal or one of them 1 (broadcasting): {a} and {b} are neither. Print both .shape, and "
        "reshape one (.view, .unsqueeze) or check it is the tensor you meant."
    )


@_rule(r"operands could not be broadcast together with shapes ((?:\([-\d, ]*\) ?)+)")
def _numpy_broadcast(match: re.Match[str], exc: BaseException) -> str:
    shapes = [_dims(s) for s in re.findall(r"\(([-\d, ]*)\)", match.group(1))]
    hint = (
        f"NumPy lines the shapes {' and '.join(str(tuple(s)) for s in shapes)} up from the last "
        "dimension, and each pair of sizes must be equal or one of them 1 (broadcasting)"
    )
    if len(shapes) == 2:
        for a, b in zip(reversed(shapes[0]), reversed(shapes[1]), strict=False):
            if a != b and 1 not in (a, b):
                return f"{hint}: {a} and {b} are neither."
    return f"{hint}."


@_rule(
    r"weight of size \[([\d, ]+)\], expected input\[([\d, ]+)\] to have (\d+)"
    r" channels, but got (\d+) channels"
)
def _conv_channels(match: re.Match[str], exc: BaseException) -> str:
    weight, shape = _dims(match.group(1)), _dims(match.group(2))
    expected, got = int(match.group(3)), int(match.group(4))
    hint = (
        f"This Conv2d's weight {weight} (out_channels, in_channels, kernel height, kernel width) "
        f"takes inputs with {expected} channel{'s' if expected != 1 else ''}, but the input "
        f"{shape} ({'N, C, H, W' if len(shape) == 4 else 'C, H, W'}) has {got}. The in_channels "
        "of a Conv2d must equal the channels of what reaches it: the picture's channels (1 grey, "
        "3 colour) for the first, the previous Conv2d's out_channels after that"
    )
    if len(shape) == 4 and shape[-1] == expected:
        return f"{hint}. Its channels look last (N, H, W, C): move them with x.permute(0, 3, 1, 2)."
    return f"{hint}: make it nn.Conv2d({got}, ...) or check the input's shape."


@_rule(
    r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of"
    r" size: \[([\d, ]*)\]"
)
def _conv_rank(match: re.Match[str], exc: BaseException) -> str:
    shape = _dims(match.group(1))
    hint = (
        f"Conv2d takes a batch (N, C, H, W) or one picture (C, H, W); this input {shape} has "
        f"{len(shape)} dimension{'s' if len(shape) != 1 else ''}"
    )
    if len(shape) == 2:
        return (
            f"{hint}: add the channel and batch dimensions, x.view(1, 1, {shape[0]}, {shape[1]}) "
            "(or x.unsqueeze(0).unsqueeze(0))."
        )
    return f"{hint}: reshape it to (N, C, H, W)."


@_rule(r"shape '\[([-\d, ]*)\]' is invalid for input of size (\d+)")
def _view(match: re.Match[str], exc: BaseException) -> str:
    dims, size = _dims(match.group(1)), int(match.group(2))
    known = [d for d in dims if d != -1]
    product = math.prod(known)
    if -1 in dims:
        parts = f"{' x '.join(map(str, known))} = {product}" if len(known) > 1 else str(product)
        return (
            f"The tensor has {size} elements, which cannot be split into parts of {parts} "
            f"({size} is not a multiple of {product}): check the sizes around the -1, or the "
            "tensor's own .shape."
        )
    return (
        f"The shape [{match.group(1)}] holds {' x '.join(map(str, dims))} = {product} elements but "
        f"the tensor has {size}: a view or reshape keeps every element, so the sizes must "
        "multiply to the same number. Write -1 for one size to let PyTorch work it out."
    )


@_rule(
    r"Sizes of tensors must match except in dimension (\d+)\. Expected size (\d+) but"
    r" got size (\d+) for tensor number (\d+)"
)
def _cat(match: re.Match[str], exc: BaseException) -> str:
    dim, expected, got, number = (match.group(i) for i in range(1, 5))
    return (
        f"torch.cat joins along dimension {dim}, so every other dimension must have the same "
        f"size: the first tensor has {expected} where tensor number {number} (counting from 0) "
        f"has {got}. Join along another dimension with dim=, or check the shapes."
    )


# -- autograd --------------------------------------------------------------------------------------


@_rule(r"Trying to backward through the graph a second time")
def _backward_twice(match: re.Match[str], exc: BaseException) -> str:
    return (
        "backward() already went through this graph once and freed what it saved. Usually the "
        "fix is to recompute the forward pass (the output and the loss) each iteration, inside "
        "the loop, so each backward() has a fresh graph. Pass retain_graph=True to the first "
        "backward() only if you really need to go through the same graph twice."
    )


@_rule(r"element \d+ of tensors does not require grad and does not have a grad_fn")
def _no_grad_fn(match: re.Match[str], exc: BaseException) -> str:
    return (
        "The tensor you called backward() on has no graph behind it: none of the tensors it was "
        "computed from has requires_grad=True, or it was computed inside torch.no_grad(), or "
        "from a .detach()ed tensor. Make the weights with requires_grad=True (nn layers do), "
        "and compute the loss outside torch.no_grad() and without .detach()."
    )


@_rule(r"grad can be implicitly created only for scalar outputs")
def _not_scalar(match: re.Match[str], exc: BaseException) -> str:
    found = _raised_in(exc, torch.Tensor.backward.__code__)
    tensor = found.get("self") if found else None
    shape = (
        f" (this output has shape {list(tensor.shape)})" if isinstance(tensor, torch.Tensor) else ""
    )
    return (
        f"backward() without arguments needs a single number, such as a loss{shape}: reduce "
        "the output first with .sum() or .mean(), or pass gradient= a tensor of the output's "
        "shape."
    )


@_rule(r"a (view of a )?leaf Variable that requires grad is being used in an in-place operation")
def _leaf_in_place(match: re.Match[str], exc: BaseException) -> str:
    through = " (here through an index or a view of it, as in w[0] = ...)" if match.group(1) else ""
    return (
        "A leaf tensor that requires grad (one made with requires_grad=True, or a layer's "
        f"parameter) was changed in place{through}, which autograd cannot record. Put the "
        "update under torch.no_grad(), as in with torch.no_grad(): w -= lr * w.grad, or let "
        "an optimizer's step() do it."
    )


@_rule(
    r"modified by an inplace operation: \[torch\.\w+ \[([\d, ]*)\]\](?:, which is"
    r" output \d+ of (\w+),)? is at version (\d+); expected version (\d+)"
)
def _modified_in_place(match: re.Match[str], exc: BaseException) -> str:
    shape, source = match.group(1), match.group(2)
    what = f"a [{shape}] tensor" + (f", the output of {source}," if source else "")
    return (
        f"backward() needs {what} as it was when the forward pass used it, but it was changed "
        f"in place afterwards (version {match.group(3)}; the graph saved version "
        f"{match.group(4)}). Replace the in-place change (y += 1, y.mul_(2), y[...] = ..., "
        "nn.ReLU(inplace=True)) with one that makes a new tensor (y = y + 1), or change a "
        ".clone() instead."
    )


@_rule(r"Can't call numpy\(\) on Tensor that requires grad")
def _numpy_requires_grad(match: re.Match[str], exc: BaseException) -> str:
    return (
        "This tensor is part of the autograd graph, so it cannot become a NumPy array as it is. "
        ".detach() gives the same numbers without the graph: use x.detach().numpy() (also to "
        "plot it or to do NumPy maths with it)."
    )


@_rule(r"Only Tensors of floating point and complex dtype can require gradients")
def _requires_grad_integers(match: re.Match[str], exc: BaseException) -> str:
    return (
        "Gradients need floating-point numbers: a tensor of whole numbers such as "
        "torch.tensor([1, 2]) is torch.int64. Write torch.tensor([1., 2.], requires_grad=True) "
        "or pass dtype=torch.float32."
    )


# -- dtypes ----------------------------------------------------------------------------------------


@_rule(r"expected target dtype to be Long or Byte, but got (\w+)")
def _class_target_dtype(match: re.Match[str], exc: BaseException) -> str:
    got = match.group(1)
    return (
        "CrossEntropyLoss (and NLLLoss) want the targets as class indices of dtype torch.long "
        f"(torch.int64), one per sample, such as torch.tensor([0, 2, 1]); these are "
        f"{_dtype(got)}: convert them with targets.long(). (MSELoss and BCELoss are the ones "
        "that want float targets.)"
    )


@_rule(r"Found dtype (\w+) but expected (\w+)")
def _loss_target_dtype(match: re.Match[str], exc: BaseException) -> str:
    got, expected = match.group(1), match.group(2)
    return (
        f"The loss wants the target as {_dtype(expected)}, the same dtype as the prediction, but "
        f"got {_dtype(got)}: convert it with target{_convert_to(expected)}. MSELoss and BCELoss "
        "compare numbers, so their targets are floats; only CrossEntropyLoss and NLLLoss take "
        "class indices as long."
    )


def _two_dtypes(first: str, second: str) -> str:
    return (
        f"One tensor is {_dtype(first)} and the other {_dtype(second)}; this operation needs "
        "both in one dtype. Convert one with .float() or .long(). For losses: CrossEntropyLoss "
        "wants class indices as long, MSELoss wants floats."
    )


@_rule(r"expected scalar type (\w+) but found (\w+)")
def _scalar_type(match: re.Match[str], exc: BaseException) -> str:
    return _two_dtypes(match.group(1), match.group(2))


@_rule(r"mat1 and mat2 must have the same dtype, but got (\w+) and (\w+)")
def _linear_dtype(match: re.Match[str], exc: BaseException) -> str:
    if _raised_in(exc, nn.Linear.forward.__code__) is None:
        return _two_dtypes(match.group(1), match.group(2))
    return _layer_dtype(match.group(1), match.group(2))


@_rule(r"Input type \(([\w ]+)\) and (?:bias|weight) type \(([\w ]+)\) should be the same")
def _conv_dtype(match: re.Match[str], exc: BaseException) -> str:
    return _layer_dtype(match.group(1), match.group(2))


def _layer_dtype(given: str, weights: str) -> str:
    if given.strip().lower() == "double":
        cause = (
            "NumPy makes float64 arrays, and torch.from_numpy keeps their dtype: convert with "
            "x.float() (or .astype(np.float32) before)"
        )
    elif given.strip().lower() in _FLOATING:
        cause = "convert it with x.float()"
    else:
        cause = (
            "a tensor built from whole numbers, such as torch.tensor([[1, 2]]), is torch.int64: "
            "convert it with x.float()"
        )
    return (
        f"The input is {_dtype(given)} but the layer's weights are {_dtype(weights)}, and both "
        f"sides must share one dtype. {cause[0].upper()}{cause[1:]}."
    )


@_rule(r"expected m1 and m2 to have the same dtype, but got: ([\w ]+?) != ([\w ]+)")
def _matmul_dtypes(match: re.Match[str], exc: BaseException) -> str:
    return _two_dtypes(match.group(1), match.group(2))


@_rule(
    r"(\w+)\(\): could not infer output dtype\. Input dtype must be either a floating"
    r" point or complex dtype\. Got: (\w+)"
)
def _mean_of_integers(match: re.Match[str], exc: BaseException) -> str:
    op, got = match.group(1), match.group(2)
    return (
        f"{op}() gives fractions, so it needs a floating-point tensor, and this one is "
        f"{_dtype(got)}: convert it first, x.float().{op}()."
    )


@_rule(r"result type (\w+) can't be cast to the desired output type (\w+)")
def _cast_in_place(match: re.Match[str], exc: BaseException) -> str:
    result, target = match.group(1), match.group(2)
    return (
        f"An in-place operation (+=, .add_(), ...) must keep the tensor's dtype, and a "
        f"{_dtype(result)} result cannot be stored in a {_dtype(target)} tensor. Make a new "
        "tensor (x = x + 0.5) or convert first (x = x.float())."
    )


# -- losses and indices ----------------------------------------------------------------------------


def _classes(exc: BaseException) -> int | None:
    """How many classes the cross-entropy or NLL input had, read from PyTorch's frame."""
    for function in (torch_f.cross_entropy, torch_f.nll_loss):
        found = _raised_in(exc, function.__code__)
        scores = found.get("input") if found else None
        if isinstance(scores, torch.Tensor) and scores.dim() >= 1:
            return int(scores.shape[1] if scores.dim() >= 2 else scores.shape[0])
    return None


@_rule(r"Target (-?\d+) is out of bounds")
def _target_out_of_bounds(match: re.Match[str], exc: BaseException) -> str:
    target = int(match.group(1))
    classes = _classes(exc)
    if classes is None:
        count = "C classes (the size of the input's dimension 1), so targets must be 0 to C-1"
    else:
        count = f"{classes} classes (its dimension 1), so targets must be 0 to {classes - 1}"
    fix = (
        "if the labels start at 1, subtract 1" if target > 0 else "class indices are never negative"
    )
    return (
        f"Target {target} is not a class of this loss: the input has {count}, one score per "
        "class, which is the out_features of the last nn.Linear. Make out_features the number "
        f"of classes; {fix}."
    )


@_rule(r"0D or 1D target tensor expected, multi-target not supported")
def _multi_target(match: re.Match[str], exc: BaseException) -> str:
    return (
        "CrossEntropyLoss wants one class index per sample: a 1-d target of shape (N,). A "
        "target of shape (N, 1) becomes one with target.squeeze(1) (or target.view(-1)); "
        "one-hot rows become indices with target.argmax(dim=1)."
    )


@_rule(r"Expected input batch_size \((\d+)\) to match target batch_size \((\d+)\)")
def _batch_sizes(match: re.Match[str], exc: BaseException) -> str:
    scores, targets = match.group(1), match.group(2)
    return (
        f"The input has {scores} samples (rows) but the target has {targets}: each sample needs "
        "one target. Check that both come from the same batch, and that a reshape such as "
        ".view(-1, ...) did not fold the input's rows together."
    )


@_rule(
    r"Using a target size \(torch\.Size\(\[([\d, ]*)\]\)\) that is different to the"
    r" input size \(torch\.Size\(\[([\d, ]*)\]\)\)"
)
def _target_size(match: re.Match[str], exc: BaseException) -> str:
    target, given = match.group(1), match.group(2)
    return (
        f"The target's shape [{target}] differs from the prediction's [{given}], and this loss "
        "compares them element by element: make them the same shape, for example "
        "target.view_as(prediction) or prediction.squeeze(1)."
    )


@_rule(r"index (-?\d+) is out of bounds for (dimension|axis) (\d+) with size (\d+)")
def _index_out_of_range(match: re.Match[str], exc: BaseException) -> str:
    index, kind, dim, size = (match.group(i) for i in range(1, 5))
    if int(size) == 0:
        return f"{kind.capitalize()} {dim} has size 0: there is no element to index."
    return (
        f"{kind.capitalize()} {dim} has size {size}, so its indices are 0 to {int(size) - 1} "
        f"(or -{size} to -1 from the end): {index} is outside them. Indices count from 0."
    )


@_rule(
    r"Dimension out of range \(expected to be in range of \[(-?\d+), (-?\d+)\], but"
    r" got (-?\d+)\)"
)
def _dim_out_of_range(match: re.Match[str], exc: BaseException) -> str:
    low, high, got = int(match.group(1)), int(match.group(2)), match.group(3)
    dims = high + 1
    return (
        f"This tensor has {dims} dimension{'s' if dims != 1 else ''}, numbered 0 to {high} (or "
        f"{low} to -1 from the end): dimension {got} does not exist. Check its .shape."
    )


@_rule(r"too many indices for (?:tensor of dimension (\d+)|array: array is (\d+)-dimensional)")
def _too_many_indices(match: re.Match[str], exc: BaseException) -> str:
    dims = int(match.group(1) or match.group(2))
    return (
        f"It has {dims} dimension{'s' if dims != 1 else ''}, so it takes at most {dims} "
        f"ind{'ices' if dims != 1 else 'ex'} inside the brackets: check its .shape."
    )


@_rule(r"can't convert np\.ndarray of type numpy\.object_")
def _numpy_objects(match: re.Match[str], exc: BaseException) -> str:
    return (
        "This NumPy array holds Python objects (dtype object), not numbers, usually because its "
        "rows have different lengths or it mixes numbers with text or None. Make it numeric "
        "before torch.from_numpy or torch.tensor: a.astype(np.float32), or build it with "
        "dtype=np.float32."
    )
