"""The values a program defines: its functions, classes, methods and the objects they make.

None of these is callable by Python itself except through the special methods of a learner
class, and those run the learner's code through the interpreter (``Engine.run_special``), under
the same limits as every other statement. A learner class is a real Python class built on its
library base (``object``, ``nn.Module``, ``Dataset``), so ``model(x)``, ``state_dict()``,
``len(dataset)``, ``dataset[i]`` and a real ``DataLoader`` work as in PyTorch; its methods and
class attributes live in ``LearnerClass.namespace``, out of the real class's ``__dict__``, so
library code never finds a learner value where it expects its own.
"""

from __future__ import annotations

import ast
from typing import Any, Protocol

from torch import nn

from app.sandbox.scopes import Frame, Scope

# The special methods a learner class may define; every other dunder is refused by the checker.
SPECIAL_METHODS = frozenset(
    {
        "__init__",
        "__call__",
        "__getitem__",
        "__len__",
        "__iter__",
        "__next__",
        "__repr__",
        "__str__",
    }  # fmt: skip
)
# Those Python or a library calls on the real object (``__init__`` only the interpreter calls).
_TRAMPOLINED = SPECIAL_METHODS - {"__init__"}


class Engine(Protocol):
    """What the real classes' special methods call back into (the interpreter)."""

    def run_special(
        self, obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


class LearnerFunction:
    """A ``def`` or ``lambda`` of the program, with its defaults and the frame it closes over."""

    __slots__ = (
        "name", "qualname", "node", "scope", "defaults", "kwdefaults", "closure", "owner",
        "no_grad",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        qualname: str,
        node: ast.FunctionDef | ast.Lambda,
        scope: Scope,
        defaults: list[Any],
        kwdefaults: dict[str, Any],
        closure: Frame | None,
    ) -> None:
        self.name = name
        self.qualname = qualname
        self.node = node
        self.scope = scope
        self.defaults = defaults
        self.kwdefaults = kwdefaults
        self.closure = closure
        self.owner: LearnerClass | None = None  # the class whose body defined it (for super())
        self.no_grad = False  # decorated with @torch.no_grad()

    def __repr__(self) -> str:
        return f"<function {self.qualname} at 0x{id(self):x}>"


class StaticMethod:
    __slots__ = ("function",)

    def __init__(self, function: LearnerFunction) -> None:
        self.function = function

    def __repr__(self) -> str:
        return f"<staticmethod({self.function!r})>"


class ClassMethod:
    __slots__ = ("function",)

    def __init__(self, function: LearnerFunction) -> None:
        self.function = function

    def __repr__(self) -> str:
        return f"<classmethod({self.function!r})>"


class Property:
    """``@property`` (and its ``@name.setter``)."""

    __slots__ = ("getter", "setter_function")

    def __init__(self, getter: LearnerFunction, setter: LearnerFunction | None = None) -> None:
        self.getter = getter
        self.setter_function = setter

    def __repr__(self) -> str:
        return f"<property object at 0x{id(self):x}>"


class PropertySetter:
    """``@x.setter`` as a value: applied to the function below it."""

    __slots__ = ("prop",)

    def __init__(self, prop: Property) -> None:
        self.prop = prop


class LearnerMethod:
    """A learner function bound to an instance (or, for a classmethod, to a class)."""

    __slots__ = ("receiver", "function")

    def __init__(self, receiver: Any, function: LearnerFunction) -> None:
        self.receiver = receiver
        self.function = function

    def __repr__(self) -> str:
        return f"<method {self.function.qualname}>"


class BaseInit:
    """A library base class's ``__init__`` reached through ``super()`` or ``nn.Module.__init__``."""

    __slots__ = ("real", "receiver")

    def __init__(self, real: type, receiver: Any) -> None:
        self.real = real
        self.receiver = receiver  # None: unbound (``nn.Module.__init__(self)``)

    def __repr__(self) -> str:
        return f"<slot wrapper '__init__' of '{self.real.__name__}' objects>"


class LearnerClass:
    """A ``class`` of the program."""

    __slots__ = ("name", "base", "namespace", "real", "library_base", "__weakref__")

    def __init__(self, name: str, base: LearnerClass | None, real_base: type) -> None:
        self.name = name
        self.base = base
        self.namespace: dict[str, Any] = {}
        self.real: type = real_base  # replaced by ``build`` with the class made for it
        self.library_base: type = real_base  # object, nn.Module or Dataset

    def __repr__(self) -> str:
        return f"<class '__main__.{self.name}'>"

    def mro(self) -> list[LearnerClass]:
        chain: list[LearnerClass] = []
        cls: LearnerClass | None = self
        while cls is not None:
            chain.append(cls)
            cls = cls.base
        return chain

    def find(self, name: str, after: LearnerClass | None = None) -> tuple[bool, Any]:
        """(found, value) of ``name`` in this class or its learner bases (after ``after``)."""
        chain = self.mro()
        if after is not None and after in chain:
            chain = chain[chain.index(after) + 1 :]
        for cls in chain:
            if name in cls.namespace:
                return True, cls.namespace[name]
        return False, None

    @property
    def iterable(self) -> bool:
        return self.find("__iter__")[0] or self.find("__getitem__")[0]

    @property
    def is_module(self) -> bool:
        return issubclass(self.real, nn.Module)

    def build(self, engine: Engine) -> None:
        """Make the real class: the library base, and the special methods this class defines
        (and ``forward`` for a module) calling back into ``engine``."""
        attrs: dict[str, Any] = {
            "__module__": "__main__",
            "__qualname__": self.name,
            "_sandbox_class": self,
        }
        names = set(self.namespace) & _TRAMPOLINED
        if issubclass(self.real, nn.Module) and "forward" in self.namespace:
            names.add("forward")
        for name in names:
            attrs[name] = _trampoline(engine, name)
        self.real = type(self.name, (self.real,), attrs)


def _trampoline(engine: Engine, name: str) -> Any:
    def special(self: Any, *args: Any, **kwargs: Any) -> Any:
        return engine.run_special(self, name, args, kwargs)

    special.__name__ = name
    return special


class SuperProxy:
    """``super()`` / ``super(Cls, obj)``: attribute lookup starting after ``start``."""

    __slots__ = ("start", "receiver")

    def __init__(self, start: LearnerClass, receiver: Any) -> None:
        self.start = start
        self.receiver = receiver

    def __repr__(self) -> str:
        return f"<super: <class '{self.start.name}'>, <{self.start.name} object>>"


class TypeView:
    """``type(x)`` of a value whose type the program has no name for: prints like Python (the
    sandbox's own wrappers print as the Python type they stand for: ``function``, ``module``)."""

    __slots__ = ("real", "label")

    def __init__(self, real: type, label: str | None = None) -> None:
        self.real = real
        self.label = label

    def __repr__(self) -> str:
        if self.label is not None:
            return f"<class '{self.label}'>"
        module = self.real.__module__
        name = self.real.__qualname__
        return f"<class '{name}'>" if module == "builtins" else f"<class '{module}.{name}'>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypeView) and other.real is self.real

    def __hash__(self) -> int:
        return hash(self.real)


def learner_class_of(obj: Any) -> LearnerClass | None:
    """The learner class an object is an instance of, or None."""
    found = getattr(type(obj), "_sandbox_class", None)
    return found if isinstance(found, LearnerClass) else None
