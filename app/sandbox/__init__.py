"""A safe interpreter for the PyTorch-flavoured Python learners type into the pages.

``run_program`` returns a step-by-step trace; ``autograd_graph`` returns the real autograd graph;
``run_program_isolated`` runs either in a separate, killable worker process (use this one for
requests from the web, from a thread).

The text is parsed with ``ast.parse`` and walked by our own interpreter; it never reaches
``eval``/``exec``/``compile``. A whole beginner script runs as in plain Python (issue 13; the list
is ``docs/sandbox.md``): assignments of every kind, every operator, ``if``/``for``/``while``,
``def``/``lambda`` with closures, ``class`` on ``object``, ``nn.Module`` or ``Dataset``,
``try``/``raise``, comprehensions, imports as written (``modules``), in-memory files, figures and
TensorBoard logs (``lib_*``). Refused before anything runs: ``yield``, ``async``, metaclasses,
special methods other than eight, decorators other than five, dunder and private names and
attributes, attributes no whitelisted type or learner class has, interpreter/OS names (``eval``,
``getattr``, ``globals``...), and code nested deeper than ``max_nesting_depth``. Refused while
running: attribute writes on library objects other than ``x.grad``/``x.requires_grad``, and
anything over a limit (SandboxLimitExceeded), which no handler can catch. Mistakes such as a shape
mismatch or an unknown name come back as ``error`` with PyTorch's or Python's own message at the
line where plain Python raises it.

Values are JSON-ready; non-finite floats are the strings "nan", "inf" and "-inf". Steps record
what each statement changed (``recording``); ``run_program`` answers every variable per step
(steps="full"), only the changes (steps="changes") or no steps (steps="none"). Every answer fits
in ``max_answer_bytes`` bytes of JSON, counted while it is recorded.
"""

from app.sandbox.graph import autograd_graph
from app.sandbox.interpreter import run_program
from app.sandbox.isolation import SandboxBusy, run_program_isolated
from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused

__all__ = [
    "SandboxBusy",
    "SandboxLimitExceeded",
    "SandboxLimits",
    "SandboxRefused",
    "autograd_graph",
    "run_program",
    "run_program_isolated",
]
