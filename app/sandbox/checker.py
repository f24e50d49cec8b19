"""Static checks on the whole program, done before any of it runs.

The learner's text is only ever given to ``ast.parse``; everything refused here (imports other
than the pre-bound modules, definitions, dunder names, attributes no whitelisted type has,
unknown names, deep nesting) is refused before a single statement runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from app.sandbox.library import ALL_ATTRIBUTES, BUILTINS, FORBIDDEN_NAMES, NAMESPACES
from app.sandbox.limits import SandboxLimits, SandboxRefused, over_limit


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


# (module, name it binds) pairs a top-level import may name: all are bound already.
ALLOWED_IMPORTS = frozenset(
    {
        ("torch", "torch"),
        ("numpy", "np"),
        ("numpy", "numpy"),
        ("torch.nn", "nn"),
        ("torch.nn", "torch"),
        ("torch.nn.functional", "F"),
        ("torch.nn.functional", "torch"),
        ("torch.optim", "optim"),
        ("torch.optim", "torch"),
    }
)
IMPORT_HINT = (
    "torch, numpy as np, torch.nn as nn, torch.nn.functional as F and torch.optim as optim "
    "are already imported"
)

_STATEMENTS: tuple[type, ...] = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.For,
    ast.While,
    ast.If,
    ast.With,
    ast.Pass,
    ast.Break,
    ast.Continue,
    ast.Delete,
    ast.Assert,
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
)
_REFUSED: dict[type, str] = {
    ast.FunctionDef: "defining functions (def) is not allowed",
    ast.AsyncFunctionDef: "defining functions (async def) is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ClassDef: "defining classes is not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Await: "await is not allowed",
    ast.AsyncFor: "async for is not allowed",
    ast.AsyncWith: "async with is not allowed",
    ast.Try: "try/except is not supported",
    ast.Raise: "raise is not supported",
    ast.Return: "return is not allowed outside a function",
    ast.NamedExpr: "the walrus operator := is not supported",
    ast.ListComp: "list comprehensions are not supported: use a for loop",
    ast.SetComp: "set comprehensions are not supported: use a for loop",
    ast.DictComp: "dict comprehensions are not supported: use a for loop",
    ast.GeneratorExp: "generator expressions are not supported: use a for loop",
    ast.Match: "match statements are not supported",
    ast.AnnAssign: "type annotations are not supported",
    ast.Import: f"import is not allowed: {IMPORT_HINT}",
    ast.ImportFrom: f"import is not allowed: {IMPORT_HINT}",
}


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
    body = _strip_imports(tree.body)
    assigned = _assigned_names(tree)
    for name in assigned & set(NAMESPACES):
        raise SandboxRefused(f"'{name}' names a module here and cannot be assigned to")
    _check_nodes(tree, assigned, limits)
    _check_loops(body, in_loop=False)
    return CheckedProgram(body=body, lines=code.splitlines(), source=code)


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


def _strip_imports(body: list[ast.stmt]) -> list[ast.stmt]:
    """Accept ``import torch`` & co. at the top level as no-ops; any other import is refused."""
    kept = []
    for stmt in body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                bound = alias.asname or alias.name.split(".")[0]
                if (alias.name, bound) not in ALLOWED_IMPORTS:
                    raise SandboxRefused(
                        f"import {alias.name} is not allowed: {IMPORT_HINT}", stmt.lineno
                    )
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                module = f"{stmt.module}.{alias.name}"
                bound = alias.asname or alias.name
                if stmt.level or (module, bound) not in ALLOWED_IMPORTS:
                    raise SandboxRefused(
                        f"from {stmt.module or '.'} import {alias.name} is not allowed: "
                        f"{IMPORT_HINT}",
                        stmt.lineno,
                    )
        else:
            kept.append(stmt)
    return kept


def _late_import_message(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.Import):
        what = "import " + ", ".join(alias.name for alias in node.names)
    else:
        what = f"from {node.module or '.'} import " + ", ".join(a.name for a in node.names)
    return f"{what} is not allowed inside a block: {IMPORT_HINT}"


def _assigned_names(tree: ast.AST) -> set[str]:
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del)
    }


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
    known = assigned | set(BUILTINS) | set(NAMESPACES)
    top_level_imports = {
        id(stmt) for stmt in tree.body if isinstance(stmt, ast.Import | ast.ImportFrom)
    }
    starred_ok = {
        id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call) for arg in node.args
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if id(node) in top_level_imports:
            continue
        kind = type(node)
        if isinstance(node, ast.Import | ast.ImportFrom):
            raise SandboxRefused(_late_import_message(node), line)
        if kind in _REFUSED:
            raise SandboxRefused(_REFUSED[kind], line)
        if isinstance(node, ast.alias):
            continue
        if not isinstance(node, _STATEMENTS + _EXPRESSIONS + _HELPERS):
            raise SandboxRefused(f"{kind.__name__} is not supported in this sandbox", line)
        if isinstance(node, ast.Name):
            _check_name(node, known)
        elif isinstance(node, ast.Attribute):
            if "__" in node.attr or node.attr.startswith("_"):
                raise SandboxRefused(
                    f"private and double-underscore attributes like .{node.attr} are not allowed",
                    line,
                )
            if node.attr not in ALL_ATTRIBUTES:
                raise SandboxRefused(
                    f"{_dotted(node)} is not allowed: .{node.attr} is not in this sandbox's "
                    "list of attributes",
                    line,
                )
        elif isinstance(node, ast.keyword):
            if node.arg is None:
                raise SandboxRefused("**kwargs is not supported", line)
            if "__" in node.arg:
                raise SandboxRefused(f"keyword {node.arg} is not allowed", line)
        elif isinstance(node, ast.Starred) and id(node) not in starred_ok:
            raise SandboxRefused("*unpacking is only supported in call arguments", line)
        elif isinstance(node, ast.Dict) and any(k is None for k in node.keys):
            raise SandboxRefused("**unpacking in dict literals is not supported", line)
        elif isinstance(node, ast.Constant):
            _check_constant(node, limits)


def _check_name(node: ast.Name, known: set[str]) -> None:
    name = node.id
    line = node.lineno
    if "__" in name:
        raise SandboxRefused(f"double-underscore names like {name} are not allowed", line)
    if not isinstance(node.ctx, ast.Load):
        return
    if name in FORBIDDEN_NAMES and name not in known - set(BUILTINS) - set(NAMESPACES):
        raise SandboxRefused(
            f"{name} is not available in this sandbox (no file, network, OS or interpreter access)",
            line,
        )
    if name not in known:
        raise SandboxRefused(f"unknown name '{name}'", line)


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


def _check_loops(body: list[ast.stmt], in_loop: bool) -> None:
    """``break``/``continue`` outside a loop: the compiler rejects them, ast.parse does not."""
    for stmt in body:
        if isinstance(stmt, ast.Break | ast.Continue) and not in_loop:
            word = "break" if isinstance(stmt, ast.Break) else "continue"
            raise ProgramSyntaxError(stmt.lineno, f"SyntaxError: '{word}' outside loop")
        if isinstance(stmt, ast.For | ast.While):
            _check_loops(stmt.body, True)
            _check_loops(stmt.orelse, in_loop)
        elif isinstance(stmt, ast.If | ast.With):
            _check_loops(stmt.body, in_loop)
            _check_loops(getattr(stmt, "orelse", []), in_loop)
