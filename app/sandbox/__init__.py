"""A safe interpreter for the PyTorch-flavoured Python learners type into the pages.

``run_program`` returns a step-by-step trace; ``autograd_graph`` returns the real autograd graph;
``run_program_isolated`` runs either in a separate, killable worker process (use this one for
requests from the web, from a thread).

The text is parsed with ``ast.parse`` and walked by our own interpreter; it never reaches
``eval``/``exec``/``compile``. Allowed: assignments (tuple unpacking, ``x[i] = v``, ``+=`` & co.),
all arithmetic/matrix/comparison/boolean operators, indexing and slicing, ``for``, ``while``
(bounded like ``for``), ``if``, ``break``/``continue``, ``with torch.no_grad()``/``enable_grad()``,
``del``, ``assert``, f-strings, and the whitelisted names in ``library`` (torch, np/numpy, nn, F,
optim and safe builtins). ``import torch`` and the other pre-bound modules are accepted as no-ops
at the top level. Refused before anything runs: other imports, ``def``/``class``/``lambda``,
``try``/``raise``, comprehensions, ``global``, dunder and private names and attributes, attributes
no whitelisted type has, interpreter/OS names (``open``, ``eval``, ``getattr``, ``type``...),
unknown names and code nested deeper than ``max_nesting_depth``. Refused while running: attribute
writes other than ``x.grad``/``x.requires_grad``, and anything over a limit (SandboxLimitExceeded).
Mistakes such as a shape mismatch come back as ``error`` with PyTorch's own message.

Values are JSON-ready; non-finite floats are the strings "nan", "inf" and "-inf". Steps record
what each statement changed (``recording``); ``run_program`` answers every variable per step
(steps="full") or only the changes (steps="changes"). Every answer fits in ``max_answer_bytes``
bytes of JSON, counted while it is recorded.
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
