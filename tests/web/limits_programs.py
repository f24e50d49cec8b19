"""Issue 13's limits on what whole learner scripts make (functions, classes, objects, nested
calls, in-memory files, figures), gathered by test_limits_enforced.py: each lowered, a program
over it is a 422 naming it, and one under it runs."""

from __future__ import annotations

from tests.web.limit_helpers import Make, sandbox_refuses

PLT = "import matplotlib.pyplot as plt\n"


def case_program_max_call_depth(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_call_depth",
        5,
        "def f(n):\n    return f(n + 1)\nf(0)\n",
        "def f(n):\n    return n if n == 0 else f(n - 1)\nf(3)\n",
    )


def case_program_max_functions(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_functions",
        3,
        "for i in range(5):\n    def f():\n        pass\n",
        "def f():\n    pass\ng = lambda: 1\n",
    )


def case_program_max_classes(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_classes",
        2,
        "for i in range(3):\n    class A:\n        pass\n",
        "class A:\n    pass\nclass B(A):\n    pass\n",
    )


def case_program_max_objects(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_objects",
        3,
        "class A:\n    pass\nxs = [A() for i in range(5)]\n",
        "class A:\n    pass\nxs = [A() for i in range(3)]\n",
    )


def case_program_max_files(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_files",
        1,
        "torch.save(1, 'a.pt')\ntorch.save(2, 'b.pt')\n",
        "torch.save(1, 'a.pt')\ntorch.save(2, 'a.pt')\n",  # saving again replaces the file
    )


def case_program_max_file_bytes(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_file_bytes",
        4096,
        "torch.save(torch.zeros(2000), 'big.pt')\n",  # 8 kB of float32
        "torch.save(torch.zeros(2), 'small.pt')\n",
    )


def case_program_max_figures(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_figures",
        1,
        PLT + "plt.figure()\nplt.plot([1, 2])\nplt.figure()\nplt.plot([2, 1])\n",
        PLT + "plt.figure()\nplt.plot([1, 2])\nplt.show()\n",
    )


def case_program_max_figure_pixels(make: Make) -> None:
    sandbox_refuses(
        make,
        "program_max_figure_pixels",
        10_000,
        PLT + "plt.figure(figsize=(6.4, 4.8))\nplt.plot([1, 2])\n",  # 512 x 384 at 80 dpi
        PLT + "plt.figure(figsize=(1, 1), dpi=80)\nplt.plot([1, 2])\nplt.show()\n",
    )
