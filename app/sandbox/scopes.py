"""Python's scoping rules for learner functions, lambdas, classes and comprehensions.

A name assigned anywhere in a function body is local to it (unless declared ``global`` or
``nonlocal``); other names are free: found in the enclosing functions' frames (closures, late
binding as in Python), then the program's globals, then the builtins. Class bodies have a
namespace of their own that the functions defined in them do not see. ``analyse`` computes a
function's local names once, from its ``ast`` node, without descending into nested scopes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Literal

FrameKind = Literal["module", "function", "class", "comprehension"]

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass(frozen=True)
class Scope:
    """What a function body binds: its local names and those it declares global/nonlocal."""

    locals: frozenset[str]
    globals: frozenset[str] = frozenset()
    nonlocals: frozenset[str] = frozenset()


@dataclass(eq=False)
class Frame:
    """One running scope: the module, a function call, a class body or a comprehension."""

    kind: FrameKind
    vars: dict[str, Any]
    scope: Scope | None = None
    parent: Frame | None = None  # the frame the function was defined in (closures), or None
    function: Any = None  # the LearnerFunction being run (for super() and messages)
    extra: dict[str, Any] = field(default_factory=dict)


def argument_names(args: ast.arguments) -> list[str]:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg is not None:
        names.append(args.vararg.arg)
    names.extend(a.arg for a in args.kwonlyargs)
    if args.kwarg is not None:
        names.append(args.kwarg.arg)
    return names


def analyse(node: ast.FunctionDef | ast.Lambda) -> Scope:
    """The locals of a function: its parameters and every name its own body binds."""
    declared_global: set[str] = set()
    declared_nonlocal: set[str] = set()
    bound = set(argument_names(node.args))
    body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    stack = list(body)
    while stack:
        child = stack.pop()
        if isinstance(child, ast.Global):
            declared_global.update(child.names)
        elif isinstance(child, ast.Nonlocal):
            declared_nonlocal.update(child.names)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store | ast.Del):
            bound.add(child.id)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            bound.add(child.name)
        elif isinstance(child, ast.Import | ast.ImportFrom):
            for alias in child.names:
                bound.add(alias.asname or alias.name.split(".")[0])
        if isinstance(child, _NESTED):
            if not isinstance(child, ast.Lambda):
                bound.add(child.name)
                stack.extend(child.decorator_list)
            if isinstance(child, ast.ClassDef):
                stack.extend(child.bases)
            else:
                stack.extend(child.args.defaults)
                stack.extend(d for d in child.args.kw_defaults if d is not None)
            continue  # a nested scope: its own names are its own
        if isinstance(child, _COMPREHENSIONS):
            stack.append(child.generators[0].iter)  # evaluated in this scope; the rest is not
            continue
        stack.extend(ast.iter_child_nodes(child))
    return Scope(
        locals=frozenset(bound - declared_global - declared_nonlocal),
        globals=frozenset(declared_global),
        nonlocals=frozenset(declared_nonlocal),
    )


def comprehension_scope(generators: list[ast.comprehension]) -> Scope:
    """A comprehension's own names: its loop targets (Python runs it as a nested function)."""
    names = {
        node.id for gen in generators for node in ast.walk(gen.target) if isinstance(node, ast.Name)
    }
    return Scope(locals=frozenset(names))
