"""torch.utils.data, lr_scheduler, scikit-learn and math as programs get them, against the real
libraries called directly (same seeds, same values), and every refusal."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
import sklearn.datasets
import sklearn.model_selection
import sklearn.preprocessing
import torch
from torch.utils.data import DataLoader, Dataset, random_split

from app.sandbox import lib_data
from app.sandbox.guards import Guard
from app.sandbox.library import NAMESPACES, SafeFunction, get_attribute
from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused
from app.sandbox.modules import import_module, member

DATA = lib_data.DATA.members
SCHED = lib_data.LR_SCHEDULER.members
SKD = lib_data.SKLEARN_DATASETS.members
MATH = lib_data.MATH.members


def make_guard(**limits: Any) -> Guard:
    guard = Guard(SandboxLimits(**limits))
    guard.call = lambda fn, args, kwargs: fn(*args, **kwargs)  # learner functions stand-in
    return guard


def call(fn: SafeFunction, *args: Any, guard: Guard | None = None, **kwargs: Any) -> Any:
    return fn.impl(guard or make_guard(), args, kwargs)


def method(obj: Any, name: str, *args: Any, guard: Guard | None = None, **kwargs: Any) -> Any:
    bound = get_attribute(obj, name)
    return bound.impl(guard or make_guard(), obj, args, kwargs)


class Squares(Dataset[tuple[torch.Tensor, int]]):
    """What a learner writes: items made in __getitem__."""

    def __init__(self, n: int = 10) -> None:
        self.n = n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.tensor([float(i), float(i * i)]), i % 3

    def __len__(self) -> int:
        return self.n


class Liar(Dataset[int]):
    def __init__(self, length: Any) -> None:
        self.length = length

    def __getitem__(self, i: int) -> int:
        return i

    def __len__(self) -> Any:
        return self.length


def same_batches(ours: list[Any], theirs: list[Any]) -> bool:
    return len(ours) == len(theirs) and all(
        all(torch.equal(a, b) for a, b in zip(x, y, strict=True))
        for x, y in zip(ours, theirs, strict=True)
    )


# -- torch.utils.data ------------------------------------------------------------------------------


def test_modules_are_registered_where_imports_find_them() -> None:
    assert import_module("torch.utils.data") is lib_data.DATA
    assert NAMESPACES["torch"].members["utils"].members["data"] is lib_data.DATA
    assert NAMESPACES["optim"].members["lr_scheduler"] is lib_data.LR_SCHEDULER
    assert member(import_module("sklearn"), "datasets", "sklearn") is lib_data.SKLEARN_DATASETS
    assert import_module("math") is lib_data.MATH
    assert DATA["Dataset"].real is Dataset


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_loader_gives_the_batches_plain_pytorch_gives(drop_last: bool) -> None:
    torch.manual_seed(7)
    loader = call(DATA["DataLoader"], Squares(10), batch_size=4, shuffle=True, drop_last=drop_last)
    ours = [list(batch) for batch in loader]
    ours_again = [list(batch) for batch in loader]
    torch.manual_seed(7)
    plain = DataLoader(Squares(10), batch_size=4, shuffle=True, drop_last=drop_last)
    assert isinstance(loader, DataLoader)
    assert same_batches(ours, [list(b) for b in plain])
    assert same_batches(ours_again, [list(b) for b in plain])
    assert len(loader) == len(plain) == (2 if drop_last else 3)
    assert get_attribute(loader, "batch_size") == 4
    assert get_attribute(loader, "drop_last") is drop_last


def test_tensor_dataset_loader_and_its_iterator() -> None:
    x, y = torch.randn(7, 3), torch.arange(7)
    dataset = call(DATA["TensorDataset"], x, y)
    loader = call(DATA["DataLoader"], dataset, batch_size=3)
    iterator = iter(loader)
    assert len(iterator) == 3
    first = next(iterator)
    assert torch.equal(first[0], x[:3]) and torch.equal(first[1], y[:3])
    assert get_attribute(loader, "dataset") is dataset
    assert get_attribute(dataset, "tensors")[0] is x
    rows = list(iter(dataset))
    assert len(rows) == 7 and torch.equal(rows[6][0], x[6])


def test_batch_size_none_yields_single_converted_samples() -> None:
    loader = call(DATA["DataLoader"], Squares(3), batch_size=None)
    assert [int(label) for _, label in loader] == [0, 1, 2]


def test_learner_collate_fn_is_called_through_the_guard() -> None:
    calls: list[int] = []

    def collate(samples: list[Any]) -> int:
        calls.append(len(samples))
        return len(samples)

    loader = call(DATA["DataLoader"], Squares(5), batch_size=2, collate_fn=collate)
    assert list(loader) == [2, 2, 1] and calls == [2, 2, 1]


def test_num_workers_runs_in_process_with_a_notice() -> None:
    guard = make_guard()
    loader = call(DATA["DataLoader"], Squares(4), guard=guard, batch_size=2, num_workers=2)
    assert len(list(loader)) == 2
    assert guard.notices == [
        "DataLoader(num_workers=2) ran in-process: this sandbox has no worker processes"
    ]


@pytest.mark.parametrize("length", [-1, 2.5, "ten", None])
def test_a_len_that_is_not_a_length_fails_as_python_s_len_does(length: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        call(DATA["DataLoader"], Liar(length))
    with pytest.raises(type(caught.value)) as plain:
        len(Liar(length))  # the independent check: plain Python's own error and message
    assert str(caught.value) == str(plain.value)


def test_huge_len_is_over_the_limit_before_anything_is_sampled() -> None:
    started = time.monotonic()
    with pytest.raises(SandboxLimitExceeded, match="max_sequence_items") as caught:
        call(DATA["DataLoader"], Liar(10**12), shuffle=True)
    assert caught.value.limit == "max_sequence_items"
    assert time.monotonic() - started < 1


def test_len_is_asked_once_so_a_changing_len_cannot_grow_the_sampler() -> None:
    class Growing(Liar):
        def __len__(self) -> Any:
            self.length *= 1000
            return self.length

    loader = call(DATA["DataLoader"], Growing(1), batch_size=4, shuffle=True)
    assert len(list(loader)) == 1000 // 4


def test_a_batch_over_the_element_limit_is_refused_before_it_is_stacked() -> None:
    class Wide(Squares):
        def __getitem__(self, i: int) -> Any:
            return torch.zeros(100)

    loader = call(DATA["DataLoader"], Wide(50), guard=make_guard(max_tensor_elements=1000),
                  batch_size=20)  # fmt: skip
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        next(iter(loader))


def test_loader_arguments_are_checked_with_pytorchs_messages() -> None:
    with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
        call(DATA["DataLoader"], Squares(), batch_size=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'batchsize'"):
        call(DATA["DataLoader"], Squares(), batchsize=2)
    with pytest.raises(SandboxRefused, match="sampler"):
        call(DATA["DataLoader"], Squares(), sampler=[0, 1])
    with pytest.raises(TypeError, match="takes a Dataset"):
        call(DATA["DataLoader"], 5)
    with pytest.raises(TypeError, match="takes tensors"):
        call(DATA["TensorDataset"], torch.zeros(2), [1, 2])


@pytest.mark.parametrize("lengths", [[7, 3], [0.7, 0.3], [0.5, 0.25, 0.25]])
def test_random_split_matches_pytorch(lengths: list[Any]) -> None:
    torch.manual_seed(3)
    ours = call(DATA["random_split"], Squares(10), lengths)
    torch.manual_seed(3)
    theirs = random_split(Squares(10), lengths)
    assert [s.indices for s in ours] == [s.indices for s in theirs]
    assert get_attribute(ours[0], "indices") == ours[0].indices
    assert ours[0][0][1] == Squares()[ours[0].indices[0]][1]


def test_random_split_refuses_lengths_that_do_not_add_up() -> None:
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        call(DATA["random_split"], Squares(10), [5, 6])


def test_subset_and_its_loader() -> None:
    subset = call(DATA["Subset"], Squares(10), [9, 2])
    batch = next(iter(call(DATA["DataLoader"], subset, batch_size=2)))
    assert batch[1].tolist() == [0, 2]


# -- lr_scheduler ----------------------------------------------------------------------------------


def _plain_lrs(real: Any, kwargs: dict[str, Any]) -> list[float]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = real(optimizer, **kwargs)
    seen = []
    for _ in range(6):
        optimizer.step()
        scheduler.step()
        seen.append(scheduler.get_last_lr()[0])
    return seen


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("StepLR", {"step_size": 2, "gamma": 0.5}),
        ("MultiStepLR", {"milestones": [1, 4], "gamma": 0.1}),
        ("ExponentialLR", {"gamma": 0.9}),
        ("CosineAnnealingLR", {"T_max": 4}),
        ("LambdaLR", {"lr_lambda": lambda epoch: 0.5**epoch}),
    ],
)
def test_schedulers_give_pytorchs_learning_rates(name: str, kwargs: dict[str, Any]) -> None:
    real = getattr(torch.optim.lr_scheduler, name)
    guard = make_guard()
    ours: list[float] = []
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = SCHED[name].impl(guard, (optimizer,), dict(kwargs))
    for _ in range(6):
        optimizer.step()
        method(scheduler, "step", guard=guard)
        ours.append(method(scheduler, "get_last_lr")[0])
    assert ours == _plain_lrs(real, kwargs)
    assert get_attribute(scheduler, "last_epoch") == 6
    assert guard.notices == []  # optimizer.step() came first: no warning


def test_reduce_on_plateau_follows_the_metric() -> None:
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = call(SCHED["ReduceLROnPlateau"], optimizer, patience=1, factor=0.5)
    ours = []
    for loss in losses:
        method(scheduler, "step", torch.tensor(loss))
        ours.append(optimizer.param_groups[0]["lr"])
    real_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    real = torch.optim.lr_scheduler.ReduceLROnPlateau(real_opt, patience=1, factor=0.5)
    theirs = []
    for loss in losses:
        real.step(loss)
        theirs.append(real_opt.param_groups[0]["lr"])
    assert ours == theirs


def test_scheduler_state_round_trips_and_refuses_foreign_keys() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = call(SCHED["MultiStepLR"], optimizer, milestones=[2, 3])
    optimizer.step()
    method(scheduler, "step")
    state = method(scheduler, "state_dict")
    assert type(state["milestones"]) is dict
    fresh = call(SCHED["MultiStepLR"], optimizer, milestones=[2, 3])
    method(fresh, "load_state_dict", state)
    assert fresh.last_epoch == 1 and fresh.milestones == scheduler.milestones
    with pytest.raises(SandboxRefused, match="optimizer"):
        method(fresh, "load_state_dict", {"optimizer": 1})


def test_scheduler_needs_a_real_optimizer_and_warns_as_pytorch_does() -> None:
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        call(SCHED["StepLR"], [torch.zeros(1)], step_size=1)
    guard = make_guard()
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = call(SCHED["StepLR"], optimizer, guard=guard, step_size=1)
    method(scheduler, "step", guard=guard)  # before optimizer.step(): PyTorch warns
    assert any("optimizer.step()" in notice for notice in guard.notices)


# -- scikit-learn ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", lib_data._TOY_DATA)
def test_toy_data_equals_scikit_learn_and_is_a_copy(name: str) -> None:
    bunch = call(SKD[name])
    real = getattr(sklearn.datasets, name)()
    np.testing.assert_array_equal(get_attribute(bunch, "data"), real.data)
    np.testing.assert_array_equal(get_attribute(bunch, "target"), real.target)
    assert list(method(bunch, "keys")) == list(real.keys())
    bunch.data[0, 0] = 1234.0
    assert call(SKD[name]).data[0, 0] == real.data[0, 0]
    x, y = call(SKD[name], return_X_y=True)
    np.testing.assert_array_equal(x, real.data)


def test_bunch_names_are_lists_and_missing_entries_are_attribute_errors() -> None:
    iris = call(SKD["load_iris"])
    assert get_attribute(iris, "target_names") == ["setosa", "versicolor", "virginica"]
    assert get_attribute(call(SKD["load_digits"]), "images").shape == (1797, 8, 8)
    with pytest.raises(AttributeError, match="images"):
        get_attribute(iris, "images")
    with pytest.raises(SandboxRefused, match="pandas"):
        call(SKD["load_wine"], as_frame=True)
    with pytest.raises(TypeError, match="positional"):
        call(SKD["load_iris"], True)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("make_regression", {"n_samples": 40, "n_features": 3, "noise": 2.0, "coef": True}),
        ("make_classification", {"n_samples": 30, "n_features": 5, "n_classes": 3,
                                 "n_informative": 3}),
        ("make_blobs", {"n_samples": [5, 7], "n_features": 2}),
        ("make_moons", {"n_samples": 20, "noise": 0.1}),
        ("make_circles", {"n_samples": (10, 6), "factor": 0.5}),
    ],
)  # fmt: skip
def test_generators_equal_scikit_learn_with_the_same_seed(
    name: str, kwargs: dict[str, Any]
) -> None:
    ours = call(SKD[name], random_state=np.int64(3), **kwargs)
    theirs = getattr(sklearn.datasets, name)(random_state=3, **kwargs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_huge_generated_data_is_refused_before_generating() -> None:
    started = time.monotonic()
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        call(SKD["make_regression"], n_samples=10**6, n_features=10**6)
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        call(SKD["make_classification"], n_samples=10, n_features=2000, n_informative=1500,
             n_redundant=0, n_classes=2)  # fmt: skip
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        call(SKD["make_blobs"], n_samples=[10**6, 10**6])
    assert time.monotonic() - started < 1


def test_generator_keywords_are_the_ones_scikit_learn_takes() -> None:
    with pytest.raises(
        TypeError, match="make_moons\\(\\) got an unexpected keyword argument 'seed'"
    ):
        call(SKD["make_moons"], seed=1)
    with pytest.raises(SandboxRefused, match="random_state"):
        call(SKD["make_moons"], random_state=np.random.RandomState(0))


@pytest.mark.parametrize("name", ["StandardScaler", "MinMaxScaler"])
def test_scalers_equal_scikit_learn(name: str) -> None:
    x = np.random.default_rng(0).normal(size=(20, 3))
    scaler = call(lib_data.SKLEARN_PREPROCESSING.members[name])
    real = getattr(sklearn.preprocessing, name)()
    np.testing.assert_allclose(method(scaler, "fit_transform", x), real.fit_transform(x))
    tensor = torch.tensor(x[:4], dtype=torch.float32)
    np.testing.assert_allclose(method(scaler, "transform", tensor), real.transform(tensor.numpy()))
    back = method(scaler, "inverse_transform", method(scaler, "transform", x))
    np.testing.assert_allclose(back, x)
    assert get_attribute(scaler, "n_features_in_") == 3
    assert method(scaler, "fit", x.tolist()) is scaler


def test_scaler_prop_before_fit_and_bad_input() -> None:
    scaler = call(lib_data.SKLEARN_PREPROCESSING.members["StandardScaler"])
    with pytest.raises(AttributeError, match="mean_"):
        get_attribute(scaler, "mean_")
    with pytest.raises(ValueError, match="Expected 2D array"):
        method(scaler, "fit", np.zeros(5))
    with pytest.raises(TypeError, match="takes an array"):
        method(scaler, "fit", "data")
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        method(scaler, "fit", [[0.0] * 100] * 20, guard=make_guard(max_tensor_elements=1000))


def test_train_test_split_equals_scikit_learn_on_arrays_and_tensors() -> None:
    x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    split = lib_data.SKLEARN_MODEL_SELECTION.members["train_test_split"]
    ours = call(split, x, torch.from_numpy(y), test_size=0.25, random_state=4, stratify=y)
    theirs = sklearn.model_selection.train_test_split(x, y, test_size=0.25, random_state=4,
                                                      stratify=y)  # fmt: skip
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert isinstance(ours[2], torch.Tensor)
    with pytest.raises(TypeError, match="unexpected keyword argument 'seed'"):
        call(split, x, seed=1)


# -- math ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [("sqrt", (2,)), ("log", (8, 2)), ("log", (10,)), ("exp", (1.5,)), ("floor", (-2.5,)),
     ("ceil", (2.1,)), ("isclose", (1.0, 1.0 + 1e-10)), ("hypot", (3, 4)), ("atan2", (1, 2)),
     ("factorial", (30,)), ("comb", (50, 20)), ("perm", (10, 3)), ("perm", (6,)),
     ("gcd", (12, 18, 8)),
     ("fsum", ([0.1] * 10,)), ("prod", ([2, 3, 4],)), ("degrees", (math.pi,)), ("lcm", (4, 6))],
)  # fmt: skip
def test_math_equals_python(name: str, args: tuple[Any, ...]) -> None:
    assert call(MATH[name], *args) == getattr(math, name)(*args)


def test_math_constants_and_pythons_own_errors() -> None:
    assert (MATH["pi"], MATH["e"], MATH["tau"], MATH["inf"]) == (
        math.pi,
        math.e,
        math.tau,
        math.inf,
    )
    assert math.isnan(MATH["nan"])
    with pytest.raises(ValueError, match="math domain error"):
        call(MATH["sqrt"], -1)
    with pytest.raises(TypeError, match="takes no keyword arguments"):
        call(MATH["sqrt"], x=2)
    with pytest.raises(ValueError, match="factorial\\(\\) not defined for negative values"):
        call(MATH["factorial"], -1)
    assert call(MATH["isclose"], 1.0, 1.1, rel_tol=0.2) is True
    assert call(MATH["sqrt"], torch.tensor(4.0)) == 2.0


def test_math_results_that_grow_are_bounded_before_they_are_computed() -> None:
    started = time.monotonic()
    for fn, args in [("factorial", (10**9,)), ("comb", (10**6, 5 * 10**5)), ("perm", (10**8,))]:
        with pytest.raises(SandboxLimitExceeded, match="max_int_bits"):
            call(MATH[fn], *args)
    with pytest.raises(SandboxLimitExceeded, match="max_int_bits"):
        call(MATH["prod"], [2**1000] * 10)
    with pytest.raises(SandboxLimitExceeded, match="max_sequence_items"):
        call(MATH["fsum"], range(10**12))
    assert call(MATH["comb"], 10**12, 2) == math.comb(10**12, 2)
    assert time.monotonic() - started < 1


# -- end to end, through the interpreter -----------------------------------------------------------

LOADER_SCRIPT = """
import math
import torch
from torch.utils.data import Dataset, DataLoader
class Squares(Dataset):
    def __init__(self):
        self.x = torch.arange(10.0)
    def __getitem__(self, i):
        return self.x[i], i
    def __len__(self):
        return 10
torch.manual_seed(0)
loader = DataLoader(Squares(), batch_size=4, shuffle=True)
for xb, yb in loader:
    print(yb.tolist())
print(len(loader), math.sqrt(2))
"""


def test_a_learner_dataset_script_prints_what_plain_pytorch_prints() -> None:
    from app.sandbox import run_program

    answer = run_program(LOADER_SCRIPT)
    printed = "".join(step.get("stdout", "") for step in answer["steps"])
    torch.manual_seed(0)
    plain = DataLoader(list(range(10)), batch_size=4, shuffle=True)  # the labels are the indices
    expected = "".join(f"{labels.tolist()}\n" for labels in plain)
    assert answer["error"] is None
    assert printed + answer["stdout_after"] == expected + f"3 {math.sqrt(2)}\n"
