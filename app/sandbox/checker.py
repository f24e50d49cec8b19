"""Static checks on the whole program, done before any of it runs.

The learner's text is only ever given to ``ast.parse``; everything refused here (imports other
than the pre-bound modules, definitions, dunder names, attributes no whitelisted type has,
deep nesting) is refused before a single statement runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from app.sandbox.library import BUILTINS, FORBIDDEN_NAMES, NAMESPACES, all_attributes
from app.sandbox.limits import SandboxLimits, SandboxRefused, over_limit
from app.sandbox.modules import SYSTEM_MODULES  # (importing it registers every library)
from app.sandbox.objects import SPECIAL_METHODS


class ProgramSyntaxError(Exception):
    """The text is not valid Python: reported like a runtime error, not a refusal."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass(frozen=True)
class CheckedProgram:
    body: list[ast.stmt]
    lines: list[str]
    source: str


_STATEMENTS: tuple[type, ...] = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.For,
    ast.While,
    ast.If,
    ast.With,
    ast.Pass,
    ast.Break,
    ast.Continue,
    ast.Delete,
    ast.Assert,
    ast.FunctionDef,
    ast.ClassDef,
    ast.Return,
    ast.Global,
    ast.Nonlocal,
    ast.Try,
    ast.Raise,
    ast.Import,
    ast.ImportFrom,
)
_EXPRESSIONS: tuple[type, ...] = (
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.IfExp,
    ast.Dict,
    ast.Set,
    ast.Compare,
    ast.Call,
    ast.FormattedValue,
    ast.JoinedStr,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Starred,
    ast.Name,
    ast.List,
    ast.Tuple,
    ast.Slice,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)
_HELPERS: tuple[type, ...] = (
    ast.Module,
    ast.expr_context,
    ast.operator,
    ast.cmpop,
    ast.boolop,
    ast.unaryop,
    ast.keyword,
    ast.withitem,
    ast.arguments,
    ast.arg,
    ast.comprehension,
    ast.ExceptHandler,
    ast.alias,
)
_REFUSED: dict[type, str] = {
    ast.AsyncFunctionDef: "defining functions with async def is not supported",
    ast.Yield: "yield (generator functions) is not supported: return a list, or write a class "
    "with __iter__ and __next__",
    ast.YieldFrom: "yield from is not supported",
    ast.Await: "await is not allowed",
    ast.AsyncFor: "async for is not allowed",
    ast.AsyncWith: "async with is not allowed",
    ast.TryStar: "except* is not supported",
    ast.NamedExpr: "the walrus operator := is not supported",
    ast.Match: "match statements are not supported",
}
# The one dunder name a program may read: ``if __name__ == "__main__":``.
_DUNDER_NAMES = frozenset({"__name__"})
# Decorators: @staticmethod, @classmethod, @property, @<property>.setter, @torch.no_grad().
_DECORATOR_NAMES = frozenset({"staticmethod", "classmethod", "property"})


def check_program(code: str, limits: SandboxLimits) -> CheckedProgram:
    """Parse and check the whole program; raises SandboxRefused or ProgramSyntaxError."""
    if len(code) > limits.max_code_chars:
        raise over_limit(f"a program of {len(code)} characters", limits, "max_code_chars")
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        if "too many nested" in str(exc.msg):
            raise over_limit(
                "code nested too deeply to parse", limits, "max_nesting_depth"
            ).with_line(exc.lineno) from None
        raise ProgramSyntaxError(exc.lineno or 1, f"SyntaxError: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise over_limit("code nested too deeply to parse", limits, "max_nesting_depth") from None
    except ValueError as exc:  # e.g. NUL bytes
        raise ProgramSyntaxError(1, f"SyntaxError: {exc}") from None
    _check_depth(tree, limits)
    assigned = _assigned_names(tree)
    for name in _plain_assigned(tree) & set(NAMESPACES):
        line = next(
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load)
        )
        raise SandboxRefused(f"'{name}' names a module here and cannot be assigned to", line)
    _check_nodes(tree, assigned, limits)
    _check_flow(tree.body, in_loop=False, in_function=False)
    return CheckedProgram(body=tree.body, lines=code.splitlines(), source=code)


def _check_depth(tree: ast.AST, limits: SandboxLimits) -> None:
    """Refuse deep nesting without recursion (walking it recursively could overflow)."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        counted = isinstance(node, ast.expr | ast.stmt)
        depth += counted
        if depth > limits.max_nesting_depth:
            line = getattr(node, "lineno", None)
            raise over_limit(
                f"code nested more than {limits.max_nesting_depth} levels deep",
                limits,
                "max_nesting_depth",
            ).with_line(line)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))


def _plain_assigned(tree: ast.AST) -> set[str]:
    """Names the program assigns with ``=`` (an import may rebind ``np`` to numpy itself)."""
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del)
    }


def _assigned_names(tree: ast.AST) -> set[str]:
    """Every name the program binds: assignments, def/class, parameters, imports, except-as."""
    names = _plain_assigned(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
    return names


def _defined_attributes(tree: ast.AST) -> set[str]:
    """Attribute names the program itself defines: ``self.x = ...``, methods, class attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef):
                    names.add(stmt.name)
                for target in _targets(stmt):
                    names.add(target)
    return names | {"setter", "args"}


def _targets(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    if isinstance(stmt, ast.AnnAssign | ast.AugAssign) and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    return []


def _dotted(node: ast.expr, depth: int = 0) -> str:
    """``t.numpy().tofile`` for messages; anything else in the chain shows as ``(...)``."""
    if depth > 8:
        return "..."
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value, depth + 1)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func, depth + 1)}()"
    if isinstance(node, ast.Subscript):
        return f"{_dotted(node.value, depth + 1)}[...]"
    return "(...)"


def _check_nodes(tree: ast.Module, assigned: set[str], limits: SandboxLimits) -> None:
    known = assigned | set(BUILTINS) | set(NAMESPACES) | _DUNDER_NAMES
    attributes = all_attributes() | _defined_attributes(tree)
    init_calls = {
        id(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "__init__"
        and isinstance(node.func.value, ast.Call | ast.Name | ast.Attribute)
    }
    methods = {
        id(stmt)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for stmt in node.body
        if isinstance(stmt, ast.FunctionDef)
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        kind = type(node)
        if kind in _REFUSED:
            raise SandboxRefused(_REFUSED[kind], line)
        if not isinstance(node, _STATEMENTS + _EXPRESSIONS + _HELPERS):
            raise SandboxRefused(f"{kind.__name__} is not supported in this sandbox", line)
        if isinstance(node, ast.Import | ast.ImportFrom):
            _check_import(node)
        if isinstance(node, ast.Name):
            _check_name(node, known)
        elif isinstance(node, ast.Attribute):
            if id(node) in init_calls:
                continue
            if "__" in node.attr or node.attr.startswith("_"):
                raise SandboxRefused(
                    f"private and double-underscore attributes like .{node.attr} are not allowed",
                    line,
                )
            if node.attr not in attributes:
                raise SandboxRefused(
                    f"{_dotted(node)} is not allowed: .{node.attr} is not in this sandbox's "
                    "list of attributes",
                    line,
                )
        elif isinstance(node, ast.keyword):
            if node.arg is not None and "__" in node.arg:
                raise SandboxRefused(f"keyword {node.arg} is not allowed", line)
        elif isinstance(node, ast.FunctionDef):
            _check_function(node, id(node) in methods)
        elif isinstance(node, ast.ClassDef):
            _check_class(node)
        elif isinstance(node, ast.arg | ast.alias):
            name = node.arg if isinstance(node, ast.arg) else (node.asname or node.name)
            if "__" in name:
                raise SandboxRefused(f"double-underscore names like {name} are not allowed", line)
        elif isinstance(node, ast.Constant):
            _check_constant(node, limits)


def _check_import(node: ast.Import | ast.ImportFrom) -> None:
    """Modules that reach the OS, the network or the interpreter are refused before anything
    runs (the HTTP contract: file/network/OS access is a 422); any other module the sandbox does
    not offer is Python's ImportError when its line runs."""
    paths = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    for path in paths:
        if path.split(".")[0] in SYSTEM_MODULES:
            raise SandboxRefused(
                f"import {path} is not allowed: this sandbox has no file, network, OS or "
                "interpreter access",
                node.lineno,
            )


def _check_function(node: ast.FunctionDef, in_class: bool) -> None:
    line = node.lineno
    dunder = node.name.startswith("__") or node.name.endswith("__")
    if dunder and (not in_class or node.name not in SPECIAL_METHODS):
        allowed = ", ".join(sorted(SPECIAL_METHODS))
        raise SandboxRefused(
            f"defining {node.name} is not supported: a class here may define {allowed}",
            line,
        )
    for decorator in node.decorator_list:
        if not _allowed_decorator(decorator):
            raise SandboxRefused(
                "decorators other than @staticmethod, @classmethod, @property, @<name>.setter "
                "and @torch.no_grad() are not supported",
                decorator.lineno,
            )


def _allowed_decorator(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _DECORATOR_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr == "setter" and isinstance(node.value, ast.Name)
    if isinstance(node, ast.Call):
        func = node.func
        return (
            not node.args
            and not node.keywords
            and isinstance(func, ast.Attribute)
            and func.attr == "no_grad"
            and isinstance(func.value, ast.Name)
        )
    return False


def _check_class(node: ast.ClassDef) -> None:
    if node.keywords:
        raise SandboxRefused("class keywords such as metaclass=... are not supported", node.lineno)
    if node.decorator_list:
        raise SandboxRefused("class decorators are not supported", node.lineno)


def _check_name(node: ast.Name, known: set[str]) -> None:
    name = node.id
    line = node.lineno
    if name in _DUNDER_NAMES and isinstance(node.ctx, ast.Load):
        return
    if "__" in name:
        raise SandboxRefused(f"double-underscore names like {name} are not allowed", line)
    if not isinstance(node.ctx, ast.Load):
        return
    if name in FORBIDDEN_NAMES and name not in known - set(BUILTINS) - set(NAMESPACES):
        raise SandboxRefused(
            f"{name} is not available in this sandbox (no file, network, OS or interpreter access)",
            line,
        )
    # Any other name the program never binds is Python's own NameError when its line runs.


def _check_constant(node: ast.Constant, limits: SandboxLimits) -> None:
    value = node.value
    if isinstance(value, bytes):
        raise SandboxRefused("bytes literals are not supported", node.lineno)
    if isinstance(value, complex):
        raise SandboxRefused("complex numbers are not supported", node.lineno)
    if isinstance(value, int) and value.bit_length() > limits.max_int_bits:
        raise over_limit(
            f"an integer literal of {value.bit_length()} bits", limits, "max_int_bits"
        ).with_line(node.lineno)


def _check_flow(body: list[ast.stmt], in_loop: bool, in_function: bool) -> None:
    """What the compiler rejects and ``ast.parse`` does not: ``break``/``continue`` outside a
    loop, ``return`` outside a function."""
    for stmt in body:
        if isinstance(stmt, ast.Break | ast.Continue) and not in_loop:
            word = "break" if isinstance(stmt, ast.Break) else "continue"
            raise ProgramSyntaxError(stmt.lineno, f"SyntaxError: '{word}' outside loop")
        if isinstance(stmt, ast.Return) and not in_function:
            raise ProgramSyntaxError(stmt.lineno, "SyntaxError: 'return' outside function")
        if isinstance(stmt, ast.FunctionDef):
            _check_flow(stmt.body, False, True)
        elif isinstance(stmt, ast.ClassDef):
            _check_flow(stmt.body, False, False)
        elif isinstance(stmt, ast.For | ast.While):
            _check_flow(stmt.body, True, in_function)
            _check_flow(stmt.orelse, in_loop, in_function)
        elif isinstance(stmt, ast.If | ast.With):
            _check_flow(stmt.body, in_loop, in_function)
            _check_flow(getattr(stmt, "orelse", []), in_loop, in_function)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, stmt.orelse, stmt.finalbody):
                _check_flow(block, in_loop, in_function)
            for handler in stmt.handlers:
                _check_flow(handler.body, in_loop, in_function)
