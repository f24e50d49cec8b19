"""The PyTorch the lessons' programs need, as programs get it: each against plain Python running
the same program (same start seed), and each one's hostile uses.

What the lessons' "Step through it" programs brought in (issue 14, item 4): ``torch.Generator``
(and ``generator=`` for the random functions, ``DataLoader`` and ``random_split``), torch's thread
count, ``Tensor.nonzero``/``amax``/``amin`` and ``argsort(descending=, stable=)``, a module's
``modules()``, ``requires_grad_`` and forward hooks, layer classes as types, optimizer parameter
groups, ``zip(strict=)``, ``collections.OrderedDict`` (and ``nn.Sequential`` of one),
``torchvision.transforms.ToPILImage`` with a picture's ``size``/``mode``, and the lessons' sample
pictures as read-only data files.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn, optim

from app.lessons.images import SAMPLES, sample_image
from app.sandbox import SandboxLimitExceeded, SandboxLimits, SandboxRefused, run_program
from app.sandbox.library import GENERATOR_STATE_BYTES


def sandbox(code: str, **limits: Any) -> dict[str, Any]:
    return run_program(code, SandboxLimits(**limits), steps="none")


def printed(answer: dict[str, Any]) -> str:
    return "".join(s.get("stdout") or "" for s in answer["steps"]) + answer["stdout_after"]


def plain(code: str) -> tuple[str, str | None]:
    """What plain Python prints for ``code``, from the sandbox's start (seed 0, its pre-bound
    names), and its error as the sandbox reports one (``Type: message``), or None."""
    out = io.StringIO()
    names = {"torch": torch, "nn": nn, "F": F, "optim": optim, "np": np, "__name__": "__main__"}
    torch.manual_seed(0)
    error = None
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(code, "<plain>", "exec"), names)  # the test's own, trusted programs
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    return out.getvalue(), error


def same_as_plain(code: str, **limits: Any) -> dict[str, Any]:
    """Run ``code`` in the sandbox and in plain Python: the same output, the same error."""
    answer = sandbox(code, **limits)
    expected, error = plain(code)
    assert printed(answer) == expected
    assert (answer["error"] or {}).get("message") == error
    return answer


def message(answer: dict[str, Any]) -> str:
    assert answer["error"] is not None, "the program ran without an error"
    return str(answer["error"]["message"])


# -- torch.Generator -------------------------------------------------------------------------------


def test_a_generator_draws_what_plain_pytorch_draws_and_leaves_the_global_rng_alone() -> None:
    same_as_plain(
        "g = torch.Generator().manual_seed(7)\n"
        "print(torch.randperm(10, generator=g))\n"
        "print(torch.rand(3, generator=g), torch.randn(2, 2, generator=g))\n"
        "print(torch.randint(0, 10, (5,), generator=g))\n"
        "print(g.initial_seed(), g.device, torch.Generator(device='cpu').device)\n"
        "print(torch.rand(2))  # the global RNG: still where seed 0 left it\n"
    )


def test_manual_seed_returns_the_generator_so_calls_chain_as_in_pytorch() -> None:
    same_as_plain(
        "g = torch.Generator()\n"
        "h = g.manual_seed(3)\n"
        "print(h is g, g.initial_seed(), isinstance(g, torch.Generator), type(g))\n"
        "order = torch.randperm(6, generator=torch.Generator().manual_seed(0))\n"
        "print(order)\n"
    )


def test_a_loader_with_a_generator_shuffles_as_plain_pytorchs_does_epoch_by_epoch() -> None:
    same_as_plain(
        "from torch.utils.data import DataLoader, TensorDataset, random_split\n"
        "data = TensorDataset(torch.arange(10.0), torch.arange(10))\n"
        "shuffle = torch.Generator()\n"
        "loader = DataLoader(data, batch_size=4, shuffle=True, generator=shuffle)\n"
        "for epoch in range(3):\n"
        "    shuffle.manual_seed(100 + epoch)\n"
        "    print([y.tolist() for _, y in loader])\n"
        "a, b = random_split(data, [7, 3], generator=torch.Generator().manual_seed(5))\n"
        "print(a.indices, b.indices)\n"
        "print(torch.rand(1))  # neither touched the global RNG\n"
    )


def test_a_loader_without_a_generator_still_draws_from_the_global_rng() -> None:
    same_as_plain(
        "from torch.utils.data import DataLoader\n"
        "torch.manual_seed(4)\n"
        "print([b.tolist() for b in DataLoader(list(range(8)), batch_size=3, shuffle=True)])\n"
        "print(torch.rand(1))\n"
    )


@pytest.mark.parametrize(
    "seed", ["2 ** 64", "10 ** 1000", "-(2 ** 63) - 1", "2.5", "True", "'3'", "None", "[1]"]
)
def test_a_seed_plain_pytorch_refuses_is_its_error_here(seed: str) -> None:
    answer = same_as_plain(f"g = torch.Generator()\ng.manual_seed({seed})\n")
    assert answer["error"]["line"] == 2


def test_the_largest_seeds_pytorch_takes_work() -> None:
    same_as_plain(
        "for seed in (2 ** 64 - 1, -(2 ** 63), 0):\n"
        "    print(torch.Generator().manual_seed(seed).initial_seed())\n"
    )


def test_manual_seed_takes_one_positional_seed() -> None:
    assert "takes no keyword arguments" in message(sandbox("torch.Generator().manual_seed(seed=3)"))
    assert "exactly one argument" in message(sandbox("torch.Generator().manual_seed(1, 2)"))


@pytest.mark.parametrize(
    "call",
    [
        "torch.rand(2, generator=5)",
        "torch.randperm(3, generator='cpu')",
        "DataLoader([1, 2], generator=[torch.Generator()])",
        "random_split([1, 2, 3], [1, 2], generator=7)",
    ],
)
def test_generator_must_be_a_generator(call: str) -> None:
    answer = sandbox(f"from torch.utils.data import DataLoader, random_split\n{call}\n")
    assert message(answer).startswith("TypeError: ")
    assert "generator" in message(answer)


@pytest.mark.parametrize(
    "code",
    [
        "torch.tensor(g)",
        "torch.sum(torch.ones(2), generator=g)",
        "from torch.utils.data import DataLoader\nDataLoader(g)",
        "g + 1",
        "g(3)",
        "torch.ones(2, dtype=g)",
        "nn.Sequential(g)",
    ],
)
def test_a_generator_where_it_does_not_go_is_an_error_or_a_refusal(code: str) -> None:
    try:
        answer = sandbox(f"g = torch.Generator()\n{code}\n")
    except SandboxRefused:
        return
    assert answer["error"] is not None


def test_a_generators_own_state_and_os_seeding_stay_out_of_reach() -> None:
    for call in ("g.get_state()", "g.set_state(torch.zeros(5056, dtype=torch.uint8))", "g.seed()"):
        with pytest.raises(SandboxRefused):
            sandbox(f"g = torch.Generator()\n{call}\n")


def test_a_saved_generator_does_not_load_back_as_in_plain_pytorch() -> None:
    answer = sandbox(
        "g = torch.Generator().manual_seed(1)\ntorch.save(g, 'g.pth')\ntorch.load('g.pth')\n"
    )
    assert message(answer).startswith("UnpicklingError: Weights only load failed")


def test_cuda_and_odd_devices_fail_as_without_cuda() -> None:
    assert "CUDA" in message(sandbox("torch.Generator(device='cuda')"))
    assert message(sandbox("torch.Generator('xyz')")).startswith("RuntimeError: ")
    with pytest.raises(SandboxRefused, match="device"):
        sandbox("torch.Generator('c' * 1000)")
    with pytest.raises(SandboxRefused, match="device"):
        sandbox("torch.Generator(3)")


def test_generators_count_against_max_total_bytes_while_they_live() -> None:
    limit = 40 * GENERATOR_STATE_BYTES
    with pytest.raises(SandboxLimitExceeded, match="max_total_bytes"):
        sandbox("kept = [torch.Generator() for _ in range(100)]", max_total_bytes=limit)
    answer = sandbox(  # one at a time: each is freed when the next replaces it
        "for i in range(100):\n    g = torch.Generator().manual_seed(i)\nprint(g.initial_seed())",
        max_total_bytes=limit,
    )
    assert printed(answer) == "99\n"


def test_a_generator_state_matches_what_it_is_counted_as() -> None:
    assert torch.Generator().get_state().numel() == GENERATOR_STATE_BYTES


# -- torch's threads -------------------------------------------------------------------------------


def test_a_program_reads_the_thread_count_and_cannot_change_it() -> None:
    before = torch.get_num_threads()
    answer = sandbox(
        "n = torch.get_num_threads()\n"
        "torch.set_num_threads(1)\n"
        "torch.set_num_threads(64)\n"
        "torch.set_num_threads(n)\n"
        "print(n, torch.get_num_threads())\n"
    )
    assert printed(answer) == f"{before} {before}\n"
    assert torch.get_num_threads() == before

    def notice(n: int) -> str:
        return (
            f"torch.set_num_threads({n}) left the number of threads at {before}: this sandbox's "
            "worker keeps its own"
        )

    expected = [notice(n) for n in (1, 64) if n != before]
    assert [n for n in answer["notices"] if n.startswith("torch.set_num_threads(")] == expected


@pytest.mark.parametrize("n", ["0", "-3", "2.0", "'2'", "True"])
def test_a_thread_count_plain_pytorch_refuses_is_its_error(n: str) -> None:
    threads = torch.get_num_threads()
    try:
        same_as_plain(f"torch.set_num_threads({n})\n")
    finally:
        torch.set_num_threads(threads)  # plain Python's run may have changed it


# -- tensor methods --------------------------------------------------------------------------------


def test_nonzero_amax_amin_and_a_stable_descending_argsort_as_in_pytorch() -> None:
    same_as_plain(
        "x = torch.tensor([[0, 3, 0], [2, 0, 2]])\n"
        "print(x.nonzero(), (x > 0).nonzero().flatten())\n"
        "y = torch.arange(24.0).reshape(2, 3, 4)\n"
        "print(y.amax(dim=(1, 2)), y.amin(dim=0), y.amax(), y.amin(dim=-1, keepdim=True).shape)\n"
        "z = torch.tensor([3, 1, 3, 2, 1])\n"
        "print(z.argsort(descending=True, stable=True), z.sort(descending=True, stable=True))\n"
    )


def test_nonzero_is_sized_before_it_allocates() -> None:
    with pytest.raises(SandboxLimitExceeded, match="max_tensor_elements"):
        sandbox("torch.ones(600, 1000).nonzero()")  # 600,000 rows of 2 indices


# -- modules: modules(), requires_grad_, forward hooks, classes as types ---------------------------

NET = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x))


net = Net()
x = torch.randn(5, 3)
"""


def test_modules_and_freezing_as_in_pytorch() -> None:
    same_as_plain(
        NET + "print(len(list(net.modules())), [isinstance(m, nn.Linear) for m in net.modules()])\n"
        "frozen = net.body.requires_grad_(False)\n"
        "print(frozen is net.body)\n"
        "print(sum(p.numel() for p in net.parameters() if p.requires_grad))\n"
        "net.requires_grad_()\n"
        "print(all(p.requires_grad for p in net.parameters()))\n"
    )


def test_requires_grad_takes_a_flag() -> None:
    assert "True or False" in message(sandbox("nn.Linear(2, 2).requires_grad_(1)"))


def test_forward_hooks_see_each_layers_output_as_in_pytorch() -> None:
    same_as_plain(
        NET + "maps = []\n"
        "for m in net.modules():\n"
        "    if isinstance(m, nn.ReLU):\n"
        "        m.register_forward_hook(lambda module, inputs, output: maps.append(output))\n"
        "with torch.no_grad():\n"
        "    out = net(x)\n"
        "print(len(maps), [tuple(m.shape) for m in maps], maps[1].sum(), out.sum())\n"
    )


def test_a_hook_that_returns_a_value_replaces_the_output_and_remove_takes_it_off() -> None:
    same_as_plain(
        "layer = nn.Linear(2, 2)\n"
        "def double(module, inputs, output):\n"
        "    print('hooked', type(module), len(inputs))\n"
        "    return output * 2\n"
        "handle = layer.register_forward_hook(double)\n"
        "x = torch.ones(1, 2)\n"
        "a = layer(x)\n"
        "handle.remove()\n"
        "print(torch.allclose(a, 2 * layer(x)))\n"
    )


def test_a_sequentials_own_hook_runs_after_its_layers_as_in_pytorch() -> None:
    same_as_plain(
        "seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())\n"
        "seen = []\n"
        "seq.register_forward_hook(lambda m, i, o: seen.append((len(m), i[0].shape, o.shape)))\n"
        "seq[1].register_forward_hook(lambda m, i, o: o + 1)\n"
        "print(seq(torch.ones(4, 2)).min() >= 1, seen)\n"
    )


def test_a_learner_modules_hook_and_an_error_in_a_hook_as_in_plain_python() -> None:
    same_as_plain(
        NET + "def check(module, inputs, output):\n"
        "    if output.shape[1] != 3:\n"
        "        raise ValueError(f'expected 3 outputs, got {output.shape[1]}')\n"
        "net.register_forward_hook(check)\n"
        "try:\n"
        "    net(x)\n"
        "except ValueError as error:\n"
        "    print('caught:', error)\n"
    )


def test_a_library_function_is_not_a_hook() -> None:
    with pytest.raises(SandboxRefused, match="a function the program defines"):
        sandbox("nn.ReLU().register_forward_hook(print)")
    with pytest.raises(SandboxRefused, match="the hook only"):
        sandbox("nn.ReLU().register_forward_hook(lambda m, i, o: None, prepend=True)")


def test_a_runaway_hook_is_stopped_by_the_limits() -> None:
    with pytest.raises(SandboxLimitExceeded, match="max_call_depth"):
        sandbox(  # the hook calls its own layer: recursion, as in plain Python, until the limit
            "layer = nn.ReLU()\n"
            "layer.register_forward_hook(lambda m, i, o: m(o))\n"
            "layer(torch.ones(2))\n"
        )
    with pytest.raises(SandboxLimitExceeded, match="max_statements|max_loop_iterations"):
        sandbox(
            "def spin(m, i, o):\n    while True:\n        pass\n"
            "layer = nn.ReLU()\nlayer.register_forward_hook(spin)\nlayer(torch.ones(2))\n"
        )


def test_layer_classes_are_types_as_in_pytorch() -> None:
    same_as_plain(
        "layers = [nn.Linear(2, 2), nn.ReLU(), nn.Sequential(nn.ReLU()), nn.Conv2d(1, 1, 2)]\n"
        "print([isinstance(m, nn.ReLU) for m in layers], isinstance(layers[2], nn.Sequential))\n"
        "print(isinstance(layers[0], (nn.Conv2d, nn.Linear)), nn.ReLU, nn.Linear)\n"
        "print(type(layers[0]), type(nn.ReLU))\n"
    )


# -- optimizer parameter groups --------------------------------------------------------------------


def test_parameter_groups_train_each_group_at_its_own_rate_as_in_pytorch() -> None:
    same_as_plain(
        NET + "opt = torch.optim.SGD(\n"
        "    [{'params': net.body.parameters(), 'lr': 0.01},\n"
        "     {'params': net.head.parameters()}],\n"
        "    lr=0.1, momentum=0.9,\n"
        ")\n"
        "for step in range(3):\n"
        "    loss = net(x).pow(2).mean()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        "print(loss.item(), [g['lr'] for g in opt.param_groups])\n"
        "print(net.head.weight)\n"
        "adam = torch.optim.Adam([{'params': [net.head.bias], 'betas': (0.8, 0.9)}], lr=0.1)\n"
        "print(adam.param_groups[0]['betas'])\n"
    )


def test_a_group_without_params_fails_as_in_pytorch() -> None:
    same_as_plain(
        "w = torch.zeros(2, requires_grad=True)\ntorch.optim.SGD([{'lr': 0.1}], lr=0.1)\n"
    )


@pytest.mark.parametrize(
    "group",
    [
        "{'params': [w], 'foreach': print}",
        "{'params': [w], 'lr': 'fast'}",
        "{'params': [w], 'lr': [0.1]}",
        "{'params': [w], 'closure': 1}",
    ],
)
def test_a_group_option_that_is_not_a_plain_number_is_refused(group: str) -> None:
    with pytest.raises(SandboxRefused, match="parameter group"):
        sandbox(f"w = torch.zeros(2, requires_grad=True)\ntorch.optim.SGD([{group}], lr=0.1)\n")


def test_groups_hold_at_most_a_thousand_tensors_in_all() -> None:
    with pytest.raises(SandboxRefused, match="1000 tensors"):
        sandbox(
            "ws = [torch.zeros(1, requires_grad=True) for _ in range(600)]\n"
            "torch.optim.SGD([{'params': ws}, {'params': ws}], lr=0.1)\n"
        )
    assert "must be tensors" in message(sandbox("torch.optim.SGD([{'params': [1, 2]}], lr=0.1)"))
    answer = sandbox("torch.optim.SGD([{'params': [1, 2]}, 5], lr=0.1)")
    assert message(answer).startswith("TypeError: ")


# -- zip(strict=), collections.OrderedDict, nn.Sequential(OrderedDict) -----------------------------


def test_zip_strict_as_in_python() -> None:
    same_as_plain("print(list(zip([1, 2], 'ab', strict=True)))\nzip([1, 2], [1], strict=True)\n")
    same_as_plain("list(zip([1, 2], [1], strict=True))\n")
    assert message(sandbox("zip([1], [2], fill=0)")).startswith("TypeError: ")


def test_ordered_dicts_and_named_sequential_layers_as_in_pytorch() -> None:
    same_as_plain(
        "from collections import OrderedDict\n"
        "d = OrderedDict(b=1, a=2)\n"
        "print(d, OrderedDict([('x', 1)]), OrderedDict({'y': 2}), isinstance(d, dict))\n"
        "model = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), relu=nn.ReLU(),\n"
        "                                  flat=nn.Flatten(), fc=nn.Linear(8, 3)))\n"
        "print(model)\n"
        "state = model.state_dict()\n"
        "print(list(state), isinstance(state, OrderedDict))\n"
        "print(model(torch.ones(1, 1, 4, 4)).shape)\n"
    )


@pytest.mark.parametrize("name", ["'a.b'", "''", "'training'", "'__init__'", "3"])
def test_a_layer_name_pytorch_refuses_is_its_error(name: str) -> None:
    same_as_plain(
        f"from collections import OrderedDict\nnn.Sequential(OrderedDict([({name}, nn.ReLU())]))\n"
    )


def test_a_sequential_of_what_is_not_a_layer_is_refused() -> None:
    for code in ("OrderedDict(a=print)", "OrderedDict(a=3)", "{'a': nn.ReLU()}"):
        with pytest.raises(SandboxRefused, match="nn.Sequential"):
            sandbox(f"from collections import OrderedDict\nnn.Sequential({code})\n")


def test_an_ordered_dict_is_bounded_like_any_container() -> None:
    with pytest.raises(SandboxLimitExceeded, match="max_sequence_items"):
        sandbox(
            "from collections import OrderedDict\nOrderedDict((i, i) for i in range(10 ** 6))",
            max_loop_iterations=10**7,
        )
    assert message(sandbox("from collections import OrderedDict\nOrderedDict(1, 2)")).startswith(
        "TypeError: "
    )


# -- ToPILImage and the sample pictures ------------------------------------------------------------


def vision(code: str) -> str:
    answer = sandbox("import numpy as np\nimport torchvision.transforms as T\n" + code)
    assert answer["error"] is None, answer["error"]
    return printed(answer)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_the_sample_pictures_are_data_files_with_the_pages_pixels(name: str) -> None:
    pixels = np.asarray(sample_image(name))
    out = vision(
        f"a = np.load('data/pictures/{name}.npy')\n"
        "print(a.shape, a.dtype, a.sum(), a[1, 2].tolist())\n"
    )
    assert out == f"{pixels.shape} uint8 {pixels.sum()} {pixels[1, 2].tolist()}\n"


def test_the_pictures_are_read_only() -> None:
    answer = sandbox("np.save('data/pictures/flower.npy', np.zeros(2))")
    assert message(answer).startswith("PermissionError: ")


def test_to_pil_image_makes_the_picture_pillow_makes_from_the_same_pixels() -> None:
    pixels = np.asarray(sample_image("gradient"))
    out = vision(
        "img = T.ToPILImage()(np.load('data/pictures/gradient.npy'))\n"
        "x = T.ToTensor()(img)\n"
        "print(img.size, img.mode, img.width, img.height, x.shape, x.sum().item())\n"
    )
    picture = Image.fromarray(pixels)
    expected = torch.from_numpy(np.asarray(picture).transpose(2, 0, 1).copy()).float() / 255
    width, height = picture.size
    assert out == (
        f"{picture.size} RGB {width} {height} {expected.shape} {expected.sum().item()}\n"
    )


def test_to_pil_image_of_tensors_scales_floats_by_255_as_torchvision_does() -> None:
    x = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(1))
    gray = torch.rand(1, 4, 5, generator=torch.Generator().manual_seed(2))
    rgb = (x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    luma = (gray[0].numpy() * 255).astype(np.uint8)
    out = vision(
        "x = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(1))\n"
        "gray = torch.rand(1, 4, 5, generator=torch.Generator().manual_seed(2))\n"
        "a, b = T.ToPILImage()(x), T.ToPILImage()(gray)\n"
        "print(a.mode, a.size, b.mode, (T.ToTensor()(a) * 255).round().sum().item())\n"
        "print((T.ToTensor()(b) * 255).round().sum().item())\n"
        "print(T.ToPILImage()(np.zeros((2, 3, 4), dtype=np.uint8)).mode)\n"
        "print(T.ToPILImage(mode='F')(np.zeros((2, 3), dtype=np.float32)).mode)\n"
    )
    assert out == (
        f"RGB (5, 4) L {float(rgb.astype(np.float32).sum())}\n"
        f"{float(luma.astype(np.float32).sum())}\nRGBA\nF\n"
    )


@pytest.mark.parametrize(
    ("pic", "error"),
    [
        ("np.zeros((2, 2, 5), dtype=np.uint8)", "ValueError: pic should not have > 4 channels"),
        ("np.zeros((1, 2, 2, 3), dtype=np.uint8)", "ValueError: pic should be 2/3 dimensional"),
        ("np.zeros((2, 2), dtype=np.int32)", "TypeError: Input type int32 is not supported"),
        ("[[1, 2], [3, 4]]", "TypeError: pic should be Tensor or ndarray"),
        ("torch.zeros(5)", "ValueError: pic should be 2/3 dimensional"),
    ],
)
def test_to_pil_image_refuses_what_torchvision_refuses(pic: str, error: str) -> None:
    answer = sandbox(f"import torchvision.transforms as T\nT.ToPILImage()({pic})\n")
    assert message(answer).startswith(error)


def test_to_pil_image_with_the_wrong_mode_fails_as_in_torchvision() -> None:
    answer = sandbox(
        "import torchvision.transforms as T\n"
        "T.ToPILImage(mode='L')(np.zeros((2, 2, 3), dtype=np.uint8))\n"
    )
    assert message(answer) == (
        "ValueError: Incorrect mode (L) supplied for input type uint8. Should be RGB"
    )
    try:  # a picture is read-only: no method of Pillow's reaches the program
        answer = sandbox(
            "import torchvision.transforms as T\nimg = T.ToPILImage()(torch.zeros(3, 2, 2))\n"
            "img.save('x.png')\n"
        )
    except SandboxRefused:
        return
    assert message(answer).startswith("AttributeError: ")
