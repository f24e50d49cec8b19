"""What a program defines and how its definitions run: functions, classes, ``try``, comprehensions.

``Definitions`` is the part of the interpreter for the code learners organise their programs
with: ``def`` and ``lambda`` (Python's argument binding and error messages, closures through
``scopes``, recursion bounded by ``max_call_depth``), ``class`` (``objects.LearnerClass`` on a
real library base, ``super()``, ``@staticmethod``/``@classmethod``/``@property``/
``@torch.no_grad()``), ``try``/``except``/``else``/``finally`` and ``raise`` with the built-in
exception types, and every comprehension. Each function, class and object is counted before it is
made; a limit, once hit, stops the program whatever handler or library tries to swallow it.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from app.sandbox.guards import Guard, check_iterable, iter_checked, register_iterable
from app.sandbox.library import (
    BUILTINS,
    CALLABLE_TYPES,
    EXCEPTION_TYPES,
    LEARNER_MODULE_METHODS,
    NAMESPACES,
    BaseClass,
    BoundMethod,
    Namespace,
    SafeFunction,
    get_attribute,
    set_attribute,
    type_phrase,
)
from app.sandbox.limits import SandboxLimits, SandboxRefused, over_limit
from app.sandbox.objects import (
    BaseInit,
    ClassMethod,
    LearnerClass,
    LearnerFunction,
    LearnerMethod,
    Property,
    PropertySetter,
    StaticMethod,
    SuperProxy,
    TypeView,
    learner_class_of,
)
from app.sandbox.scopes import Frame, Scope, analyse, comprehension_scope

if TYPE_CHECKING:
    from app.sandbox.checker import CheckedProgram

# A generator expression is a Python generator made by the interpreter (its items are computed
# by learner expressions under the interpreter's checks): programs may loop over it.
register_iterable(types.GeneratorType)

# The library bases a learner class may have.
_SUBCLASSABLE = (object, nn.Module, torch.utils.data.Dataset)
_DONE = object()


class ProgramError(Exception):
    """A runtime error inside an allowed program, reported in the result (not a refusal).

    ``exc`` is the learner-visible exception (what ``except`` matches and binds); ``calls`` the
    lines of the calls it passed through, outermost first.
    """

    def __init__(self, line: int, message: str, exc: BaseException | None = None) -> None:
        self.line = line
        self.message = message
        self.exc = exc
        self.calls: list[int] = []
        super().__init__(f"line {line}: {message}")

    @property
    def traceback(self) -> list[int]:
        """The lines from the outermost call to the one that failed (empty at the top level)."""
        return [*self.calls, self.line] if self.calls else []


class Return(BaseException):
    """``return`` leaving a learner function (never seen by library code)."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Definitions:
    """The interpreter's functions, classes, exceptions and comprehensions (a mixin of
    ``Interpreter``, which provides the attributes declared here)."""

    guard: Guard
    limits: SandboxLimits
    program: CheckedProgram
    frame: Frame
    module_frame: Frame
    env: dict[str, Any]
    line: int

    eval: Callable[[ast.expr], Any]
    exec_block: Callable[[list[ast.stmt]], None]
    assign: Callable[[ast.expr, Any], None]
    store: Callable[[str, Any], None]
    _owner: Callable[[str], dict[str, Any]]
    record: Callable[..., None]
    truth: Callable[[Any], bool]
    call: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]
    program_error: Callable[[BaseException, int], ProgramError]
    _count_iteration: Callable[[int], None]

    def __init__(self) -> None:
        self.stopped: SandboxRefused | None = None
        self.depth = 0
        self.made = {"functions": 0, "classes": 0, "objects": 0}
        self.handling: list[BaseException] = []  # exceptions being handled, for a bare raise
        # The calls running, outermost first: (function, the line that called it), and each
        # call's own frame (what a step shows as that call's variables).
        self.calls: list[tuple[LearnerFunction, int]] = []
        self.call_frames: list[Frame] = []
        self._scopes: dict[int, Scope] = {}

    # -- counting ----------------------------------------------------------------------------------

    def count(self, what: str) -> None:
        self.made[what] += 1
        limit = f"max_{what}"
        if self.made[what] > getattr(self.limits, limit):
            raise over_limit(f"making more than {getattr(self.limits, limit)} {what}",
                             self.limits, limit)  # fmt: skip

    # -- def, lambda, return -----------------------------------------------------------------------

    def _closure(self) -> Frame | None:
        """The frame a function defined here closes over (class bodies are skipped)."""
        frame: Frame | None = self.frame
        while frame is not None and frame.kind == "class":
            frame = frame.parent
        return None if frame is self.module_frame else frame

    def _qualname(self, name: str) -> str:
        frame = self.frame
        if frame.kind == "class":
            return f"{frame.extra['class'].name}.{name}"
        if frame.kind == "function" and frame.function is not None:
            return f"{frame.function.qualname}.<locals>.{name}"
        return name

    def _function(self, node: ast.FunctionDef | ast.Lambda, name: str) -> LearnerFunction:
        self.count("functions")
        defaults = [self.eval(d) for d in node.args.defaults]
        kwdefaults = {
            arg.arg: self.eval(d)
            for arg, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
            if d is not None
        }
        scope = self._scopes.get(id(node))
        if scope is None:
            scope = self._scopes[id(node)] = analyse(node)
        return LearnerFunction(
            name, self._qualname(name), node, scope, defaults, kwdefaults, self._closure()
        )

    def _stmt_FunctionDef(self, stmt: ast.FunctionDef) -> None:
        value: Any = self._function(stmt, stmt.name)
        for decorator in reversed(stmt.decorator_list):
            value = self._decorate(self.eval(decorator), value)
        self.store(stmt.name, value)
        self.record(stmt, header=True)

    def _decorate(self, decorator: Any, value: Any) -> Any:
        function = value if isinstance(value, LearnerFunction) else None
        if decorator is BUILTINS["staticmethod"] and function is not None:
            return StaticMethod(function)
        if decorator is BUILTINS["classmethod"] and function is not None:
            return ClassMethod(function)
        if decorator is BUILTINS["property"] and function is not None:
            return Property(function)
        if isinstance(decorator, PropertySetter) and function is not None:
            return Property(decorator.prop.getter, function)
        if isinstance(decorator, torch.no_grad) and function is not None:
            function.no_grad = True
            return function
        raise SandboxRefused(
            "decorators other than @staticmethod, @classmethod, @property, @<name>.setter and "
            "@torch.no_grad() are not supported"
        )

    def _eval_Lambda(self, node: ast.Lambda) -> LearnerFunction:
        return self._function(node, "<lambda>")

    def _stmt_Return(self, stmt: ast.Return) -> None:
        value = None if stmt.value is None else self.eval(stmt.value)
        self.record(stmt)
        raise Return(value)

    def _stmt_Global(self, stmt: ast.Global) -> None:
        self.record(stmt)

    def _stmt_Nonlocal(self, stmt: ast.Nonlocal) -> None:
        self.record(stmt)

    # -- calls -------------------------------------------------------------------------------------

    def call_defined(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a value the program defined (a function, method, class or object), a library
        base's ``__init__``, or a callable library object."""
        if isinstance(func, LearnerFunction):
            return self.call_function(func, args, kwargs)
        if isinstance(func, LearnerMethod):
            return self.call_function(func.function, (func.receiver, *args), kwargs)
        if isinstance(func, LearnerClass):
            return self.instantiate(func, args, kwargs)
        if isinstance(func, StaticMethod):
            return self.call_function(func.function, args, kwargs)
        if isinstance(func, BaseInit):
            return self._base_init(func, args, kwargs)
        learner = learner_class_of(func)
        if learner is not None:
            if learner.is_module:
                return func(*args, **kwargs)  # nn.Module.__call__: hooks, then our forward
            found, method = learner.find("__call__")
            if found and isinstance(method, LearnerFunction):
                return self.call_function(method, (func, *args), kwargs)
            raise TypeError(f"'{learner.name}' object is not callable")
        for kind, impl in CALLABLE_TYPES:
            if isinstance(func, kind):
                return impl(self.guard, func, args, kwargs)
        raise TypeError(f"{type_phrase(func)} is not callable")

    def call_function(
        self, function: LearnerFunction, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        limits = self.limits
        if self.depth >= limits.max_call_depth:
            raise self._stop(
                over_limit(
                    f"calls nested more than {limits.max_call_depth} deep (recursion)",
                    limits,
                    "max_call_depth",
                )
            )
        self.guard.check_deadline()
        frame = Frame("function", bind(function, args, kwargs), function.scope,
                      function.closure, function)  # fmt: skip
        saved, call_line = self.frame, self.line
        self.frame = frame
        self.depth += 1
        self.calls.append((function, call_line))
        self.call_frames.append(frame)
        try:
            grad = torch.no_grad() if function.no_grad else contextlib.nullcontext()
            with grad:
                node = function.node
                if isinstance(node, ast.Lambda):
                    try:
                        return self.eval(node.body)
                    except (ProgramError, SandboxRefused, Return, KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as exc:
                        raise self.program_error(exc, node.lineno) from None
                try:
                    self.exec_block(node.body)
                except Return as returned:
                    return returned.value
                return None
        except ProgramError as error:
            error.calls.insert(0, call_line)
            raise
        finally:
            self.frame = saved
            self.line = self.guard.line = call_line
            self.depth -= 1
            self.calls.pop()
            self.call_frames.pop()

    def call_stack(self, line: int) -> list[dict[str, Any]]:
        """The frames running at ``line``, from the module down, each with the line it is at
        (a caller's is the line of its call): what a step shows as its ``stack``."""
        calls = self.calls
        if not calls:
            return []
        stack = [{"function": "<module>", "line": calls[0][1]}]
        for i, (function, _) in enumerate(calls):
            at = calls[i + 1][1] if i + 1 < len(calls) else line
            stack.append({"function": function.qualname, "line": at})
        return stack

    def _stop(self, exc: SandboxRefused) -> SandboxRefused:
        self.stopped = exc
        return exc

    def instantiate(self, cls: LearnerClass, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.count("objects")
        obj: Any = object.__new__(cls.real)
        found, init = cls.find("__init__")
        if found and isinstance(init, LearnerFunction):
            result = self.call_function(init, (obj, *args), kwargs)
            if result is not None:
                raise TypeError(f"__init__() should return None, not '{type(result).__name__}'")
        else:
            self._base_init(BaseInit(cls.library_base, obj), args, kwargs, cls.name)
        return obj

    def _base_init(
        self, init: BaseInit, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = ""
    ) -> None:
        receiver = init.receiver
        if receiver is None:
            if not args:
                raise TypeError("descriptor '__init__' of 'object' object needs an argument")
            receiver, args = args[0], args[1:]
        if not isinstance(receiver, init.real):
            raise TypeError(f"__init__() needs an instance of {init.real.__name__}")
        if issubclass(init.real, nn.Module):
            if args or kwargs:
                raise TypeError("Module.__init__() takes no arguments here")
            nn.Module.__init__(cast(nn.Module, receiver))
        elif args or kwargs:
            raise TypeError(f"{name}() takes no arguments" if name else
                            "object.__init__() takes exactly one argument (the instance to "
                            "initialize)")  # fmt: skip
        return None

    def run_special(
        self, obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """A learner class's special method (or ``forward``) called by Python or a library: run
        it in the interpreter; its exception leaves as the learner's own exception object."""
        if self.stopped is not None:
            raise self.stopped
        learner = learner_class_of(obj)
        found, method = (False, None) if learner is None else learner.find(name)
        if not found or not isinstance(method, LearnerFunction):
            raise TypeError(f"'{type(obj).__name__}' object has no method {name}")
        try:
            result = self.call_function(method, (obj, *args), kwargs)
        except ProgramError as error:
            exc = error.exc if error.exc is not None else RuntimeError(error.message)
            exc._sandbox_line = error.line  # type: ignore[attr-defined]
            raise exc from None
        except SandboxRefused as exc:
            raise self._stop(exc) from None
        return self._check_special(name, result)

    def _check_special(self, name: str, result: Any) -> Any:
        limits = self.limits
        too_long = isinstance(result, int) and result > limits.max_sequence_items
        if name == "__len__" and too_long and not isinstance(result, bool):
            subject = f"__len__() returning {result}"
            raise self._stop(over_limit(subject, limits, "max_sequence_items"))
        if name in ("__repr__", "__str__") and isinstance(result, str):
            self.guard.check_str_len(len(result))
        if name == "__getitem__":
            self.guard.check_result(result)
        return result

    def call_special(self, obj: Any, name: str, args: tuple[Any, ...]) -> Any:
        """``obj[i]`` (and the like) on a learner object, from the interpreter."""
        learner = learner_class_of(obj)
        assert learner is not None
        found, method = learner.find(name)
        if not found or not isinstance(method, LearnerFunction):
            raise TypeError(f"'{learner.name}' object is not subscriptable")
        return self._check_special(name, self.call_function(method, (obj, *args), {}))

    # -- class -------------------------------------------------------------------------------------

    def _stmt_ClassDef(self, stmt: ast.ClassDef) -> None:
        self.count("classes")
        bases = [self.eval(base) for base in stmt.bases]
        if len(bases) > 1:
            raise TypeError("a class here may have one base class (no multiple inheritance)")
        base = bases[0] if bases else BUILTINS["object"]
        if isinstance(base, LearnerClass):
            cls = LearnerClass(stmt.name, base, base.real)
            cls.library_base = base.library_base
        elif isinstance(base, BaseClass) and base.real in _SUBCLASSABLE:
            cls = LearnerClass(stmt.name, None, base.real)
            cls.library_base = base.real
        else:
            raise TypeError(
                f"class {stmt.name} cannot inherit from {type_phrase(base)}: a class here may "
                "inherit from object, nn.Module, Dataset or another class of this program"
            )
        saved = self.frame
        self.frame = Frame("class", cls.namespace, parent=saved, extra={"class": cls})
        try:
            self.exec_block(stmt.body)
        finally:
            self.frame = saved
        for value in cls.namespace.values():
            for function in _functions_of(value):
                function.owner = cls
        cls.build(self)
        self.store(stmt.name, cls)
        self.record(stmt, header=True)

    # -- attributes --------------------------------------------------------------------------------

    def learner_class(self, obj: Any) -> LearnerClass | None:
        return learner_class_of(obj)

    def get_attr(self, obj: Any, name: str) -> Any:
        if isinstance(obj, LearnerClass):
            return self._class_attr(obj, name)
        if isinstance(obj, SuperProxy):
            return self._super_attr(obj, name)
        if isinstance(obj, Property) and name == "setter":
            return PropertySetter(obj)
        if isinstance(obj, BaseClass):
            if name == "__init__" and obj.real in _SUBCLASSABLE:
                return BaseInit(obj.real, None)
            raise AttributeError(f"type object '{obj.name}' has no attribute '{name}' here")
        if name.startswith("__"):
            raise SandboxRefused(f"double-underscore attributes like .{name} are not allowed")
        learner = learner_class_of(obj)
        if learner is not None:
            return self._instance_attr(obj, learner, name)
        if isinstance(obj, BaseException):
            if name == "args":
                return obj.args
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{name}'")
        if isinstance(obj, LearnerFunction | LearnerMethod | StaticMethod | ClassMethod):
            raise AttributeError(f"'function' object has no attribute '{name}'")
        return get_attribute(obj, name)

    def _bind(self, value: Any, receiver: Any, cls: LearnerClass) -> Any:
        if isinstance(value, LearnerFunction):
            return LearnerMethod(receiver, value)
        if isinstance(value, StaticMethod):
            return value.function
        if isinstance(value, ClassMethod):
            return LearnerMethod(cls, value.function)
        if isinstance(value, Property):
            return self.call_function(value.getter, (receiver,), {})
        return value

    def _instance_attr(self, obj: Any, cls: LearnerClass, name: str) -> Any:
        found, value = cls.find(name)
        if found and isinstance(value, Property):
            return self._bind(value, obj, cls)
        own = obj.__dict__
        if name in own:
            return own[name]
        if isinstance(obj, nn.Module):
            for kept in (obj._parameters, obj._buffers, obj._modules):
                if name in kept:
                    return kept[name]
        if found:
            return self._bind(value, obj, cls)
        if isinstance(obj, nn.Module):
            if name in LEARNER_MODULE_METHODS:
                return BoundMethod(obj, name, LEARNER_MODULE_METHODS[name])
            if name == "training":
                return obj.training
        raise AttributeError(f"'{cls.name}' object has no attribute '{name}'")

    def _class_attr(self, cls: LearnerClass, name: str) -> Any:
        found, value = cls.find(name)
        if found:
            if isinstance(value, StaticMethod):
                return value.function
            if isinstance(value, ClassMethod):
                return LearnerMethod(cls, value.function)
            return value
        if name == "__init__":
            return BaseInit(cls.library_base, None)
        raise AttributeError(f"type object '{cls.name}' has no attribute '{name}'")

    def _super_attr(self, proxy: SuperProxy, name: str) -> Any:
        receiver = proxy.receiver
        cls = receiver if isinstance(receiver, LearnerClass) else learner_class_of(receiver)
        assert cls is not None
        found, value = cls.find(name, after=proxy.start)
        if found:
            return self._bind(value, receiver, cls)
        if name == "__init__":
            return BaseInit(cls.library_base, None if receiver is cls else receiver)
        if isinstance(receiver, nn.Module) and name in LEARNER_MODULE_METHODS:
            return BoundMethod(receiver, name, LEARNER_MODULE_METHODS[name])
        raise AttributeError(f"'super' object has no attribute '{name}'")

    def set_attr(self, obj: Any, name: str, value: Any) -> None:
        if name.startswith("_"):
            raise SandboxRefused(f"setting .{name} is not allowed (private and dunder names)")
        if isinstance(obj, LearnerClass):
            obj.namespace[name] = value
            return
        learner = learner_class_of(obj)
        if learner is None:
            set_attribute(obj, name, value)
            return
        found, attr = learner.find(name)
        if found and isinstance(attr, Property):
            if attr.setter_function is None:
                raise AttributeError(f"property '{name}' of '{learner.name}' object has no setter")
            self.call_function(attr.setter_function, (obj, value), {})
            return
        setattr(obj, name, value)  # nn.Module registers parameters and submodules

    # -- try, raise --------------------------------------------------------------------------------

    def _stmt_Try(self, stmt: ast.Try) -> None:
        try:
            try:
                self.exec_block(stmt.body)
            except ProgramError as error:
                handler = self._handler(stmt.handlers, error)
                if handler is None:
                    raise
                self._handle(handler, error)
            else:
                self.exec_block(stmt.orelse)
        except SandboxRefused:
            raise  # a limit or refusal stops the program: no finally runs after it
        except BaseException:
            self.exec_block(stmt.finalbody)
            raise
        else:
            self.exec_block(stmt.finalbody)

    def _handler(self, handlers: list[ast.ExceptHandler], error: ProgramError) -> Any:
        exc = error.exc
        for handler in handlers:
            if handler.type is None:
                return handler
            kinds = exception_types(self.eval(handler.type))
            if exc is not None and isinstance(exc, kinds):
                return handler
        return None

    def _handle(self, handler: ast.ExceptHandler, error: ProgramError) -> None:
        exc = error.exc if error.exc is not None else RuntimeError(error.message)
        self.line = self.guard.line = handler.lineno
        if handler.name:
            self.store(handler.name, exc)
        self.handling.append(exc)
        try:
            self.exec_block(handler.body)
        finally:
            self.handling.pop()
            if handler.name:  # Python deletes the name when the handler ends
                self._owner(handler.name).pop(handler.name, None)

    def _stmt_Raise(self, stmt: ast.Raise) -> None:
        if stmt.exc is None:
            if not self.handling:
                raise RuntimeError("No active exception to reraise")
            raise self.handling[-1]
        exc = self._exception(self.eval(stmt.exc))
        if stmt.cause is not None:
            cause = self.eval(stmt.cause)
            exc.__cause__ = None if cause is None else self._exception(cause)
        raise exc

    def _exception(self, value: Any) -> BaseException:
        if isinstance(value, SafeFunction) and value.pytype in EXCEPTION_TYPES.values():
            made = self.call(value, (), {})
            assert isinstance(made, BaseException)
            return made
        if isinstance(value, BaseException):
            return value
        raise TypeError("exceptions must derive from BaseException")

    # -- comprehensions ----------------------------------------------------------------------------

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp,
        produce: Callable[[], Any],
    ) -> Iterator[Any]:  # fmt: skip
        generators = node.generators
        first = iter_checked(self.eval(generators[0].iter))  # evaluated here, as in Python
        scope = self._scopes.get(id(node))
        if scope is None:
            scope = self._scopes[id(node)] = comprehension_scope(generators)
        frame = Frame("comprehension", {}, scope, parent=self.frame)
        return self._walk(frame, generators, 0, first, produce)

    def _walk(
        self,
        frame: Frame,
        generators: list[ast.comprehension],
        index: int,
        iterator: Iterator[Any],
        produce: Callable[[], Any],
    ) -> Iterator[Any]:
        generator = generators[index]
        last = index + 1 == len(generators)
        for count in itertools.count(1):
            saved = self.frame
            self.frame = frame
            try:
                self.guard.check_deadline()
                item = next(iterator, _DONE)
                if item is _DONE:
                    return
                self._count_iteration(count)
                self.assign(generator.target, item)
                if not all(self.truth(self.eval(test)) for test in generator.ifs):
                    continue
                if last:
                    value = produce()
                else:
                    inner = iter_checked(self.eval(generators[index + 1].iter))
            finally:
                self.frame = saved
            if last:
                yield value
            else:
                yield from self._walk(frame, generators, index + 1, inner, produce)

    def _eval_ListComp(self, node: ast.ListComp) -> list[Any]:
        items = self.guard.bounded(self._comprehension(node, lambda: self.eval(node.elt)))
        return self.guard.check_result(items)

    def _eval_SetComp(self, node: ast.SetComp) -> set[Any]:
        items = self.guard.bounded(self._comprehension(node, lambda: self.eval(node.elt)))
        return self.guard.check_result(set(items))

    def _eval_DictComp(self, node: ast.DictComp) -> dict[Any, Any]:
        def pair() -> tuple[Any, Any]:
            return self.eval(node.key), self.eval(node.value)

        return self.guard.check_result(dict(self.guard.bounded(self._comprehension(node, pair))))

    def _eval_GeneratorExp(self, node: ast.GeneratorExp) -> Iterator[Any]:
        return self._comprehension(node, lambda: self.eval(node.elt))

    # -- builtins that need the interpreter --------------------------------------------------------

    def _super(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SuperProxy:
        if kwargs:
            raise TypeError("super() takes no keyword arguments")
        if args:
            if len(args) != 2 or not isinstance(args[0], LearnerClass):
                raise TypeError("super() here takes a class of this program and its instance")
            start, receiver = args
            owner = receiver if isinstance(receiver, LearnerClass) else learner_class_of(receiver)
            if owner is None or start not in owner.mro():
                raise TypeError("super(type, obj): obj must be an instance or subtype of type")
            return SuperProxy(start, receiver)
        frame: Frame | None = self.frame
        while frame is not None and frame.kind == "comprehension":
            frame = frame.parent
        function = None if frame is None else frame.function
        if frame is None or function is None or function.owner is None:
            raise RuntimeError("super(): no arguments")
        params = function.node.args
        first = [*params.posonlyargs, *params.args]
        if not first or first[0].arg not in frame.vars:
            raise RuntimeError("super(): no arguments")
        return SuperProxy(function.owner, frame.vars[first[0].arg])

    def _isinstance(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if kwargs or len(args) != 2:
            raise TypeError(f"isinstance expected 2 arguments, got {len(args)}")
        return isinstance(args[0], real_types(args[1]))

    def _type(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if len(args) == 3:
            raise SandboxRefused(
                "type() with three arguments (making a class) is not supported: write a class "
                "statement"
            )
        if kwargs or len(args) != 1:
            raise TypeError("type() takes 1 or 3 arguments")
        return type_of(args[0])

    def _map(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        if kwargs or len(args) < 2:
            raise TypeError("map() must have at least two arguments.")
        func, iterables = args[0], [iter_checked(a) for a in args[1:]]

        def mapped() -> Iterator[Any]:
            for items in zip(*iterables, strict=False):
                self.guard.check_deadline()
                yield self.call(func, items, {})

        return mapped()

    def _filter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        if kwargs or len(args) != 2:
            raise TypeError(f"filter expected 2 arguments, got {len(args)}")
        func, iterator = args[0], iter_checked(args[1])

        def kept() -> Iterator[Any]:
            for item in iterator:
                self.guard.check_deadline()
                if self.truth(item if func is None else self.call(func, (item,), {})):
                    yield item

        return kept()

    def _keys(self, items: list[Any], key: Any) -> list[Any]:
        return [self.call(key, (item,), {}) for item in items]

    def _sorted(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        key = kwargs.pop("key", None)
        reverse = bool(kwargs.pop("reverse", False))
        if kwargs or len(args) != 1:
            raise TypeError("sorted() takes one iterable, key= and reverse=")
        items = self.guard.bounded(args[0])
        self.guard.check_container(items)
        if key is None:
            return sorted(items, reverse=reverse)
        keys = self._keys(items, key)
        order = sorted(range(len(items)), key=keys.__getitem__, reverse=reverse)
        return [items[i] for i in order]

    def _next(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs or not 1 <= len(args) <= 2:
            raise TypeError(f"next expected at least 1 argument, got {len(args)}")
        iterator = args[0]
        learner = learner_class_of(iterator)
        if learner is None and not isinstance(iterator, Iterator):
            raise TypeError(f"'{type(iterator).__name__}' object is not an iterator")
        if learner is not None and not learner.find("__next__")[0]:
            raise TypeError(f"'{learner.name}' object is not an iterator")
        check_iterable(iterator)  # only kinds a program may loop over
        try:
            return next(iterator)
        except StopIteration:
            if len(args) == 2:
                return args[1]
            raise

    def _iter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs or len(args) != 1:
            raise TypeError(f"iter expected 1 argument, got {len(args)}")
        return iter_checked(args[0])


def _extreme(name: str) -> Callable[[Definitions, tuple[Any, ...], dict[str, Any]], Any]:
    """``min``/``max`` with Python's ``key=`` and ``default=`` (keys computed by the
    interpreter first, so no library sort calls back into learner code)."""
    pick = min if name == "min" else max

    def impl(self: Definitions, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = kwargs.pop("key", None)
        default = kwargs.pop("default", _DONE)
        if kwargs:
            raise TypeError(f"{name}() takes key= and default= only")
        items = self.guard.bounded(args[0]) if len(args) == 1 else list(args)
        if not args:
            raise TypeError(f"{name} expected at least 1 argument, got 0")
        self.guard.check_container(items)
        if not items:
            if default is not _DONE:
                return default
            raise ValueError(f"{name}() iterable argument is empty")
        if key is None:
            return pick(items)
        keys = self._keys(items, key)
        return items[pick(range(len(items)), key=keys.__getitem__)]

    return impl


SPECIAL_BUILTINS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]] = {
    "super": Definitions._super,
    "isinstance": Definitions._isinstance,
    "type": Definitions._type,
    "map": Definitions._map,
    "filter": Definitions._filter,
    "sorted": Definitions._sorted,
    "min": _extreme("min"),
    "max": _extreme("max"),
    "next": Definitions._next,
    "iter": Definitions._iter,
}
# By identity of the builtin (a namespace member may share a builtin's name).
SPECIAL_BY_ID = {id(BUILTINS[name]): impl for name, impl in SPECIAL_BUILTINS.items()}


def _functions_of(value: Any) -> list[LearnerFunction]:
    if isinstance(value, LearnerFunction):
        return [value]
    if isinstance(value, StaticMethod | ClassMethod):
        return [value.function]
    if isinstance(value, Property):
        return [f for f in (value.getter, value.setter_function) if f is not None]
    return []


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _names_list(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def bind(
    function: LearnerFunction, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Python's argument binding, with Python's messages for what does not fit."""
    spec = function.node.args
    name = f"{function.qualname}()"
    posonly = [a.arg for a in spec.posonlyargs]
    positional = posonly + [a.arg for a in spec.args]
    kwonly = [a.arg for a in spec.kwonlyargs]
    defaults = function.defaults
    bound: dict[str, Any] = {}
    if len(args) > len(positional) and spec.vararg is None:
        least = len(positional) - len(defaults)
        takes = (
            f"from {least} to {len(positional)} positional arguments"
            if defaults and least != len(positional)
            else _plural(len(positional), "positional argument")
        )
        given = f"{len(args)} {'was' if len(args) == 1 else 'were'} given"
        raise TypeError(f"{name} takes {takes} but {given}")
    for pname, value in zip(positional, args, strict=False):
        bound[pname] = value
    if spec.vararg is not None:
        bound[spec.vararg.arg] = tuple(args[len(positional) :])
    extra: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in positional and key not in posonly or key in kwonly:
            if key in bound:
                raise TypeError(f"{name} got multiple values for argument '{key}'")
            bound[key] = value
        elif spec.kwarg is not None:
            extra[key] = value
        elif key in posonly:
            raise TypeError(
                f"{name} got some positional-only arguments passed as keyword arguments: '{key}'"
            )
        else:
            raise TypeError(f"{name} got an unexpected keyword argument '{key}'")
    first_default = len(positional) - len(defaults)
    missing = []
    for i, pname in enumerate(positional):
        if pname not in bound:
            if i >= first_default:
                bound[pname] = defaults[i - first_default]
            else:
                missing.append(pname)
    if missing:
        what = _plural(len(missing), "required positional argument")
        raise TypeError(f"{name} missing {what}: {_names_list(missing)}")
    missing_kw = []
    for kname in kwonly:
        if kname not in bound:
            if kname in function.kwdefaults:
                bound[kname] = function.kwdefaults[kname]
            else:
                missing_kw.append(kname)
    if missing_kw:
        what = _plural(len(missing_kw), "required keyword-only argument")
        raise TypeError(f"{name} missing {what}: {_names_list(missing_kw)}")
    if spec.kwarg is not None:
        bound[spec.kwarg.arg] = extra
    return bound


def real_types(classinfo: Any, depth: int = 0) -> tuple[type, ...]:
    """The real types a program's class value stands for (``isinstance``, ``except``)."""
    if isinstance(classinfo, tuple) and depth < 4:
        if len(classinfo) > 100:
            raise TypeError("isinstance() takes a tuple of at most 100 types here")
        return tuple(t for item in classinfo for t in real_types(item, depth + 1))
    if isinstance(classinfo, SafeFunction) and isinstance(classinfo.pytype, type):
        return (classinfo.pytype,)
    if isinstance(classinfo, BaseClass | LearnerClass | TypeView):
        return (classinfo.real,)
    raise TypeError("isinstance() arg 2 must be a type, a tuple of types, or a union")


def exception_types(value: Any) -> tuple[type, ...]:
    kinds = real_types(value)
    if not all(issubclass(kind, BaseException) for kind in kinds):
        raise TypeError("catching classes that do not inherit from BaseException is not allowed")
    return kinds


_TYPE_NAMES: dict[type, Any] = {}


def type_of(value: Any) -> Any:
    """``type(x)`` as the program sees it: its class's own name where the program has one."""
    learner = learner_class_of(value)
    if learner is not None:
        return learner
    if not _TYPE_NAMES:
        for builtin in BUILTINS.values():
            if isinstance(builtin, SafeFunction) and isinstance(builtin.pytype, type):
                _TYPE_NAMES.setdefault(builtin.pytype, builtin)
        for member in NAMESPACES["torch"].members.values():
            if isinstance(member, BaseClass):
                _TYPE_NAMES.setdefault(member.real, member)
    kind = type(value)
    if isinstance(value, SafeFunction) and isinstance(value.pytype, type):
        return TypeView(type, "type")  # type(int) is type
    named = _TYPE_NAMES.get(kind)
    if named is not None:
        return named
    return TypeView(kind, _WRAPPER_TYPES.get(kind))


# The sandbox's own wrappers, as the Python type each stands for.
_WRAPPER_TYPES: dict[type, str] = {
    SafeFunction: "builtin_function_or_method",
    BoundMethod: "builtin_function_or_method",
    Namespace: "module",
    LearnerFunction: "function",
    LearnerMethod: "method",
    LearnerClass: "type",
    BaseClass: "type",
    TypeView: "type",
    StaticMethod: "staticmethod",
    ClassMethod: "classmethod",
    Property: "property",
    SuperProxy: "super",
    BaseInit: "wrapper_descriptor",
}
