"""The in-memory files of learner programs: paths, data files, torch.save/load, open(), NumPy."""

from __future__ import annotations

import base64
import io
import pickle
import sys
import zipfile
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from torch import nn

import app.sandbox.modules  # noqa: F401  (registers every library)
from app.sandbox import lib_files
from app.sandbox.guards import Guard, iter_checked
from app.sandbox.library import CONTEXT_MANAGERS, NAMESPACES, SafeFunction, get_attribute
from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused
from app.sandbox.modules import collect_outputs


def call(guard: Guard, fn: SafeFunction, *args: Any, **kwargs: Any) -> Any:
    return fn.impl(guard, args, kwargs)


def method(guard: Guard, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    bound = get_attribute(obj, name)
    return bound.impl(guard, bound.obj, args, kwargs)


SAVE = NAMESPACES["torch"].members["save"]
LOAD = NAMESPACES["torch"].members["load"]
NP = NAMESPACES["np"].members
OPEN = lib_files.OPEN


@pytest.fixture()
def guard() -> Guard:
    return Guard(SandboxLimits())


def saved_files(guard: Guard) -> dict[str, bytes]:
    items = collect_outputs(guard).get("files", [])
    return {f["name"]: base64.b64decode(f["base64"]) for f in items if f["kind"] == "file"}


# -- paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("model.pth", "model.pth"),
        ("./model.pth", "model.pth"),
        ("data/x", "data/x"),
        ("./data//wine/../wine/wine.csv", "data/wine/wine.csv"),
        ("/sandbox/runs/a", "runs/a"),
        (b"model.pth", "model.pth"),
    ],
)
def test_paths_normalise_to_the_programs_own_folder(given: Any, key: str) -> None:
    assert lib_files.normalise(given) == key


@pytest.mark.parametrize(
    ("given", "error", "words"),
    [
        ("../secret", PermissionError, "Permission denied"),
        ("data/../../etc/passwd", PermissionError, "Permission denied"),
        ("/etc/passwd", PermissionError, "relative path"),
        ("a\x00b", ValueError, "embedded null byte"),
        ("x" * 201, OSError, "File name too long"),
        ("", FileNotFoundError, "No such file or directory"),
        (5, TypeError, "expected str, bytes or os.PathLike object, not int"),
    ],
)
def test_bad_paths_fail_as_python_would(given: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        lib_files.normalise(given)


def test_a_missing_file_is_pythons_file_not_found(guard: Guard) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        call(guard, OPEN, "nope.txt")
    assert str(caught.value) == "[Errno 2] No such file or directory: 'nope.txt'"


# -- the wine data file ----------------------------------------------------------------------------


def test_wine_csv_is_sklearns_table_with_the_course_header() -> None:
    text = lib_files.wine_csv()
    lines = text.splitlines()
    assert lines[0] == (
        "Wine,Alcohol,Malic.acid,Ash,Acl,Mg,Phenols,Flavanoids,Nonflavanoid.phenols,Proanth,"
        "Color.int,Hue,OD,Proline"
    )
    assert lines[1].startswith("1,14.23,1.71,2.43,15.6,127,")
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    wine = load_wine()
    assert table.shape == (178, 14)
    np.testing.assert_array_equal(table[:, 0], wine.target + 1)
    np.testing.assert_array_equal(table[:, 1:], wine.data)  # every digit round-trips


def test_the_wine_file_reads_with_loadtxt_and_open_but_not_writes(guard: Guard) -> None:
    xy = call(guard, NP["loadtxt"], "./data/wine/wine.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(
        xy, np.loadtxt(io.StringIO(lib_files.wine_csv()), delimiter=",", skiprows=1)
    )
    f = call(guard, OPEN, "data/wine/wine.csv")
    assert method(guard, f, "readline").startswith("Wine,Alcohol")
    assert len(method(guard, f, "readlines")) == 178
    with pytest.raises(PermissionError, match="read-only"):
        call(guard, OPEN, "data/wine/wine.csv", "w")
    with pytest.raises(PermissionError, match="read-only"):
        call(guard, SAVE, {"a": 1}, "data/wine/wine.csv")
    with pytest.raises(IsADirectoryError):
        call(guard, OPEN, "data/wine")
    assert saved_files(guard) == {}  # data files are not handed back


def test_data_files_are_listed_and_built_once() -> None:
    assert set(lib_files.DATA_FILES) >= {"data/wine/wine.csv"}
    source = lib_files.DATA_FILES["data/wine/wine.csv"]
    assert source() is source()


# -- torch.save / torch.load -----------------------------------------------------------------------


def test_a_saved_state_dict_opens_with_plain_torch_load(guard: Guard) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    call(guard, SAVE, model.state_dict(), "model.pth")
    files = saved_files(guard)
    assert list(files) == ["model.pth"]
    state = torch.load(io.BytesIO(files["model.pth"]))  # the client side: plain PyTorch
    assert state.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value)
    item = collect_outputs(guard)["files"][0]
    assert item["bytes"] == len(files["model.pth"]) and item["kind"] == "file"


def test_a_checkpoint_dict_loads_back_in_the_program(guard: Guard) -> None:
    torch.manual_seed(1)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    checkpoint = {
        "epoch": 3,
        "model_state": model.state_dict(),
        "optim_state": optimizer.state_dict(),
    }
    call(guard, SAVE, checkpoint, "./checkpoint.pth")
    loaded = call(guard, LOAD, "checkpoint.pth")
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["model_state"]["weight"], model.weight)
    momentum = optimizer.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(loaded["optim_state"]["state"][0]["momentum_buffer"], momentum)
    assert loaded["optim_state"]["param_groups"][0]["lr"] == 0.1
    fresh = nn.Linear(4, 1)
    fresh.load_state_dict(call(guard, LOAD, "checkpoint.pth", map_location="cpu")["model_state"])
    assert torch.equal(fresh.bias, model.bias)


def _learner_class() -> type:
    """A class as the interpreter builds a learner's ``class Net(nn.Module)``."""

    def init(self: nn.Module) -> None:
        nn.Module.__init__(self)
        self.linear = nn.Linear(2, 1)

    cls = type("Net", (nn.Module,), {"__init__": init, "_sandbox_class": object()})
    cls.__module__ = "__main__"
    cls.__qualname__ = "Net"
    return cls


def test_a_whole_learner_model_saves_but_loads_with_pytorchs_weights_only_error(
    guard: Guard,
) -> None:
    net = _learner_class()()
    call(guard, SAVE, net, "whole.pth")
    assert not hasattr(sys.modules["__main__"], "Net")  # bound only while saving
    with pytest.raises(pickle.UnpicklingError) as caught:
        call(guard, LOAD, "whole.pth")
    message = str(caught.value)
    assert "Weights only load failed" in message
    assert "GLOBAL __main__.Net was not an allowed global" in message
    # Plain PyTorch, given the same bytes, fails with the same words.
    with pytest.raises(pickle.UnpicklingError) as plain:
        torch.load(io.BytesIO(saved_files(guard)["whole.pth"]))
    assert str(plain.value) == message


def test_weights_only_false_is_refused_with_the_state_dict_advice(guard: Guard) -> None:
    call(guard, SAVE, {"w": torch.ones(2)}, "w.pth")
    with pytest.raises(SandboxRefused, match=r"state_dict\(\)") as caught:
        call(guard, LOAD, "w.pth", weights_only=False)
    assert "arbitrary objects" in str(caught.value)
    assert torch.equal(call(guard, LOAD, "w.pth", weights_only=True)["w"], torch.ones(2))


@pytest.mark.parametrize(
    "value",
    [
        NAMESPACES["torch"].members["zeros"],
        {"fn": NAMESPACES["torch"].members["zeros"]},
        [NAMESPACES["torch"]],
        lib_files.OPEN,
    ],
)
def test_saving_a_sandbox_wrapper_fails_like_pickling_a_lambda(guard: Guard, value: Any) -> None:
    with pytest.raises(pickle.PicklingError, match="Can't pickle"):
        call(guard, SAVE, value, "bad.pth")
    assert saved_files(guard) == {}


def test_file_bytes_are_counted_before_anything_is_kept() -> None:
    guard = Guard(SandboxLimits(max_file_bytes=10_000))
    with pytest.raises(SandboxLimitExceeded, match="max_file_bytes") as caught:
        call(guard, SAVE, torch.zeros(10_000), "big.pth")
    assert caught.value.limit == "max_file_bytes"
    assert saved_files(guard) == {}
    for _ in range(3):  # saving the same file again replaces it: counted once
        call(guard, SAVE, torch.zeros(1_000), "same.pth")
    assert list(saved_files(guard)) == ["same.pth"]


def test_the_number_of_files_is_bounded() -> None:
    guard = Guard(SandboxLimits(max_files=2))
    call(guard, SAVE, 1, "a.pth")
    call(guard, SAVE, 2, "b.pth")
    with pytest.raises(SandboxLimitExceeded, match="max_files"):
        call(guard, OPEN, "c.txt", "w")


def test_torch_load_refuses_files_torch_save_did_not_write(guard: Guard) -> None:
    f = call(guard, OPEN, "notes.txt", "w")
    method(guard, f, "write", "hello")
    with pytest.raises(pickle.UnpicklingError, match="invalid load key, b'h'"):
        call(guard, LOAD, "notes.txt")
    legacy = io.BytesIO()
    torch.save({"a": 1}, legacy, _use_new_zipfile_serialization=False)
    compressed = io.BytesIO()
    with zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * 100_000)
    for name, data in [("legacy.pth", legacy.getvalue()), ("zip.pth", compressed.getvalue())]:
        f = call(guard, OPEN, name, "wb")
        method(guard, f, "write", data)
        with pytest.raises(SandboxRefused):
            call(guard, LOAD, name)


def test_torch_save_and_load_take_open_binary_files(guard: Guard) -> None:
    with call(guard, OPEN, "t.pth", "wb") as f:
        call(guard, SAVE, {"t": torch.arange(4)}, f)
    with call(guard, OPEN, "t.pth", "rb") as f:
        assert torch.equal(call(guard, LOAD, f)["t"], torch.arange(4))


# -- open() ----------------------------------------------------------------------------------------


def test_open_writes_appends_reads_and_loops_like_python(guard: Guard) -> None:
    assert lib_files.SandboxFile in CONTEXT_MANAGERS
    with call(guard, OPEN, "log.txt", "w") as f:
        assert method(guard, f, "write", "one\ntwo\n") == 8
    assert get_attribute(f, "closed") is True
    f = call(guard, OPEN, "log.txt", mode="a")
    method(guard, f, "writelines", ["three\n"])
    method(guard, f, "close")
    f = call(guard, OPEN, "log.txt")
    assert (get_attribute(f, "name"), get_attribute(f, "mode")) == ("log.txt", "r")
    assert method(guard, f, "read", 3) == "one"
    assert method(guard, f, "readline") == "\n"
    assert list(iter_checked(f)) == ["two\n", "three\n"]
    assert repr(f) == "<_io.TextIOWrapper name='log.txt' mode='r' encoding='UTF-8'>"
    with call(guard, OPEN, "b.bin", "wb") as f:
        method(guard, f, "write", b"\x00\x01")
    assert method(guard, call(guard, OPEN, "b.bin", "rb"), "read") == b"\x00\x01"
    assert saved_files(guard) == {"log.txt": b"one\ntwo\nthree\n", "b.bin": b"\x00\x01"}


def test_open_files_fail_as_pythons_do(guard: Guard) -> None:
    f = call(guard, OPEN, "x.txt", "w")
    with pytest.raises(TypeError, match="write\\(\\) argument must be str, not int"):
        method(guard, f, "write", 5)
    with pytest.raises(OSError, match="not readable"):
        method(guard, f, "read")
    method(guard, f, "close")
    with pytest.raises(ValueError, match="I/O operation on closed file"):
        method(guard, f, "write", "x")
    with pytest.raises(ValueError, match="invalid mode: 'q'"):
        call(guard, OPEN, "x.txt", "q")
    with pytest.raises(SandboxRefused, match="r\\+"):
        call(guard, OPEN, "x.txt", "r+")
    with pytest.raises(TypeError, match="bytes-like"):
        method(guard, call(guard, OPEN, "y.bin", "wb"), "write", "text")


def test_writes_through_open_count_against_the_limit() -> None:
    guard = Guard(SandboxLimits(max_file_bytes=100))
    f = call(guard, OPEN, "x.txt", "w")
    method(guard, f, "write", "a" * 100)
    with pytest.raises(SandboxLimitExceeded, match="max_file_bytes"):
        method(guard, f, "write", "b")
    assert saved_files(guard) == {"x.txt": b"a" * 100}


# -- NumPy -----------------------------------------------------------------------------------------

TABLE = "# x, y, z\n1,2,3\n4.5,5,6\n\n7,8,-9e-3\n"


def test_loadtxt_and_genfromtxt_equal_numpy_on_the_same_text(guard: Guard) -> None:
    with call(guard, OPEN, "t.csv", "w") as f:
        method(guard, f, "write", TABLE)
    for kwargs in [{}, {"usecols": [0, 2]}, {"skiprows": 2}, {"dtype": np.float32}]:
        ours = call(guard, NP["loadtxt"], "t.csv", delimiter=",", **kwargs)
        plain = np.loadtxt(io.StringIO(TABLE), delimiter=",", **kwargs)
        np.testing.assert_array_equal(ours, plain)
        assert ours.dtype == plain.dtype
    ours = call(guard, NP["genfromtxt"], "t.csv", delimiter=",", skip_header=1)
    np.testing.assert_array_equal(
        ours, np.genfromtxt(io.StringIO(TABLE), delimiter=",", skip_header=1)
    )
    with call(guard, OPEN, "t.csv") as f:
        np.testing.assert_array_equal(
            call(guard, NP["loadtxt"], f, delimiter=","),
            np.loadtxt(io.StringIO(TABLE), delimiter=","),
        )


def test_loadtxt_is_size_checked_before_parsing() -> None:
    guard = Guard(SandboxLimits(max_tensor_elements=100))
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        call(guard, NP["loadtxt"], "data/wine/wine.csv", delimiter=",", skiprows=1)


def test_np_save_and_load_round_trip_without_pickles(guard: Guard) -> None:
    array = np.arange(12, dtype=np.float64).reshape(3, 4)
    call(guard, NP["save"], "arr", array)
    assert list(saved_files(guard)) == ["arr.npy"]  # NumPy adds the extension
    np.testing.assert_array_equal(call(guard, NP["load"], "arr.npy"), array)
    np.testing.assert_array_equal(np.load(io.BytesIO(saved_files(guard)["arr.npy"])), array)
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with call(guard, OPEN, "obj.npy", "wb") as f:
        method(guard, f, "write", objects.getvalue())
    with pytest.raises(ValueError, match="allow_pickle=False"):
        call(guard, NP["load"], "obj.npy", allow_pickle=True)


def test_np_load_checks_the_shape_a_header_declares() -> None:
    guard = Guard(SandboxLimits(max_tensor_elements=1_000))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
    )
    with call(guard, OPEN, "huge.npy", "wb") as f:
        method(guard, f, "write", header.getvalue())
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        call(guard, NP["load"], "huge.npy")


def test_no_outputs_without_files(guard: Guard) -> None:
    assert "files" not in collect_outputs(guard)


# -- end to end: a learner script through the interpreter ------------------------------------------

SCRIPT = """
import torch
import torch.nn as nn
import numpy as np

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(13, 3)

    def forward(self, x):
        return self.linear(x)

xy = np.loadtxt("./data/wine/wine.csv", delimiter=",", dtype=np.float32, skiprows=1)
print(xy.shape)
model = Net()
FILE = "model.pth"
torch.save(model.state_dict(), FILE)
loaded = Net()
loaded.load_state_dict(torch.load(FILE))
print(torch.equal(loaded.linear.weight, model.linear.weight))
with open("notes.txt", "w") as f:
    f.write("epoch 1\\n")
for line in open("notes.txt"):
    print(line.strip())
torch.save(model, "whole.pth")
model2 = torch.load("whole.pth")
"""


def test_a_learner_script_saves_loads_and_fails_where_plain_pytorch_fails() -> None:
    from app.sandbox.interpreter import run_answer

    answer = run_answer(SCRIPT, SandboxLimits()).as_dict()
    printed = "".join(step.get("stdout", "") for step in answer["steps"])
    assert printed == "(178, 14)\nTrue\nepoch 1\n"
    assert (
        answer["error"]["line"] == SCRIPT.splitlines().index('model2 = torch.load("whole.pth")') + 1
    )
    assert "UnpicklingError: Weights only load failed" in answer["error"]["message"]
    files = {f["name"]: f for f in answer["files"]}
    assert set(files) == {"model.pth", "notes.txt", "whole.pth"}
    state = torch.load(io.BytesIO(base64.b64decode(files["model.pth"]["base64"])))
    assert list(state) == ["linear.weight", "linear.bias"]
