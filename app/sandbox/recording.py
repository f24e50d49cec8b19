"""A program's recorded steps, bounded in bytes of JSON while they are recorded (API.md "Programs").

Each recorded step keeps only what changed since the previous one: the variables that are new
or whose Value differs (``changes``) and those deleted (``removed``). The answer's two formats
are assembled from that: ``"changes"`` as it is, ``"full"`` (every variable after every step,
the original contract) by applying the changes step by step. Every Value is serialized once,
when it is recorded, and the exact size of each step in the answer's format counts against
``max_answer_bytes``: the step that would pass the budget is not recorded, recording stops with a
notice, and the program runs on (its later print output still comes back, within the budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app.sandbox.limits import SandboxLimits
from app.sandbox.values import Serializer, is_immutable, json_text

StepsFormat = Literal["full", "changes", "none"]

# Bytes of the budget kept for what is only known at the end: the answer's envelope, the error
# (at most about 2,000 characters of PyTorch's message) and the notices.
RESERVED_BYTES = 16 * 1024


def reserved_bytes(limit: int) -> int:
    """The part of an answer's budget kept for its envelope, error and notices."""
    return min(RESERVED_BYTES, limit // 4)


@dataclass
class Entry:
    """One variable's Value as recorded, with its JSON as an item of a ``variables`` object."""

    value: dict[str, Any]
    text: str  # the Value's JSON
    item: str  # '"name":{...}': its length is what the variable adds to an answer
    obj: Any  # the object itself when immutable: the same object later is unchanged


@dataclass
class RecordedStep:
    line: int
    source: str
    stdout: str
    source_json: str
    stdout_json: str
    changes: dict[str, Entry]
    removed: list[str]
    size: int  # bytes of its JSON in the answer's format
    # Inside a call: ',"stack":[...]' (the frames from the module down, each with its line), the
    # list itself for steps_dicts; empty at the top level, where the step has no "stack".
    stack_json: str = ""
    stack: list[dict[str, Any]] | None = None


# The fixed JSON of one step, around its line, source, variables and stdout.
_HEAD = '{"line":'
_SOURCE = ',"source":'
_FULL_VARIABLES = ',"variables":{'
_FULL_STDOUT = '},"stdout":'
_CHANGES_STDOUT = ',"variables":{},"stdout":'
_CHANGES = ',"changes":{'
_REMOVED = '},"removed":['
_CHANGES_END = "]}"


class Recorder:
    """Records steps as changes, counting each step's bytes in the answer's format."""

    def __init__(self, serializer: Serializer, limits: SandboxLimits, steps: StepsFormat) -> None:
        self.serializer = serializer
        self.format: StepsFormat = steps
        self.limit = limits.max_answer_bytes
        self.room = max(self.limit - reserved_bytes(self.limit), 0)
        self.steps: list[RecordedStep] = []
        self.state: dict[str, Entry] = {}
        self.steps_bytes = 0  # the steps array's items and the commas between them
        self.after: list[str] = []  # print output of statements that were not recorded
        self.after_bytes = 0
        self.after_cut = False
        self._state_bytes = 0  # the items of the current variables, without commas
        self._texts: dict[str, str] = {}  # source -> its JSON (statements repeat in loops)
        # id -> the entry of an immutable object some variable holds now: another name bound
        # to the same object has the same Value, so it is not serialized again.
        self._by_id: dict[int, Entry] = {}

    # -- recording ---------------------------------------------------------------------------------

    def record(
        self,
        env: Mapping[str, Any],
        line: int,
        source: str,
        stdout: str,
        stack: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Record one step; False (nothing recorded) when it would pass the byte budget.

        ``stack`` is the call stack inside a call (``[{"function", "line"}]`` from the module
        down). Raises RecordingBudgetExceeded (from the serializer) past ``max_recorded_numbers``.
        """
        changes, removed = self._diff(env)
        stack_json = f',"stack":{json_text(stack)}' if stack else ""
        source_text = self._texts.get(source)
        if source_text is None:
            source_text = self._texts[source] = json_text(source)
        stdout_text = json_text(stdout)
        size = self._step_bytes(line, source_text, stdout_text, changes, removed) + len(stack_json)
        comma = 1 if self.steps else 0
        if self.steps_bytes + self.after_bytes + comma + size > self.room:
            return False
        for name in removed:
            self._forget(self.state.pop(name))
        for name, entry in changes.items():
            old = self.state.get(name)
            if old is not None:
                self._forget(old)
            self._state_bytes += len(entry.item)
            self.state[name] = entry
            if entry.obj is not None:
                self._by_id[id(entry.obj)] = entry
        self.steps.append(
            RecordedStep(
                line,
                source,
                stdout,
                source_text,
                stdout_text,
                changes,
                removed,
                size,
                stack_json,
                stack or None,
            )  # fmt: skip
        )
        self.steps_bytes += comma + size
        return True

    def _diff(self, env: Mapping[str, Any]) -> tuple[dict[str, Entry], list[str]]:
        """The variables new or changed since the last recorded step, and those deleted."""
        state = self.state
        changes: dict[str, Entry] = {}
        survivors = iter(state)
        in_order = True  # env keeps the recorded order, new names after (dict insertion order)
        seen_new = False
        for name, obj in env.items():
            old = state.get(name)
            if old is None:
                seen_new = True
            elif in_order:
                in_order = not seen_new and next((k for k in survivors if k in env), None) == name
            if old is not None and old.obj is not None and old.obj is obj:
                continue  # the same immutable object: the same Value, nothing to serialize
            keep = obj if is_immutable(obj) else None
            known = self._by_id.get(id(obj)) if keep is not None else None
            if known is not None and known.obj is obj:
                value, text = known.value, known.text
            else:
                before = self.serializer.numbers
                value = self.serializer.variable(obj)
                # The serializer hands back the very Value it kept for an unchanged container or
                # module, and an equal Value has the JSON recorded (comparing is quicker than
                # encoding; only -0.0 == 0.0 would pass unseen, a sign no step needs to show).
                same = old is not None and (value is old.value or value == old.value)
                text = old.text if same and old is not None else json_text(value)
                if old is not None and old.text == text:
                    # Unchanged (a model between optimizer steps): nothing new is recorded, so
                    # its numbers do not count again towards max_recorded_numbers.
                    self.serializer.numbers = before
            if old is not None and old.text == text:
                old.obj = keep
                if keep is not None:
                    self._by_id[id(keep)] = old
                continue
            changes[name] = Entry(value, text, f"{json_text(name)}:{text}", keep)
        removed = [name for name in state if name not in env]
        if not in_order:
            # A name left and came back within one step (the order moved): restate everything,
            # so that applying removed, then changes, still gives the program's own order.
            removed = list(state)
            changes = {name: changes.get(name) or state[name] for name in env}
        return changes, removed

    def _forget(self, entry: Entry) -> None:
        """An entry leaves the current variables."""
        self._state_bytes -= len(entry.item)
        if entry.obj is not None and self._by_id.get(id(entry.obj)) is entry:
            del self._by_id[id(entry.obj)]

    def _step_bytes(
        self,
        line: int,
        source: str,
        stdout: str,
        changes: dict[str, Entry],
        removed: list[str],
    ) -> int:
        """Bytes of this step's JSON in the answer's format."""
        fixed = len(_HEAD) + len(str(line)) + len(_SOURCE) + len(source) + len(stdout) + 1
        if self.format == "changes":
            names = sum(len(json_text(name)) for name in removed) + max(len(removed) - 1, 0)
            items = sum(len(e.item) for e in changes.values()) + max(len(changes) - 1, 0)
            return (
                fixed + len(_CHANGES_STDOUT) + len(_CHANGES) + items + len(_REMOVED) + names
                + len(_CHANGES_END) - 1
            )  # fmt: skip
        state = self.state
        gone = set(removed)
        count = len(state) - len(gone)
        items = self._state_bytes - sum(len(state[name].item) for name in gone)
        for name, entry in changes.items():
            old = state.get(name)
            if old is None or name in gone:
                count += 1
                items += len(entry.item)
            else:
                items += len(entry.item) - len(old.item)
        return fixed + len(_FULL_VARIABLES) + items + max(count - 1, 0) + len(_FULL_STDOUT)

    def add_after(self, stdout: str) -> bool:
        """Keep print output of a statement that was not recorded; False once it was cut at the
        byte budget (the rest is dropped)."""
        if not stdout or self.after_cut:
            return not self.after_cut
        size = len(json_text(stdout)) - 2
        room = self.room - self.steps_bytes - self.after_bytes
        if size > room:
            stdout = _fitting(stdout, room)
            size = len(json_text(stdout)) - 2
            self.after_cut = True
        self.after.append(stdout)
        self.after_bytes += size
        return not self.after_cut

    # -- the answer -------------------------------------------------------------------------------

    def steps_json(self) -> list[str]:
        """Each recorded step as JSON, in the answer's format."""
        parts: list[str] = []
        if self.format == "changes":
            for s in self.steps:
                items = ",".join(e.item for e in s.changes.values())
                names = ",".join(json_text(name) for name in s.removed)
                parts.append(
                    f"{_HEAD}{s.line}{_SOURCE}{s.source_json}{_CHANGES_STDOUT}{s.stdout_json}"
                    f"{_CHANGES}{items}{_REMOVED}{names}]{s.stack_json}}}"
                )
            return parts
        state: dict[str, str] = {}
        for s in self.steps:
            for name in s.removed:
                del state[name]
            for name, entry in s.changes.items():
                state[name] = entry.item
            variables = ",".join(state.values())
            parts.append(
                f"{_HEAD}{s.line}{_SOURCE}{s.source_json}{_FULL_VARIABLES}{variables}"
                f"{_FULL_STDOUT}{s.stdout_json}{s.stack_json}}}"
            )
        return parts

    def steps_dicts(self) -> list[dict[str, Any]]:
        """The recorded steps as Python data, in the answer's format (Values are shared between
        steps, not copied)."""
        out: list[dict[str, Any]] = []
        state: dict[str, dict[str, Any]] = {}
        for s in self.steps:
            if self.format == "changes":
                changes = {name: e.value for name, e in s.changes.items()}
                step = {"line": s.line, "source": s.source, "variables": {}, "stdout": s.stdout}
                step = {**step, "changes": changes, "removed": list(s.removed)}
                out.append({**step, "stack": s.stack} if s.stack else step)
                continue
            for name in s.removed:
                del state[name]
            for name, entry in s.changes.items():
                state[name] = entry.value
            full = {
                "line": s.line,
                "source": s.source,
                "variables": dict(state),
                "stdout": s.stdout,
            }
            out.append({**full, "stack": s.stack} if s.stack else full)
        return out

    def stdout_after(self) -> str:
        return "".join(self.after)

    def drop_last_step(self) -> None:
        """Forget the last recorded step (only to make a final answer fit its budget)."""
        step = self.steps.pop()
        self.steps_bytes -= step.size + (1 if self.steps else 0)


def _fitting(text: str, room: int) -> str:
    """The longest start of ``text`` whose JSON (without quotes) fits in ``room`` bytes."""
    low, high = 0, min(len(text), max(room, 0))
    while low < high:
        middle = (low + high + 1) // 2
        if len(json_text(text[:middle])) - 2 <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def fit_text(text: str, room: int) -> str:
    """``text`` cut (with "...") so that its JSON string fits in ``room`` bytes."""
    if len(json_text(text)) <= room:
        return text
    return _fitting(text, room - 5) + "..."


@dataclass
class Answer:
    """A run's answer, fitted to its byte budget: what ``run_program`` returns."""

    recorder: Recorder
    error: dict[str, Any] | None
    truncated: bool
    notices: list[str]
    statements: int
    # What the program's libraries handed back: saved files and matplotlib figures (base64).
    files: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    # When recording stopped early: the module's variables as the program left them (its final
    # state), if they fit in what the budget has left; None otherwise.
    final: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._final_text = json_text(self.final) if self.final is not None else ""
        self._fit()

    def _tail(self) -> str:
        """The JSON after the steps array."""
        return (
            f'],"error":{json_text(self.error)},"truncated":{json_text(self.truncated)},'
            f'"notices":{json_text(self.notices)},"steps_format":{json_text(self.recorder.format)},'
            f'"stdout_after":{json_text(self.recorder.stdout_after())},'
            f'"statements":{json_text(self.statements)},"files":{json_text(self.files)},'
            f'"figures":{json_text(self.figures)}'
            + (f',"final":{self._final_text}' if self.final is not None else "")
            + "}"
        )

    def size(self) -> int:
        """Bytes of this answer's JSON."""
        return len('{"steps":[') + self.recorder.steps_bytes + len(self._tail())

    def _fit(self) -> None:
        """The last resort when what is known only now (the error, the notices) does not fit in
        what was kept for it: shorten the error message, then forget steps from the end."""
        limit = self.recorder.limit
        if self.final is not None and self.size() > limit:
            self.final, self._final_text = None, ""
            self.notices.append(
                f"the program's final variables did not fit in the answer's budget of {limit} "
                "bytes (max_answer_bytes)"
            )
        over = self.size() - limit
        if over > 0 and self.error is not None:
            message = str(self.error.get("message", ""))
            room = max(len(json_text(message)) - over, 16)
            self.error = {**self.error, "message": fit_text(message, room)}
        while self.size() > limit and self.recorder.steps:
            self.recorder.drop_last_step()
            self.truncated = True
        while self.size() > limit and (self.figures or self.files):
            dropped = (self.figures or self.files).pop()
            self.notices.append(
                f"{dropped.get('name') or 'a figure'} did not fit in the answer's budget of "
                f"{limit} bytes (max_answer_bytes)"
            )

    def as_json(self) -> bytes:
        """The answer as the bytes of its JSON (ASCII, so as long as ``size()``)."""
        steps = ",".join(self.recorder.steps_json())
        return f'{{"steps":[{steps}{self._tail()}'.encode("ascii")

    def as_dict(self) -> dict[str, Any]:
        """The same answer as Python data."""
        return {
            "steps": self.recorder.steps_dicts(),
            "error": self.error,
            "truncated": self.truncated,
            "notices": self.notices,
            "steps_format": self.recorder.format,
            "stdout_after": self.recorder.stdout_after(),
            "statements": self.statements,
            "files": self.files,
            "figures": self.figures,
            **({"final": self.final} if self.final is not None else {}),
        }
