"""Limits for learner programs and the exceptions the sandbox raises when a program breaks them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SandboxLimits:
    """Every bound the interpreter enforces; the web layer fills these from settings."""

    # Statements executed in total; each loop iteration's body statements count again.
    max_statements: int = 10_000
    # Iterations of one for/while loop (counted afresh each time the loop starts).
    max_loop_iterations: int = 10_000
    # Elements of any one tensor or array, checked before it is allocated.
    max_tensor_elements: int = 1_000_000
    # Bytes of all live tensors/arrays the program made (variables, temporaries of the
    # statement being run, and tensors the autograd graph keeps for backward).
    max_total_bytes: int = 64 * 1024 * 1024
    # Size of a Python int, estimated before `**`, `*` and `<<` compute it.
    max_int_bits: int = 4096
    # Wall time of one program.
    max_seconds: float = 5.0
    # Tensors with more elements are shown with "values": null.
    max_display_elements: int = 400
    max_code_chars: int = 20_000
    # Steps returned to the client; later statements still run but are not recorded.
    max_steps_recorded: int = 2_000
    # Additions to the brief's list (same spirit: every size a program controls is bounded).
    # Items of one list/tuple/dict the program builds (`[0] * 10**9` is refused).
    max_sequence_items: int = 100_000
    # Characters of one string (`"a" * 10**9` is refused).
    max_string_chars: int = 100_000
    # AST nesting depth: `((((...))))` deeper than this is refused before anything runs.
    max_nesting_depth: int = 50
    # Characters of print output kept per program; the rest is dropped with a notice.
    max_stdout_chars: int = 100_000
    # Numbers recorded across all steps (a variable unchanged since its last step counts once);
    # past this, steps stop being recorded.
    max_recorded_numbers: int = 500_000
    # Nodes of the autograd graph returned by autograd_graph (the walk stops past this).
    max_graph_nodes: int = 1_000
    # Learner functions and classes (issue 13), each counted before the work it guards.
    # Learner function calls nested at once (recursion included): past this, the program stops.
    max_call_depth: int = 100
    # Functions (def, lambda) and classes a program may create while it runs, in all.
    max_functions: int = 2_000
    max_classes: int = 100
    # Instances of learner classes a program may create, in all.
    max_objects: int = 100_000
    # The program's in-memory files (torch.save, SummaryWriter logs): how many, and bytes in all.
    max_files: int = 20
    max_file_bytes: int = 4 * 1024 * 1024
    # matplotlib figures a program may draw, each kept as a PNG of at most this many pixels.
    max_figures: int = 10
    max_figure_pixels: int = 1_000_000
    # Bytes of JSON one answer may hold (steps, print output, graph, backward steps), counted
    # while it is recorded: past this, recording stops with a notice (the program runs on).
    max_answer_bytes: int = 8 * 1024 * 1024


class SandboxRefused(Exception):
    """A program the sandbox will not run (or stopped), mapped to HTTP 422 by the web layer.

    Attributes:
        line: 1-based line of the learner's code the refusal is about, or None.
        reason: the learner-facing sentence without the line prefix.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.line))

    def with_line(self, line: int | None) -> SandboxRefused:
        """The same refusal about ``line`` (guards raise without knowing the line)."""
        return SandboxRefused(self.reason, line)


class SandboxLimitExceeded(SandboxRefused):
    """A limit hit while running; the message names the limit (e.g. ``max_tensor_elements``)."""

    def __init__(self, reason: str, line: int | None = None, limit: str | None = None) -> None:
        self.limit = limit
        super().__init__(reason, line)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.line, self.limit))

    def with_line(self, line: int | None) -> SandboxLimitExceeded:
        """The same limit hit, about ``line``."""
        return SandboxLimitExceeded(self.reason, line, self.limit)


def over_limit(subject: str, limits: SandboxLimits, name: str) -> SandboxLimitExceeded:
    """The standard message: "<subject> is over the limit of <value> (<limit name>)"."""
    return SandboxLimitExceeded(
        f"{subject} is over the limit of {getattr(limits, name)} ({name})", limit=name
    )
