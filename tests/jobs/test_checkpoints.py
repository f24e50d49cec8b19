"""Opening untrusted checkpoint files (no HTTP): what they hold, checked against plain torch;
the model they load into, checked against a plain forward pass; and every refusal, each made
with a real file (crafted pickles and zips included)."""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from app.config import Settings
from app.jobs import safe_load
from app.jobs.checkpoints import (
    ArchitectureMismatch,
    evaluate_checkpoint,
    inspect_checkpoint,
    open_checkpoint,
)
from app.jobs.classifier import DigitsCNN, digits_split
from app.jobs.safe_load import (
    CheckpointError,
    CheckpointLimits,
    CheckpointRefused,
    python3_name,
    unsafe_globals,
)
from app.jobs.tasks import ConfigError, linear_data
from app.jobs.transfer import DigitsNet

LIMITS = CheckpointLimits()


def saved(obj: Any, **kwargs: Any) -> bytes:
    """What torch.save writes for ``obj``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def torch_zip(
    pickled: bytes,
    records: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """A zip laid out as torch.save lays it out, around a hand-made data.pkl."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        archive.writestr("archive/data.pkl", pickled)
        for key, data in (records or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", b"3\n")
        archive.writestr("archive/byteorder", b"little")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def trained_digits(channels: int = 8, steps: int = 30) -> tuple[DigitsCNN, torch.optim.SGD]:
    """A DigitsCNN after a few real SGD steps (momentum 0.9, as the task trains it)."""
    torch.manual_seed(0)
    model = DigitsCNN(channels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    images, labels = digits_split(0)[0].tensors
    for step in range(steps):
        batch = slice(32 * step, 32 * step + 32)
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


class RunsCommand:
    """A pickle that runs ``command`` in a shell when it is unpickled: os.system's own reduce."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


class CallsEval:
    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (eval, (self.source,))


class StartsProcess:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def __reduce__(self) -> tuple[Any, tuple[list[str]]]:
        return (subprocess.Popen, (self.argv,))


# -- limits -----------------------------------------------------------------------------------


def test_the_limits_defaults_are_the_settings_defaults() -> None:
    settings = Settings()
    assert asdict(CheckpointLimits()) == {
        f.name: getattr(settings, f.name) for f in fields(CheckpointLimits)
    }
    assert set(asdict(CheckpointLimits())) <= set(settings.limits())
    assert settings.max_checkpoint_bytes == 20 * 1024 * 1024


# -- what a file holds --------------------------------------------------------------------------


def test_a_state_dict_is_described_tensor_by_tensor_as_torch_load_gives_it() -> None:
    model, _ = trained_digits()
    data = saved(model.state_dict())
    report = inspect_checkpoint(data, LIMITS)
    loaded = torch.load(io.BytesIO(data), weights_only=True)
    assert report["format"] == "state_dict" and report["epoch"] is None
    assert [t["key"] for t in report["tensors"]] == list(loaded)
    for entry in report["tensors"]:
        tensor = loaded[entry["key"]]
        assert entry["shape"] == list(tensor.shape)
        assert entry["dtype"] == "float32" and tensor.dtype == torch.float32
        assert entry["numel"] == tensor.numel() == int(np.prod(tensor.shape))
    assert report["total_parameters"] == sum(p.numel() for p in model.parameters()) == 1370
    assert report["bytes"] == len(data)
    assert report["optimizer"] is None and report["other_keys"] == {}


def test_the_notes_spelling_is_a_checkpoint_with_its_epoch_and_momentum_buffers() -> None:
    model, optimizer = trained_digits()
    data = saved({"Model": model.state_dict(), "Optim": optimizer.state_dict(), "epoch": 10})
    report = inspect_checkpoint(data, LIMITS)
    assert report["format"] == "checkpoint" and report["epoch"] == 10
    assert report["other_keys"] == {}
    (group,) = report["optimizer"]["param_groups"]
    assert group["lr"] == 0.05 and group["momentum"] == 0.9 and group["nesterov"] is False
    assert group["params"] == [0, 1, 2, 3]
    params = list(model.parameters())
    state = optimizer.state_dict()["state"]
    assert [s["param"] for s in report["optimizer"]["state"]] == [0, 1, 2, 3]
    for entry in report["optimizer"]["state"]:
        (buffer,) = entry["buffers"]
        assert buffer["name"] == "momentum_buffer"
        assert buffer["shape"] == list(params[entry["param"]].shape)
        assert buffer["numel"] == state[entry["param"]]["momentum_buffer"].numel()
        assert buffer["dtype"] == "float32"


def test_adam_state_lists_every_buffer_and_its_betas() -> None:
    model = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    report = inspect_checkpoint(
        saved({"model": model.state_dict(), "optimizer": optimizer.state_dict()}), LIMITS
    )
    (group,) = report["optimizer"]["param_groups"]
    assert group["betas"] == [0.8, 0.99] and group["lr"] == 0.01
    first = report["optimizer"]["state"][0]
    assert {b["name"]: b["shape"] for b in first["buffers"]} == {
        "step": [],
        "exp_avg": [2, 3],
        "exp_avg_sq": [2, 3],
    }


def test_other_keys_task_and_config_are_reported() -> None:
    data = saved(
        {
            "model": nn.Linear(1, 1).state_dict(),
            "task": "linear-regression",
            "config": {"stage": "nn", "epochs": 5, "learning_rate": 0.1, "seed": 2},
            "loss": 0.25,
            "history": [1.0, 0.5],
            "best": torch.zeros(2, 3),
            "optimizer": "not an optimizer",
        }
    )
    report = inspect_checkpoint(data, LIMITS)
    assert report["task"] == "linear-regression"
    assert report["config"] == {"stage": "nn", "epochs": 5, "learning_rate": 0.1, "seed": 2}
    assert report["optimizer"] is None
    assert report["other_keys"] == {
        "loss": "float 0.25",
        "history": "a list of 2 items",
        "best": "a Tensor (float32, shape [2, 3])",
        "optimizer": "str 'not an optimizer'",
    }


@pytest.mark.parametrize(
    ("obj", "found"),
    [
        (torch.zeros(3), "a Tensor (float32, shape [3])"),
        ([torch.zeros(1)], "a list of 1 item"),
        (7, "int 7"),
    ],
)
def test_anything_but_a_state_dict_or_checkpoint_is_422_naming_what_it_holds(
    obj: Any, found: str
) -> None:
    with pytest.raises(CheckpointError, match="not a state_dict") as caught:
        open_checkpoint(saved(obj), LIMITS)
    assert found in str(caught.value)


def test_a_dict_with_a_non_tensor_value_names_the_key() -> None:
    with pytest.raises(CheckpointError, match="key 'lr' holds float 0.1, not a tensor"):
        open_checkpoint(saved({"w": torch.zeros(1), "lr": 0.1}), LIMITS)
    with pytest.raises(CheckpointError, match="checkpoint's 'model' should be a state_dict"):
        open_checkpoint(saved({"model": {"w": [1, 2]}}), LIMITS)


# -- loading into a model, evaluating -----------------------------------------------------------


def test_evaluate_gives_the_predictions_of_a_plain_load_state_dict_and_eval() -> None:
    trained, _ = trained_digits()
    result = evaluate_checkpoint(saved(trained.state_dict()), LIMITS)
    fresh = DigitsCNN(8)
    fresh.load_state_dict(torch.load(io.BytesIO(saved(trained.state_dict())), weights_only=True))
    fresh.eval()
    images, labels = digits_split(0)[1].tensors
    with torch.no_grad():
        logits = fresh(images)
    expected = logits.argmax(dim=1).numpy()
    assert result["task"] == "digits-cnn" and result["config"]["channels"] == 8
    assert np.array_equal(result["predicted"], expected)
    assert np.array_equal(result["labels"], labels.numpy())
    assert result["n"] == 359
    assert result["accuracy"] == pytest.approx(np.mean(expected == labels.numpy()))
    assert result["accuracy"] > 0.5  # 30 real steps learn something
    expected_loss = nn.functional.cross_entropy(logits, labels).item()
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_a_checkpoint_is_evaluated_with_its_own_task_and_config() -> None:
    trained, optimizer = trained_digits(channels=4)
    config = {"channels": 4, "seed": 3, "epochs": 2}
    data = saved(
        {
            "model": trained.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": 2,
            "task": "digits-cnn",
            "config": config,
        }
    )
    result = evaluate_checkpoint(data, LIMITS)
    assert result["config"]["channels"] == 4 and result["config"]["seed"] == 3
    assert result["epoch"] == 2 and result["format"] == "checkpoint"
    labels = digits_split(3)[1].tensors[1]  # the held-out set of the config's seed
    assert np.array_equal(result["labels"], labels.numpy())
    # The request's config wins over the file's.
    other = evaluate_checkpoint(data, LIMITS, config={"channels": 4, "seed": 0})
    assert np.array_equal(other["labels"], digits_split(0)[1].tensors[1].numpy())


def test_linear_regression_is_scored_by_mse_without_accuracy() -> None:
    state = {"weight": torch.tensor([[2.5]]), "bias": torch.tensor([1.5])}
    result = evaluate_checkpoint(saved(state), LIMITS, task="linear-regression", config={"seed": 4})
    x, y = linear_data(4)
    expected = np.mean((2.5 * x.numpy() + 1.5 - y.numpy()) ** 2)
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["accuracy"] is None and result["predicted"] == [] and result["n"] == 20
    assert result["result"]["w"] == 2.5 and result["result"]["b"] == 1.5


def test_a_diverged_model_is_evaluated_without_nan_in_the_json() -> None:
    state = DigitsCNN(8).state_dict()
    state["fc.bias"] = torch.full((10,), float("nan"))
    result = evaluate_checkpoint(saved(state), LIMITS)
    assert result["loss"] is None
    json.dumps(result, allow_nan=False)  # what the app's JSON responses require


def test_a_wider_model_lists_every_mismatched_shape() -> None:
    wide = DigitsCNN(16).state_dict()
    narrow = DigitsCNN(8).state_dict()
    with pytest.raises(ArchitectureMismatch) as caught:
        evaluate_checkpoint(saved(wide), LIMITS)
    error = caught.value
    assert error.missing == [] and error.unexpected == []
    differing = [k for k in narrow if wide[k].shape != narrow[k].shape]
    assert (
        [m.key for m in error.mismatched] == differing == ["conv.weight", "conv.bias", "fc.weight"]
    )
    for m in error.mismatched:
        assert m.file == list(wide[m.key].shape) and m.model == list(narrow[m.key].shape)
    assert "conv.weight: file 16x1x3x3, model 8x1x3x3" in str(error)
    assert "fc.weight: file 10x256, model 10x128" in str(error)
    # The config it was trained with fits.
    assert evaluate_checkpoint(saved(wide), LIMITS, config={"channels": 16})["n"] == 359


def test_another_architecture_lists_missing_and_unexpected_keys() -> None:
    with pytest.raises(ArchitectureMismatch) as caught:
        evaluate_checkpoint(saved(DigitsNet().state_dict()), LIMITS, task="digits-cnn")
    error = caught.value
    assert set(error.missing) == set(DigitsCNN(8).state_dict())
    assert set(error.unexpected) == set(DigitsNet().state_dict())
    assert error.mismatched == []
    for key in [*error.missing, *error.unexpected]:
        assert key in str(error)
    # As its own task, it fits.
    assert evaluate_checkpoint(saved(DigitsNet().state_dict()), LIMITS, task="transfer")["n"] > 0


def test_a_bad_task_or_config_names_the_field() -> None:
    data = saved(DigitsCNN(8).state_dict())
    with pytest.raises(ConfigError) as caught:
        evaluate_checkpoint(data, LIMITS, task="resnet")
    assert caught.value.field == "task"
    with pytest.raises(ConfigError) as caught:
        evaluate_checkpoint(data, LIMITS, config={"channels": 0})
    assert caught.value.field == "channels"
    file_task = saved({"model": DigitsCNN(8).state_dict(), "task": "resnet"})
    with pytest.raises(ConfigError, match="checkpoint's task 'resnet'"):
        evaluate_checkpoint(file_task, LIMITS)


# -- pickles that would run code ----------------------------------------------------------------


def would_run(path: Path) -> None:
    """Open ``path`` the unsafe way, in another process: plain torch.load, weights_only=False."""
    code = (
        "import sys, torch\n"
        "try:\n"
        "    torch.load(sys.argv[1], weights_only=False)\n"
        "except Exception:\n"
        "    pass\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, os.fspath(path)],
        check=True,
        timeout=120,
    )


@pytest.mark.parametrize("container", ["torch.save", "pickle.dumps"])
def test_a_pickle_that_runs_a_command_is_refused_and_never_runs(
    tmp_path: Path, container: str
) -> None:
    marker = tmp_path / "pwned"
    evil = {"model": RunsCommand(f"touch {marker}")}
    data = saved(evil) if container == "torch.save" else pickle.dumps(evil)
    path = tmp_path / "evil.pth"
    path.write_bytes(data)
    would_run(path)
    assert marker.exists(), "the file must really be malicious"
    marker.unlink()

    with pytest.raises(CheckpointRefused) as caught:
        open_checkpoint(data, LIMITS)
    assert str(caught.value).startswith("refused: the file asks to run `posix.system`")
    assert caught.value.global_name == "posix.system"
    assert not marker.exists()


def test_eval_and_popen_are_refused_by_their_python_3_names(tmp_path: Path) -> None:
    marker = tmp_path / "made"
    for obj, name in [
        (CallsEval(f"open({str(marker)!r}, 'w')"), "builtins.eval"),
        (StartsProcess(["touch", str(marker)]), "subprocess.Popen"),
    ]:
        for data in (saved({"model": obj}), pickle.dumps(obj, protocol=2), pickle.dumps(obj)):
            with pytest.raises(CheckpointRefused) as caught:
                open_checkpoint(data, LIMITS)
            assert caught.value.global_name == name
            assert f"`{name}`" in str(caught.value)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused_with_the_state_dict_advice() -> None:
    with pytest.raises(CheckpointRefused) as caught:
        open_checkpoint(saved(DigitsCNN(8)), LIMITS)
    assert caught.value.global_name == "app.jobs.classifier.DigitsCNN"
    assert "model.state_dict()" in str(caught.value)


def test_the_pickle_scan_reads_globals_without_running_them() -> None:
    assert unsafe_globals(pickle.dumps(RunsCommand("true"))) == ["posix.system"]
    assert unsafe_globals(pickle.dumps(RunsCommand("true"), protocol=0)) == ["posix.system"]
    legacy = saved({"w": torch.zeros(2)}, _use_new_zipfile_serialization=False)
    assert unsafe_globals(legacy) == []  # torch's own rebuild functions only
    assert unsafe_globals(b"\x80\x05garbage") == []
    assert python3_name("commands.Popen") == "subprocess.Popen"
    assert python3_name("eval") == "builtins.eval"
    assert python3_name("__builtin__.getattr") == "builtins.getattr"


# -- files that are not what torch.save writes ---------------------------------------------------


def test_the_legacy_format_is_refused_with_the_reason() -> None:
    legacy = saved({"w": torch.zeros(2)}, _use_new_zipfile_serialization=False)
    assert torch.load(io.BytesIO(legacy), weights_only=True)["w"].shape == (2,)  # real legacy
    with pytest.raises(CheckpointError, match="legacy format") as caught:
        open_checkpoint(legacy, LIMITS)
    assert "size the file itself declares" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"weights = [0.1, 0.2]\n", "is text"),
        (bytes(range(256)) * 4, "not a zip archive"),
        (b"PK\x05\x06" + bytes(18), "empty or damaged"),
        (pickle.dumps({"w": [1.0]}), "bare pickle"),
    ],
)
def test_files_that_are_not_torch_zips_are_refused_clearly(data: bytes, says: str) -> None:
    with pytest.raises(CheckpointError, match=says):
        open_checkpoint(data, LIMITS)


def test_a_truncated_or_corrupted_archive_is_refused_as_damaged() -> None:
    data = saved(DigitsCNN(8).state_dict())
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        open_checkpoint(data[: len(data) // 2], LIMITS)
    # Flip one byte of a tensor's data: the CRC no longer holds.
    offset = data.index(b"archive/data/2") + 200
    corrupted = data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]
    with pytest.raises(CheckpointError, match=r"damaged zip archive \(Bad CRC-32"):
        open_checkpoint(corrupted, LIMITS)


def test_a_zip_that_torch_save_did_not_write_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match=r"no <folder>/data.pkl \(it holds \[notes.txt\]"):
        open_checkpoint(out.getvalue(), LIMITS)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_torchscript_archive_is_refused() -> None:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), buffer)
    with pytest.raises(CheckpointError, match="TorchScript"):
        open_checkpoint(buffer.getvalue(), LIMITS)


def test_a_deflated_archive_opens_like_the_stored_one() -> None:
    state = DigitsCNN(8).state_dict()
    stored = zipfile.ZipFile(io.BytesIO(saved(state)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in stored.infolist():
            archive.writestr(info.filename, stored.read(info))
    report = inspect_checkpoint(out.getvalue(), LIMITS)
    assert [t["shape"] for t in report["tensors"]] == [list(t.shape) for t in state.values()]


def test_a_zip_bomb_is_refused_by_its_unpacked_size_before_anything_inflates() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        with archive.open("archive/data/0", "w") as entry:
            zeros = bytes(1024 * 1024)
            for _ in range(100):  # 100 MiB of zeros: about 100 kB deflated
                entry.write(zeros)
    data = out.getvalue()
    assert len(data) < 1024 * 1024
    with pytest.raises(CheckpointError, match="max_checkpoint_unpacked_bytes") as caught:
        open_checkpoint(data, LIMITS)
    assert f"{100 * 1024 * 1024 + len(pickle.dumps({}, protocol=2))} bytes" in str(caught.value)
    assert caught.value.limit == "max_checkpoint_unpacked_bytes"


def test_a_zip_that_lies_about_its_unpacked_size_is_refused_by_its_crc() -> None:
    data = bytearray(
        torch_zip(pickle.dumps({}, protocol=2), {"0": bytes(4 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    )
    # Rewrite the entry's declared size (local header and central directory) to 1 kB.
    name = b"archive/data/0"
    local = data.index(b"PK\x03\x04" + data[4:6])  # first local header
    while data[local + 30 : local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", data, local + 22, 1024)
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, 1024)
    infos = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()}
    assert infos["archive/data/0"].file_size == 1024  # the lie is in place
    with pytest.raises(CheckpointError, match=r"damaged zip archive \(Bad CRC-32"):
        open_checkpoint(bytes(data), LIMITS)


def test_duplicate_entries_and_too_many_entries_are_refused() -> None:
    pickled = pickle.dumps({}, protocol=2)
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = torch_zip(pickled, extra={"archive/version": b"3\n"})
    with pytest.raises(CheckpointError, match="lists 'archive/version' twice"):
        open_checkpoint(twice, LIMITS)
    many = torch_zip(pickled, {str(i): b"" for i in range(20)})
    small = CheckpointLimits(max_checkpoint_entries=10)
    with pytest.raises(CheckpointError, match="more than 10 entries") as caught:
        open_checkpoint(many, small)
    assert caught.value.limit == "max_checkpoint_entries"
    assert len(open_checkpoint(many, CheckpointLimits(max_checkpoint_entries=23)).model) == 0


def test_entries_are_counted_in_the_directory_not_taken_from_the_end_record() -> None:
    data = bytearray(torch_zip(pickle.dumps({}, protocol=2), {str(i): b"" for i in range(200)}))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 5, 5)  # the end record now claims 5 entries
    assert len(zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()) == 203  # zipfile reads all
    with pytest.raises(CheckpointError, match="more than 100 entries"):
        open_checkpoint(bytes(data), CheckpointLimits(max_checkpoint_entries=100))


def test_a_large_pickle_is_refused_before_it_is_unpickled() -> None:
    data = saved({f"w{i}": torch.zeros(1) for i in range(200)})
    small = CheckpointLimits(max_checkpoint_pickle_bytes=2048)
    with pytest.raises(CheckpointError, match="max_checkpoint_pickle_bytes"):
        open_checkpoint(data, small)
    assert len(open_checkpoint(data, LIMITS).model) == 200


# -- structures that would hang or blow the stack -------------------------------------------------

PROTO = b"\x80\x02"
EMPTY_LIST, APPEND, APPENDS, MARK, STOP = b"]", b"a", b"e", b"(", b"."


def test_deep_nesting_is_refused_without_recursion() -> None:
    depth = 100_000
    pickled = PROTO + EMPTY_LIST * depth + APPEND * (depth - 1) + STOP
    with pytest.raises(CheckpointError, match="max_checkpoint_depth") as caught:
        open_checkpoint(torch_zip(pickled), LIMITS)
    assert caught.value.limit == "max_checkpoint_depth"


def test_a_huge_list_is_refused_by_its_item_count() -> None:
    pickled = PROTO + EMPTY_LIST + MARK + b"K\x01" * 200_000 + APPENDS + STOP
    with pytest.raises(CheckpointError, match="max_checkpoint_items"):
        open_checkpoint(torch_zip(pickled), LIMITS)


def test_shared_references_that_double_at_every_level_are_refused() -> None:
    # level 0 = []; level i = [level i-1, level i-1]: 2**30 paths in a 200-byte pickle, each
    # within the depth limit.
    ops = [PROTO, EMPTY_LIST, b"q\x00"]
    for level in range(1, 31):
        ops += [EMPTY_LIST, MARK, b"h", bytes([level - 1]), b"h", bytes([level - 1])]
        ops += [APPENDS, b"q", bytes([level])]
    pickled = b"".join(ops) + STOP
    assert len(pickled) < 500
    with pytest.raises(CheckpointError, match="max_checkpoint_items"):
        open_checkpoint(torch_zip(pickled), LIMITS)


def test_a_storage_that_claims_more_bytes_than_its_record_is_refused() -> None:
    class Storage:
        pass

    class Tensor:
        def __reduce__(self) -> Any:
            return (
                torch._utils._rebuild_tensor_v2,
                (Storage(), 0, (4,), (1,), False, OrderedDict()),
            )

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, Storage):  # 2**40 floats claimed, 16 bytes stored
                return ("storage", torch.FloatStorage, "0", "cpu", 2**40)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"w": Tensor()})
    data = torch_zip(buffer.getvalue(), {"0": bytes(16)})
    with pytest.raises(CheckpointError, match="torch.load could not read the file: record size"):
        open_checkpoint(data, LIMITS)


def test_the_safe_load_gate_imports_nothing_of_the_app() -> None:
    """The gate knows no task: app.jobs.safe_load imports only the standard library and torch."""
    tree = ast.parse(Path(safe_load.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported and not [name for name in imported if name.startswith("app")]
