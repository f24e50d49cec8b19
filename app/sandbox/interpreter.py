"""The tree-walking interpreter: runs a checked program statement by statement, recording steps.

Learner text is parsed by ``ast.parse`` only; this module walks the tree itself, so the text never
reaches ``eval``, ``exec`` or ``compile``. Values come only from literals and from the whitelist in
``library``; every call, operator and subscript goes through the size checks in ``guards`` and
``operators`` first.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from app.sandbox.checker import CheckedProgram, ProgramSyntaxError, check_program
from app.sandbox.definitions import SPECIAL_BY_ID, Definitions, ProgramError, Return
from app.sandbox.guards import Guard, iter_checked
from app.sandbox.hints import hint_for
from app.sandbox.library import (
    BUILTINS,
    CONTEXT_MANAGERS,
    MODULE_CLASSES,
    NAMESPACES,
    SUBSCRIPTABLE_TYPES,
    BoundMethod,
    Namespace,
    SafeFunction,
    call_module,
    call_np_scalar,
    is_np_scalar_type,
    type_phrase,
)
from app.sandbox.limits import SandboxLimits, SandboxRefused, over_limit
from app.sandbox.modules import collect_outputs, import_module, member
from app.sandbox.operators import binary, check_index, compare
from app.sandbox.recording import Answer, Recorder, StepsFormat
from app.sandbox.scopes import Frame
from app.sandbox.values import RecordingBudgetExceeded, Serializer, format_value

SEED = 0  # every run starts from the same random numbers, so a learner can replay it

_SUBSCRIPTABLE = (
    torch.Tensor,
    np.ndarray,
    list,
    tuple,
    str,
    dict,
    range,
    nn.Sequential,
    torch.utils.data.TensorDataset,
    torch.utils.data.Subset,
)
_ITEM_ASSIGNABLE = (torch.Tensor, np.ndarray, list, dict)
# [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[+\- ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?[bcdeEfFgGnosxX%]?",
    re.DOTALL,
)
_MAX_ERROR_CHARS = 2_000
_RECURSION_LIMIT = 20_000
_MAX_FORMAT_WIDTH = 1_000
_MAX_FORMAT_PRECISION = 100

# One in-process run at a time: runs reseed the global RNG and record warnings process-wide.
_RUN_LOCK = threading.Lock()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class Execution:
    """Everything a run leaves behind: steps for run_program, variables for autograd_graph."""

    env: dict[str, Any] = field(default_factory=dict)
    recorder: Recorder | None = None  # the recorded steps (None: the program did not parse)
    error: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)
    truncated: bool = False
    stdout: str = ""
    statements: int = 0
    serializer: Serializer | None = None
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    printed: list[list[Any]] = field(default_factory=list)  # [top-level line, text] in order


# The share of max_seconds a run may spend while steps are recorded; the rest runs unrecorded.
RECORDING_SHARE = 0.5


class StopAtStep(SandboxRefused):
    """The run reached the step it was asked to stop after (``stop_after``): not an error.

    A refusal, so that no learner ``try`` or library callback can swallow it: every later
    statement raises it again, as for a limit.
    """


class Interpreter(Definitions):
    """Runs one checked program against fresh variables."""

    def __init__(
        self,
        program: CheckedProgram,
        limits: SandboxLimits,
        record: bool,
        steps: StepsFormat = "full",
        stop_after: int | None = None,
    ) -> None:
        self.program = program
        self.limits = limits
        self.guard = Guard(limits)
        self.guard.call = self.call
        self.serializer = Serializer(limits)
        self.env: dict[str, Any] = {}
        self.module_frame = Frame("module", self.env)
        self.frame = self.module_frame
        self.recorder = Recorder(self.serializer, limits, steps)
        self.answers = record  # False: only the final variables matter (autograd_graph)
        self.recording = record and steps != "none"
        self.truncated = False
        self.notices: list[str] = []
        self.stdout: list[str] = []
        self.line = 1
        self._after_cut = False
        self._warnings: list[warnings.WarningMessage] = []
        self._sources: dict[int, str] = {}
        self.imported = False  # an import bound a module to a variable
        self._counted: dict[str, int] = {}  # variable -> id of the array last counted there
        # What the program printed, by the line of the top-level statement that printed it.
        self.printed: list[list[Any]] = []
        # Stop once this many steps have run (the page's step N), keeping what that step saw.
        self.stop_after = stop_after
        self.steps_run = 0
        self.seen_at_stop: dict[str, Any] | None = None
        super().__init__()

    # -- statements --------------------------------------------------------------------------------

    def run(self, caught: list[warnings.WarningMessage]) -> None:
        self._warnings = caught
        self.exec_block(self.program.body)

    def exec_block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.exec_stmt(stmt)

    def exec_stmt(self, stmt: ast.stmt) -> None:
        line = self.line = self.guard.line = stmt.lineno
        try:
            if self.stopped is not None:  # a limit some library or handler tried to swallow
                raise self.stopped
            self.guard.count_statement()
            getattr(self, f"_stmt_{type(stmt).__name__}")(stmt)
        except (_Break, _Continue, Return, ProgramError):
            raise
        except SandboxRefused as exc:
            self.stopped = exc
            if exc.line is None:
                raise exc.with_line(line) from None
            raise
        except RecursionError:
            raise self.stop(
                over_limit(
                    "calls nested too deeply for the interpreter", self.limits, "max_call_depth"
                ).with_line(line)
            ) from None
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # a learner's runtime error: PyTorch's/Python's own message
            raise self.program_error(exc, line) from None
        finally:
            self.line = line

    def stop(self, exc: SandboxRefused) -> SandboxRefused:
        """Remember a limit so no handler can swallow it: every later statement raises it."""
        self.stopped = exc
        return exc

    def program_error(self, exc: BaseException, line: int) -> ProgramError:
        """A learner-visible error about ``line`` (or the line learner code inside a library
        call raised it at)."""
        where = getattr(exc, "_sandbox_line", None)
        return ProgramError(where if isinstance(where, int) else line, error_message(exc), exc)

    def _stmt_Expr(self, stmt: ast.Expr) -> None:
        self.eval(stmt.value)
        self.record(stmt)

    def _stmt_Assign(self, stmt: ast.Assign) -> None:
        value = self.eval(stmt.value)
        for target in stmt.targets:
            self.assign(target, value)
        self.record(stmt)

    def _stmt_AnnAssign(self, stmt: ast.AnnAssign) -> None:
        if stmt.value is not None:  # the annotation is never evaluated (as in a function body)
            self.assign(stmt.target, self.eval(stmt.value))
        self.record(stmt)

    def _stmt_AugAssign(self, stmt: ast.AugAssign) -> None:
        op = type(stmt.op).__name__
        target = stmt.target
        guard = self.guard
        if isinstance(target, ast.Name):
            old = self.lookup(target.id)
            self.store(target.id, binary(guard, op, old, self.eval(stmt.value), inplace=True))
        elif isinstance(target, ast.Subscript):
            obj = self.eval(target.value)
            index = self.eval(target.slice)
            old = self.subscript(obj, index)
            self.set_item(obj, index, binary(guard, op, old, self.eval(stmt.value), True))
        elif isinstance(target, ast.Attribute):
            obj = self.eval(target.value)
            old = self.get_attr(obj, target.attr)
            new = binary(guard, op, old, self.eval(stmt.value), inplace=True)
            self.set_attr(obj, target.attr, new)
        else:
            raise SandboxRefused("this augmented assignment is not supported")
        self.record(stmt)

    def _stmt_For(self, stmt: ast.For) -> None:
        iterator = iter_checked(self.eval(stmt.iter))
        for count in itertools.count(1):
            self.line = self.guard.line = stmt.lineno
            self.guard.check_deadline()
            item = next(iterator, _DONE)
            if item is _DONE:
                break
            self._count_iteration(count)
            self.assign(stmt.target, self.guard.check_result(item))
            self.record(stmt, header=True)
            if not self._iteration(stmt.body):
                return
        self.exec_block(stmt.orelse)

    def _iteration(self, body: list[ast.stmt]) -> bool:
        """One pass through a loop's body; False when it left the loop with ``break``."""
        try:
            self.exec_block(body)
        except _Break:
            return False
        except _Continue:
            pass
        return True

    def _stmt_While(self, stmt: ast.While) -> None:
        for count in itertools.count(1):
            self.line = self.guard.line = stmt.lineno
            self.guard.check_deadline()
            going = bool(self.eval(stmt.test))
            self.record(stmt, header=True)
            if not going:
                break
            self._count_iteration(count)
            if not self._iteration(stmt.body):
                return
        self.exec_block(stmt.orelse)

    def _count_iteration(self, count: int) -> None:
        if count > self.limits.max_loop_iterations:
            raise over_limit(
                f"a loop running more than {self.limits.max_loop_iterations} times",
                self.limits,
                "max_loop_iterations",
            )

    def _stmt_If(self, stmt: ast.If) -> None:
        going = bool(self.eval(stmt.test))
        self.record(stmt, header=True)
        self.exec_block(stmt.body if going else stmt.orelse)

    def _stmt_With(self, stmt: ast.With) -> None:
        with contextlib.ExitStack() as stack:
            for item in stmt.items:
                manager = self.eval(item.context_expr)
                if not isinstance(manager, tuple(CONTEXT_MANAGERS)):
                    raise TypeError(
                        f"{type_phrase(manager)} cannot be used in with here: with takes "
                        "torch.no_grad(), torch.enable_grad(), open(...) and SummaryWriter(...)"
                    )
                entered: Any = stack.enter_context(cast(Any, manager))
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, entered)
            self.record(stmt, header=True)
            self.exec_block(stmt.body)

    def _stmt_Pass(self, stmt: ast.Pass) -> None:
        self.record(stmt)

    def _stmt_Break(self, stmt: ast.Break) -> None:
        self.record(stmt)
        raise _Break

    def _stmt_Continue(self, stmt: ast.Continue) -> None:
        self.record(stmt)
        raise _Continue

    def _stmt_Delete(self, stmt: ast.Delete) -> None:
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                self.delete(target.id)
            elif isinstance(target, ast.Subscript):
                obj = self.eval(target.value)
                if not isinstance(obj, list | dict):
                    raise TypeError(
                        f"{type_phrase(obj)} does not support del x[...] (in this sandbox)"
                    )
                del obj[self.eval(target.slice)]
            else:
                raise SandboxRefused("only del name and del x[i] are supported")
        self.record(stmt)

    def _stmt_Assert(self, stmt: ast.Assert) -> None:
        if not self.eval(stmt.test):
            message = "" if stmt.msg is None else format_value(self.eval(stmt.msg))[0]
            raise AssertionError(message)
        self.record(stmt)

    def _stmt_Import(self, stmt: ast.Import) -> None:
        for alias in stmt.names:
            module = import_module(alias.name)
            self.imported = True
            if alias.asname:
                self.store(alias.asname, module)
            else:
                top = alias.name.split(".")[0]
                self.store(top, import_module(top))

    def _stmt_ImportFrom(self, stmt: ast.ImportFrom) -> None:
        if stmt.level or not stmt.module:
            raise ImportError("attempted relative import with no known parent package")
        module = import_module(stmt.module)
        self.imported = True
        for alias in stmt.names:
            if alias.name == "*":
                for name, value in module.members.items():
                    if not name.startswith("_"):
                        self.store(name, value)
            else:
                self.store(alias.asname or alias.name, member(module, alias.name, stmt.module))

    # -- assignment --------------------------------------------------------------------------------

    def assign(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            self.store(target.id, value)
        elif isinstance(target, ast.Tuple | ast.List):
            self._unpack(target.elts, value)
        elif isinstance(target, ast.Subscript):
            self.set_item(self.eval(target.value), self.eval(target.slice), value)
        elif isinstance(target, ast.Attribute):
            self.set_attr(self.eval(target.value), target.attr, value)
        else:
            raise SandboxRefused("this kind of assignment is not supported")

    def _unpack(self, targets: list[ast.expr], value: Any) -> None:
        starred = [i for i, t in enumerate(targets) if isinstance(t, ast.Starred)]
        wanted = len(targets)
        if starred:
            items = self.guard.bounded(value)
            before = starred[0]
            after = wanted - before - 1
            if len(items) < wanted - 1:
                raise ValueError(
                    f"not enough values to unpack (expected at least {wanted - 1}, "
                    f"got {len(items)})"
                )
            for element, item in zip(targets[:before], items[:before], strict=True):
                self.assign(element, item)
            star = targets[before]
            assert isinstance(star, ast.Starred)
            self.assign(star.value, items[before : len(items) - after])
            rest = items[len(items) - after :] if after else []
            for element, item in zip(targets[before + 1 :], rest, strict=True):
                self.assign(element, item)
            return
        items = list(itertools.islice(iter_checked(value), wanted + 1))
        if len(items) > wanted:
            raise ValueError(f"too many values to unpack (expected {wanted})")
        if len(items) < wanted:
            raise ValueError(f"not enough values to unpack (expected {wanted}, got {len(items)})")
        for element, item in zip(targets, items, strict=True):
            self.assign(element, item)

    def set_item(self, obj: Any, index: Any, value: Any) -> None:
        if not isinstance(obj, _ITEM_ASSIGNABLE):
            raise TypeError(
                f"{type_phrase(obj)} does not support item assignment (in this sandbox)"
            )
        guard = self.guard
        check_index(guard, obj, index)
        if isinstance(obj, list) and isinstance(index, slice):
            value = guard.bounded(value)  # slice assignment takes any iterable, in C
            guard.check_seq_len(len(obj) + len(value))
            guard.check_added(obj, value)
        elif isinstance(obj, list):
            guard.check_added(obj, [value])
        elif isinstance(obj, dict):
            guard.check_seq_len(len(obj) + 1)
            guard.check_added(obj, [index, value])
        obj[index] = value

    def subscript(self, obj: Any, index: Any) -> Any:
        if self.learner_class(obj) is not None:
            return self.guard.check_result(self.call_special(obj, "__getitem__", (index,)))
        if not isinstance(obj, _SUBSCRIPTABLE) and not isinstance(obj, tuple(SUBSCRIPTABLE_TYPES)):
            raise TypeError(f"{type_phrase(obj)} is not subscriptable (in this sandbox)")
        if isinstance(obj, torch.utils.data.Dataset) and not isinstance(index, int | slice):
            raise TypeError("a dataset is indexed with an int or a slice here")
        check_index(self.guard, obj, index)
        return self.guard.check_result(cast(Any, obj)[index])

    # -- names: Python's scopes --------------------------------------------------------------------

    def lookup(self, name: str) -> Any:
        frame = self.frame
        if frame is not self.module_frame:
            found, value = self._lookup_local(frame, name)
            if found:
                return value
        if name in self.env:
            return self.env[name]
        if name in BUILTINS:
            return BUILTINS[name]
        if name in NAMESPACES:
            return NAMESPACES[name]
        if name == "__name__":
            return "__main__"
        raise NameError(f"name '{name}' is not defined")

    def _lookup_local(self, frame: Frame, name: str) -> tuple[bool, Any]:
        """(found, value) of ``name`` in the frames around the module: locals, then the
        enclosing functions' (class bodies are not enclosing scopes for the functions in them)."""
        if frame.kind == "class":
            if name in frame.vars:
                return True, frame.vars[name]
            frame = frame.parent or self.module_frame
            if frame is self.module_frame:
                return False, None
            return self._lookup_free(frame, name)
        scope = frame.scope
        assert scope is not None
        if name in scope.globals:
            return False, None
        if name in scope.locals:
            if name in frame.vars:
                return True, frame.vars[name]
            if frame.kind == "comprehension":
                return False, None
            raise UnboundLocalError(
                f"cannot access local variable '{name}' where it is not associated with a value"
            )
        return self._lookup_free(frame.parent, name)

    def _lookup_free(self, frame: Frame | None, name: str) -> tuple[bool, Any]:
        while frame is not None and frame is not self.module_frame:
            if frame.kind == "class":
                frame = frame.parent
                continue
            scope = frame.scope
            assert scope is not None
            if name in scope.locals:
                if name in frame.vars:
                    return True, frame.vars[name]
                if frame.kind != "comprehension":
                    raise NameError(
                        f"cannot access free variable '{name}' where it is not associated with "
                        "a value in enclosing scope"
                    )
            elif name in scope.globals:
                return False, None
            frame = frame.parent
        return False, None

    def _owner(self, name: str) -> dict[str, Any]:
        """The variables ``name`` is stored in from the running frame."""
        frame = self.frame
        if frame is self.module_frame or frame.kind == "class":
            return frame.vars
        scope = frame.scope
        assert scope is not None
        if name in scope.globals:
            return self.env
        if name in scope.nonlocals:
            outer = frame.parent
            while outer is not None and outer is not self.module_frame:
                if outer.kind != "class" and outer.scope and name in outer.scope.locals:
                    return outer.vars
                outer = outer.parent
            raise SyntaxError(f"no binding for nonlocal '{name}' found")
        return frame.vars

    def store(self, name: str, value: Any) -> None:
        self._owner(name)[name] = value

    def delete(self, name: str) -> None:
        owner = self._owner(name)
        if name not in owner:
            raise NameError(f"name '{name}' is not defined")
        del owner[name]

    # -- expressions -------------------------------------------------------------------------------

    def eval(self, node: ast.expr) -> Any:
        return getattr(self, f"_eval_{type(node).__name__}")(node)

    def _eval_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _eval_Name(self, node: ast.Name) -> Any:
        return self.lookup(node.id)

    def _eval_Attribute(self, node: ast.Attribute) -> Any:
        return self.guard.check_result(self.get_attr(self.eval(node.value), node.attr))

    def _eval_Subscript(self, node: ast.Subscript) -> Any:
        return self.subscript(self.eval(node.value), self.eval(node.slice))

    def _eval_Slice(self, node: ast.Slice) -> slice:
        def part(expr: ast.expr | None) -> Any:
            return None if expr is None else self.eval(expr)

        return slice(part(node.lower), part(node.upper), part(node.step))

    def _elements(self, nodes: list[ast.expr]) -> list[Any]:
        items: list[Any] = []
        for node in nodes:
            if isinstance(node, ast.Starred):
                items.extend(self.guard.bounded(self.eval(node.value)))
                self.guard.check_seq_len(len(items))
            else:
                items.append(self.eval(node))
        return items

    def _eval_Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return self.guard.check_result(tuple(self._elements(node.elts)))

    def _eval_List(self, node: ast.List) -> list[Any]:
        return self.guard.check_result(self._elements(node.elts))

    def _eval_Set(self, node: ast.Set) -> set[Any]:
        return self.guard.check_result(set(self._elements(node.elts)))

    def _eval_Dict(self, node: ast.Dict) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                mapping = self.eval(value)
                if not isinstance(mapping, dict):
                    raise TypeError(f"'{type(mapping).__name__}' object is not a mapping")
                self.guard.check_seq_len(len(result) + len(mapping))
                result.update(mapping)
            else:
                result[self.eval(key)] = self.eval(value)
        return self.guard.check_result(result)

    def _eval_BinOp(self, node: ast.BinOp) -> Any:
        left = self.eval(node.left)
        right = self.eval(node.right)
        self.guard.check_deadline()
        return binary(self.guard, type(node.op).__name__, left, right)

    def _eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        op = node.op
        if isinstance(op, ast.Not):
            return not self.truth(value)
        if isinstance(op, ast.USub):
            return self.guard.check_result(-value)
        if isinstance(op, ast.UAdd):
            return self.guard.check_result(+value)
        return self.guard.check_result(~value)

    def truth(self, value: Any) -> bool:
        return bool(value)

    def _eval_BoolOp(self, node: ast.BoolOp) -> Any:
        is_and = isinstance(node.op, ast.And)
        value: Any = None
        for expr in node.values:
            value = self.eval(expr)
            if bool(value) != is_and:
                return value
        return value

    def _eval_Compare(self, node: ast.Compare) -> Any:
        left = self.eval(node.left)
        result: Any = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.eval(right_node)
            result = compare(self.guard, type(op).__name__, left, right)
            if len(node.ops) > 1 and not result:
                return result
            left = right
        return result

    def _eval_IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _eval_Call(self, node: ast.Call) -> Any:
        func = self.eval(node.func)
        args = self._elements(node.args)
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is not None:
                if kw.arg in kwargs:
                    raise SyntaxError(f"keyword argument repeated: {kw.arg}")
                kwargs[kw.arg] = self.eval(kw.value)
                continue
            mapping = self.eval(kw.value)
            if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
                raise TypeError("argument after ** must be a mapping with string keys")
            for key, value in mapping.items():
                if key in kwargs:
                    raise TypeError(f"got multiple values for keyword argument '{key}'")
                kwargs[key] = value
        self.guard.check_deadline()
        return self.guard.check_result(self.call(func, tuple(args), kwargs))

    def call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call any value the program may call (see ``Definitions.call_defined``)."""
        if isinstance(func, SafeFunction):
            special = SPECIAL_BY_ID.get(id(func))
            if special is not None:
                return special(self, args, kwargs)
            return func.impl(self.guard, args, kwargs)
        if isinstance(func, BoundMethod):
            return func.impl(self.guard, func.obj, args, kwargs)
        if type(func) in MODULE_CLASSES:
            return call_module(self.guard, func, args, kwargs)
        if is_np_scalar_type(func):
            return call_np_scalar(self.guard, func, args, kwargs)
        return self.call_defined(func, args, kwargs)

    def _eval_JoinedStr(self, node: ast.JoinedStr) -> str:
        parts: list[str] = []
        total = 0
        for value in node.values:
            text = str(value.value) if isinstance(value, ast.Constant) else self.eval(value)
            total += len(text)
            self.guard.check_str_len(total)
            parts.append(text)
        return "".join(parts)

    def _eval_FormattedValue(self, node: ast.FormattedValue) -> str:
        value = self.eval(node.value)
        budget = self.limits.max_string_chars + 1
        spec = "" if node.format_spec is None else self.eval(node.format_spec)
        if node.conversion in (ord("r"), ord("s"), ord("a")):
            value, _ = format_value(value, as_repr=node.conversion != ord("s"), budget=budget)
            if node.conversion == ord("a"):
                value = ascii(value)
        if not spec:
            text = value if isinstance(value, str) else format_value(value, budget=budget)[0]
        else:
            _check_format_spec(spec)
            if not isinstance(value, int | float | str | np.generic | torch.Tensor):
                raise TypeError(
                    f"unsupported format string passed to {type(value).__name__}.__format__"
                )
            text = format(value, spec)
        self.guard.check_str_len(len(text))
        return text

    # -- steps -------------------------------------------------------------------------------------

    def record(self, stmt: ast.stmt, header: bool = False) -> None:
        """Close one step: collect its output, check memory, snapshot the variables."""
        stdout = self.guard.take_stdout() + self._drain_warnings()
        self.stdout.append(stdout)
        if stdout:
            self.printed_at(self.calls[0][1] if self.calls else stmt.lineno, stdout)
        self._track_variables()
        self.steps_run += 1
        if self.stop_after is not None and self.steps_run >= self.stop_after:
            self.seen_at_stop = self.shown_variables()
            raise self.stop(StopAtStep(f"stopped after step {self.steps_run}", stmt.lineno))
        if not self.recording:
            self.unrecorded(stdout)
            return
        limits = self.limits
        recorded = len(self.recorder.steps)
        if recorded >= limits.max_steps_recorded:
            self._stop_recording(
                f"only the first {limits.max_steps_recorded} steps are recorded "
                "(max_steps_recorded); the program ran to the end",
                stdout,
            )
            return
        guard = self.guard
        if time.monotonic() - guard.started > RECORDING_SHARE * (guard.deadline - guard.started):
            # Recording costs as much as a heavy program's own work: past this share of its time
            # the program runs on unrecorded, so that it still ends within max_seconds.
            self._stop_recording(
                f"steps stopped being recorded after {recorded} steps, at half of the program's "
                f"time limit of {limits.max_seconds:g} s (max_seconds), so that it could run to "
                "the end",
                stdout,
            )
            return
        variables = self.shown_variables()
        try:
            source = self._source(stmt, header)
            stack = self.call_stack(stmt.lineno)
            fits = self.recorder.record(variables, stmt.lineno, source, stdout, stack)
        except RecordingBudgetExceeded:
            self._stop_recording(
                f"steps stopped being recorded after {recorded} steps because they held "
                f"more than {limits.max_recorded_numbers} values (max_recorded_numbers); the "
                "program ran to the end",
                stdout,
            )
            return
        self.guard.step = len(self.recorder.steps)
        if not fits:
            self._stop_recording(
                f"steps stopped being recorded after {recorded} steps because the answer "
                f"reached its budget of {limits.max_answer_bytes} bytes (max_answer_bytes); "
                "the program ran to the end",
                stdout,
            )

    def printed_at(self, line: int, text: str) -> None:
        """Keep ``text`` as printed by the top-level statement at ``line`` (a notebook puts it
        under the cell holding that line)."""
        printed = self.printed
        if printed and printed[-1][0] == line:
            printed[-1][1] += text
        else:
            printed.append([line, text])

    def shown_variables(self) -> dict[str, Any]:
        """``step_variables`` without the modules the program imported."""
        variables = self.step_variables()
        if self.imported:  # modules are not variables a step shows
            variables = {k: v for k, v in variables.items() if not isinstance(v, Namespace)}
        return variables

    def step_variables(self) -> dict[str, Any]:
        """What a step shows: the module's variables by name and, inside calls, each running
        call's variables as ``name@depth`` (depth 1 is the outermost call, as in ``stack``)."""
        if self.frame is self.module_frame:
            return self.env
        if not self.call_frames:  # a class body or a comprehension at the top level
            return {**self.env, **self.visible_locals()}
        variables = dict(self.env)
        last = len(self.call_frames)
        for depth, frame in enumerate(self.call_frames, 1):
            names = self.visible_locals() if depth == last else frame.vars
            for name, value in names.items():
                variables[f"{name}@{depth}"] = value
        return variables

    def visible_locals(self) -> dict[str, Any]:
        """The running call's variables (a class body's names, a comprehension's targets)."""
        frame: Frame | None = self.frame
        merged: dict[str, Any] = {}
        while frame is not None and frame is not self.module_frame:
            for name, value in frame.vars.items():
                merged.setdefault(name, value)
            if frame.kind == "function":
                break
            frame = frame.parent
        return merged

    def _stop_recording(self, notice: str, stdout: str) -> None:
        self.recording = False
        self.truncated = True
        self.notices.append(notice)
        self.unrecorded(stdout)

    def unrecorded(self, stdout: str) -> None:
        """Keep print output of a statement no step holds, while the answer has room for it."""
        if self.answers and not self.recorder.add_after(stdout) and not self._after_cut:
            self._after_cut = True
            self.notices.append(
                f"print output past the answer's budget of {self.limits.max_answer_bytes} bytes "
                "was dropped (max_answer_bytes)"
            )

    def _source(self, stmt: ast.stmt, header: bool) -> str:
        cached = self._sources.get(id(stmt))
        if cached is not None:
            return cached
        lines = self.program.lines
        if header or stmt.end_lineno is None:
            text = lines[stmt.lineno - 1].strip() if stmt.lineno <= len(lines) else ""
        else:
            chunk = lines[stmt.lineno - 1 : stmt.end_lineno]
            chunk[-1] = chunk[-1][: stmt.end_col_offset]
            chunk[0] = chunk[0][stmt.col_offset :]
            text = "\n".join(chunk)
        self._sources[id(stmt)] = text
        return text

    def _drain_warnings(self) -> str:
        if not self._warnings:
            return ""
        text = "".join(f"{w.category.__name__}: {w.message}\n" for w in self._warnings[:10])
        self._warnings.clear()
        self.guard.write(text)
        return self.guard.take_stdout()

    def _track_variables(self) -> None:
        """Re-check the memory the program holds after each statement, at a cost per variable.

        Tensors are counted by memory block where they are made (results, what autograd saves,
        .grad after backward, optimizer state after step: see ``Guard``), so wherever the program
        keeps them, dicts and long lists included; this only re-counts the tensor variables as a
        backstop, never walking lists, modules or optimizers on every statement, and only the
        variables bound to another array since the last statement.
        """
        count = self.guard.memory.add
        counted = self._counted
        for name, value in self.env.items():
            if isinstance(value, torch.Tensor | np.ndarray) and counted.get(name) != id(value):
                count(value)
                counted[name] = id(value)
        self.guard.check_memory()


def error_message(exc: BaseException) -> str:
    """``ValueError: message`` as Python's traceback ends (just the type when it has no text).

    ``str(exc)`` may run learner code (a KeyError's key's ``__repr__``): if that fails, the text
    is what Python's traceback prints then.
    """
    try:
        text = str(exc)
    except SandboxRefused:
        raise
    except BaseException:
        text = "<exception str() failed>"
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(message) > _MAX_ERROR_CHARS:
        message = message[:_MAX_ERROR_CHARS] + "..."
    return message


_DONE = object()


def _check_format_spec(spec: str) -> None:
    match = _FORMAT_SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"invalid format specifier '{spec[:40]}'")
    width = int(match.group("width") or 0)
    precision = int(match.group("precision") or 0)
    if width > _MAX_FORMAT_WIDTH or precision > _MAX_FORMAT_PRECISION:
        raise SandboxRefused(
            f"format widths over {_MAX_FORMAT_WIDTH} and precisions over "
            f"{_MAX_FORMAT_PRECISION} are not allowed"
        )


@contextlib.contextmanager
def session() -> Iterator[list[warnings.WarningMessage]]:
    """Isolate one run's global state: RNG (seeded), grad mode and warnings are restored after."""
    with _RUN_LOCK, torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        grad_enabled = torch.is_grad_enabled()
        recursion = sys.getrecursionlimit()
        # Each learner call nests ~20 interpreter frames; max_call_depth stops recursion first.
        sys.setrecursionlimit(max(recursion, _RECURSION_LIMIT))
        torch.manual_seed(SEED)
        try:
            yield w
        finally:
            torch.set_grad_enabled(grad_enabled)
            sys.setrecursionlimit(recursion)


def execute(
    code: str,
    limits: SandboxLimits,
    record: bool,
    caught: list[Any],
    steps: StepsFormat = "full",
    stop_after: int | None = None,
) -> Execution:
    """Check and run ``code``; refusals raise, runtime errors land in ``Execution.error``.

    Call inside ``session()`` and pass the warnings list it yields as ``caught``. With
    ``stop_after`` the run stops after that many steps and ``env`` is what that step showed
    (inside a call, each call's variables as ``name@depth``), as if the program ended there.
    """
    try:
        program = check_program(code, limits)
    except ProgramSyntaxError as exc:
        return Execution(error={"line": exc.line, "message": exc.message})
    interpreter = Interpreter(program, limits, record, steps, stop_after)
    error = None
    try:
        interpreter.run(caught)
    except StopAtStep:
        pass
    except ProgramError as exc:
        error = {"line": exc.line, "message": exc.message}
        if exc.traceback:
            error["traceback"] = exc.traceback  # the call lines down to the failing one
        hint = None if exc.exc is None else hint_for(exc.exc, exc.message)
        if hint:
            error["hint"] = hint  # plain words beside PyTorch's own message
        stdout = interpreter.guard.take_stdout()
        interpreter.stdout.append(stdout)
        interpreter.unrecorded(stdout)  # the failing statement's own output
        if stdout:
            interpreter.printed_at((exc.traceback or [exc.line])[0], stdout)
    guard = interpreter.guard
    outputs = collect_outputs(guard) if record else {}
    stdout = guard.take_stdout()  # what the libraries wrote while handing back
    if stdout:
        interpreter.stdout.append(stdout)
        interpreter.unrecorded(stdout)
    interpreter.notices.extend(guard.notices)
    if interpreter.guard.stdout_dropped:
        interpreter.notices.append(
            f"print output past {limits.max_stdout_chars} characters was dropped (max_stdout_chars)"
        )
    seen = interpreter.seen_at_stop
    return Execution(
        env=interpreter.env if seen is None else seen,
        recorder=interpreter.recorder,
        error=error,
        notices=interpreter.notices,
        truncated=interpreter.truncated,
        stdout="".join(interpreter.stdout),
        statements=interpreter.guard.statements,
        serializer=interpreter.serializer,
        outputs=outputs,
        printed=interpreter.printed,
    )


def run_answer(code: str, limits: SandboxLimits, steps: StepsFormat = "full") -> Answer:
    """Run a learner program in this process; its answer, fitted to ``max_answer_bytes``."""
    with session() as caught:
        result = execute(code, limits, record=True, caught=caught, steps=steps)
    recorder = result.recorder or Recorder(Serializer(limits), limits, steps)
    final = None
    if result.truncated and steps != "none" and result.serializer is not None:
        final = final_variables(result.env, result.serializer)
    return Answer(
        recorder,
        result.error,
        result.truncated,
        result.notices,
        result.statements,
        files=result.outputs.get("files", []),
        figures=result.outputs.get("figures", []),
        final=final,
    )


def final_variables(env: dict[str, Any], serializer: Serializer) -> dict[str, Any] | None:
    """The module's variables as a program left them, for an answer whose recording stopped
    early; None past ``max_recorded_numbers`` (each variable is counted again, once)."""
    serializer.numbers = 0  # the budget is for one more snapshot, not the steps already kept
    try:
        return {
            name: serializer.variable(value)
            for name, value in env.items()
            if not isinstance(value, Namespace)
        }
    except RecordingBudgetExceeded:
        return None


def run_program(
    code: str, limits: SandboxLimits | None = None, steps: StepsFormat = "full"
) -> dict[str, Any]:
    """Run a learner program in this process and return its steps.

    Returns ``{"steps": [Step], "error": None | {"line", "message"}, "truncated": bool,
    "notices": [str], "steps_format": steps, "stdout_after": str, "statements": int}``: with
    ``steps="full"`` each Step holds every variable after it, with ``"changes"`` only the
    variables that changed (``changes``) and those deleted (``removed``). The answer fits in
    ``limits.max_answer_bytes`` bytes of JSON. Raises SandboxRefused (or SandboxLimitExceeded)
    for programs the sandbox will not run or stopped. Blocks other in-process runs while it runs;
    for untrusted input from a server prefer ``run_program_isolated``.
    """
    return run_answer(code, limits or SandboxLimits(), steps).as_dict()
