"""Classes (issue 16, item 3): a teacher makes a class, learners join it with a short code or a
link, and the class page shows every member's runs live in one table.

``/classes`` lists the learner's classes, with a form to join one by code and one to make one
(``/classes/new`` is that form alone); ``GET /api/classes`` and ``POST /api/classes`` are the
twins. A class's page, ``/classes/<id>``, is for its members. Its teachers see the join code, the
members and one table of every run a member launched while in the class (``GET
/api/classes/<id>``, which ``static/js/classes.js`` polls every 2 s), pick runs to overlay in the
Tracking lesson, and cancel runs through the runs API's own ``POST /api/runs/<id>/cancel``. A
learner sees who teaches the class and what that means, and can leave it.

Links ask before they act: ``GET /join/<code>`` and ``GET /classes/teach/<token>`` change nothing
(a chat app that previews the link opens it too); the page's button POSTs. Every join attempt,
right or wrong, from a form or the API, is counted (``classes_max_joins_per_minute``, per learner
and per client address) before the code is looked up, so that the 2**40 codes cannot be tried
at speed. The teacher link is shown once, when the class is made: the store keeps only its hash.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException

from app.jobs import FINAL_STATUSES
from app.jobs.retention import kept_bytes
from app.jobs.store import (
    LEARNER,
    TEACHER,
    ClassInfo,
    ClassNotFound,
    Member,
    Run,
    RunStore,
    shown_code,
)
from app.web.admission import TooBusy, client_key
from app.web.deps import SettingsDep
from app.web.identity import learner_of
from app.web.live import Runs
from app.web.routes.me import NAME_MAX_CHARS, check_name, check_text
from app.web.routes.run_pages import ACCURACY_METRICS, config_text, when
from app.web.routes.runs import RunModel, eta_seconds, runs_of
from app.web.schemas import error_responses
from app.web.templating import render

router = APIRouter(tags=["classes"])

# A class name the members' lists and the table's header show on one or two lines.
CLASS_NAME_MAX_CHARS = 80
# What the store makes: a class id is 128 random bits in hex, a teacher token 22 characters of
# base64url, a run id 32 hex digits. Anything else is unknown without asking the store.
CLASS_ID = re.compile(r"[0-9a-f]{32}")
TEACHER_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
RUN_ID = re.compile(r"[0-9a-f]{32}")
# A join code as typed: 8 characters, a dash, some spaces. A longer text is not a code.
CODE_MAX_CHARS = 32
# What a form field may carry before it is checked (the checks then name the real limit).
FORM_MAX_CHARS = 1000
JOINS = "classes_max_joins_per_minute"
JOINS_PER_ADDRESS = "classes_max_joins_per_minute_per_address"
PER_TEACHER = "classes_max_per_teacher"
NO_STORE = {"Cache-Control": "no-store"}
NOT_MEMBER = (
    "This class's page is for its members only. To join it, use the join code or link your "
    "teacher gives you: type the code on the Classes page (/classes)."
)
LAST_TEACHER = (
    "You are this class's only teacher: if you left, no one could see its runs. Give another "
    "teacher the teacher link you kept when you made the class, then leave."
)
# A finished run's metrics are settled this long after it ended (a cancelled run's process may
# still hand over its last metrics for a moment): only then is its best accuracy kept.
SETTLED = timedelta(seconds=60)


# -- checking what people type ---------------------------------------------------------------


def check_class_name(value: str) -> str:
    """A class name: 1 to 80 characters after trimming, all of them text."""
    return check_text(value, "a class name", CLASS_NAME_MAX_CHARS)


# -- the JSON shapes ---------------------------------------------------------------------------


class ClassRequest(BaseModel):
    name: str = Field(
        examples=["Intro to PyTorch, Tuesday"], description=f"1 to {CLASS_NAME_MAX_CHARS} chars"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_class_name(value)


class ClassCreated(BaseModel):
    id: str
    name: str
    code: str = Field(description="the join code as people read it: ABCD-2345")
    join_url: str = Field(description="learners open it to join")
    teacher_url: str = Field(
        description="opened in another browser, it makes that browser a teacher of the class; "
        "keep it private: it is shown only in this answer (the store keeps only its hash)"
    )
    url: str = Field(description="the class page")


class ClassSummary(BaseModel):
    id: str
    name: str
    code: str
    role: str = Field(description="teacher or learner")
    url: str
    join_url: str


class ClassesResponse(BaseModel):
    classes: list[ClassSummary] = Field(description="the requesting learner's, newest first")


class JoinRequest(BaseModel):
    code: str = Field(
        max_length=CODE_MAX_CHARS,
        examples=["ABCD-2345"],
        description="the class's join code, in any case, with or without its dash",
    )


class Joined(BaseModel):
    id: str
    name: str
    role: str = Field(description="the learner's role in the class afterwards")
    url: str


class Left(BaseModel):
    id: str
    left: bool = Field(description="false when the learner was not in the class")


class MemberModel(BaseModel):
    name: str = Field(description='the display name, or "learner <first 6 of the id>"')
    role: str
    joined_at: str


class ClassRun(RunModel):
    owner_name: str = Field(
        description="who launched it, as the class page shows them (the display name, or "
        '"learner <first 6 of the id>")'
    )
    best_accuracy: float | None = Field(
        description="the highest val_accuracy logged (accuracy for runs without one)"
    )
    stored_bytes: int | None = Field(description="what it keeps (files and metrics) now")
    config_text: str = Field(description="the config as the table shows it")
    created_text: str = Field(description="created_at as the table shows it (UTC)")


class ClassView(BaseModel):
    id: str
    name: str
    code: str
    join_url: str
    role: str = Field(description="the requesting learner's: teacher or learner")
    members: list[MemberModel] = Field(description="for a learner: the class's teachers")
    runs: list[ClassRun] = Field(
        description="for a teacher: every member's runs launched while in the class, newest "
        "first; for a learner: their own such runs"
    )
    stored_bytes: int = Field(
        description="what the class's runs keep (all of them, beyond the listed newest "
        "runs_max_listed too); a run still queued or running as it is now"
    )
    uncounted: int = Field(
        description="of those runs, how many are still queued or running (their size grows)"
    )
    stored_text: str = Field(description="stored_bytes for people (KB, MB)")


# -- reading the store -------------------------------------------------------------------------


def store_of(request: Request) -> RunStore:
    store: RunStore = request.app.state.runs.store
    return store


def shown_name(learner: str, name: str | None) -> str:
    """How a learner appears to the class: their display name, else the start of their id."""
    return name or f"learner {learner[:6]}"


def size_text(size: int) -> str:
    """Bytes for people, in powers of 1024: 512 bytes, 12.3 KB, 4.5 MB, 1.2 GB."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size) / 1024
    for unit in ("KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def best_of(metrics: Mapping[str, list[list[float]]]) -> float | None:
    """The highest held-out accuracy a run logged (its training accuracy when it has none)."""
    for name in ACCURACY_METRICS:
        values = [float(value) for _, value in metrics.get(name, []) if math.isfinite(value)]
        if values:
            return max(values)
    return None


class BestAccuracies:
    """Each run's best accuracy. A run that ended a while ago logs nothing more, so its value is
    kept (a bounded number of them): the table's poll reads only the unfinished runs' metrics."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, float | None] = OrderedDict()

    def of(self, store: RunStore, runs: Iterable[Run]) -> dict[str, float | None]:
        now = datetime.now(UTC)
        out: dict[str, float | None] = {}
        for run in runs:
            with self._lock:
                if run.id in self._kept:
                    self._kept.move_to_end(run.id)
                    out[run.id] = self._kept[run.id]
                    continue
            best = best_of(store.metrics(run.id))
            out[run.id] = best
            settled = run.finished_at is not None and now - run.finished_at > SETTLED
            if run.is_final and settled:
                with self._lock:
                    self._kept[run.id] = best
                    while len(self._kept) > self.size:
                        self._kept.popitem(last=False)
        return out


BEST = BestAccuracies()


def class_run(runs: Runs, run: Run, who: str, best: float | None, size: int | None) -> ClassRun:
    created = when(run.created_at)
    return ClassRun(
        **run.to_dict(),
        position=runs.runner.position(run.id) if not run.is_final else None,
        eta_seconds=eta_seconds(run),
        read_only=False,  # a class's runs are its teachers' to cancel, and a learner's own
        owner_name=who,
        best_accuracy=best,
        stored_bytes=size,
        config_text=config_text(run.config),
        created_text=created["text"] if created else "",
    )


def summary(info: ClassInfo, role: str) -> ClassSummary:
    return ClassSummary(
        id=info.id,
        name=info.name,
        code=shown_code(info.code),
        role=role,
        url=f"/classes/{info.id}",
        join_url=f"/join/{shown_code(info.code)}",
    )


def member_model(member: Member) -> MemberModel:
    return MemberModel(
        name=shown_name(member.learner, member.name),
        role=member.role,
        joined_at=member.joined_at.isoformat(),
    )


def class_view(request: Request, info: ClassInfo, role: str, limit: int) -> ClassView:
    """The class as ``role`` sees it: a teacher every member and run, a learner the teachers
    and their own runs in the class."""
    runs = runs_of(request)
    store = runs.store
    learner = learner_of(request)
    members = store.members(info.id)
    names = {m.learner: shown_name(m.learner, m.name) for m in members}
    if role == TEACHER:
        shown = members
        listed = store.class_runs(info.id, limit=limit)
    else:
        shown = [m for m in members if m.role == TEACHER]
        joined = next((m.joined_at for m in members if m.learner == learner), None)
        own = store.owned(learner) if joined is not None else []
        listed = [run for run in own if joined is not None and run.created_at >= joined][:limit]
    # The table shows the newest runs; the space used is every run's. A final run is counted
    # once (and kept in the store), one that still grows afresh at each look.
    every = store.class_runs(info.id) if len(listed) >= limit and role == TEACHER else listed
    counted = store.stored_bytes(run.id for run in every)
    for run in every:
        if counted.get(run.id) is None:
            counted[run.id] = kept_bytes(runs, run)
    sizes = {run.id: counted.get(run.id) for run in listed}
    best = BEST.of(store, listed)
    rows = [
        class_run(
            runs,
            run,
            names.get(run.owner or "", shown_name(run.owner or "", None)),
            best.get(run.id),
            sizes.get(run.id),
        )
        for run in listed
    ]
    total = sum(size or 0 for size in counted.values())
    return ClassView(
        id=info.id,
        name=info.name,
        code=shown_code(info.code),
        join_url=f"/join/{shown_code(info.code)}",
        role=role,
        members=[member_model(m) for m in shown],
        runs=rows,
        stored_bytes=total,
        uncounted=sum(not run.is_final for run in every),
        stored_text=size_text(total),
    )


def membership(request: Request, class_id: str) -> tuple[ClassInfo, str]:
    """The class and the requesting learner's role in it: 404 for no such class, 403 (saying how
    to join) for one they are not in."""
    if not CLASS_ID.fullmatch(class_id):
        raise ClassNotFound(class_id)
    store = store_of(request)
    info = store.get_class(class_id)
    role = store.role_in(class_id, learner_of(request))
    if role is None:
        raise HTTPException(403, NOT_MEMBER)
    return info, role


# -- what the forms and the API share ----------------------------------------------------------


def create_class(request: Request, name: str) -> tuple[ClassInfo, str]:
    """A class taught by the requesting learner, and its teacher token; a 429 naming
    ``classes_max_per_teacher`` when they already teach that many."""
    store = store_of(request)
    learner = learner_of(request)
    cap = int(request.app.state.settings.classes_max_per_teacher)
    taught = sum(role == TEACHER for _, role in store.classes_of(learner))
    if taught >= cap:
        raise TooBusy(
            f"You already teach {taught} classes: at most {cap} for one learner (setting "
            f"{PER_TEACHER} = {cap}). Use one of your classes on /classes, or ask another "
            "teacher to make this one.",
            PER_TEACHER,
            retry_after=60,
        )
    return store.create_class(name, learner)


def count_join(request: Request) -> None:
    """One more join attempt for this learner (a 429 naming ``classes_max_joins_per_minute`` past
    it) and for this client address, whoever the learner (``..._per_address``: a guesser who
    drops their cookie each time). Counted before any code is looked up."""
    rates = request.app.state.rates
    rates.hit(JOINS, learner_of(request))
    rates.hit(JOINS_PER_ADDRESS, client_key(request))


def class_of_code(request: Request, code: str) -> ClassInfo:
    """The class of a join code, the attempt counted first (``ClassNotFound``: a 404)."""
    count_join(request)
    if len(code) > CODE_MAX_CHARS:
        raise ClassNotFound(code[:CODE_MAX_CHARS])
    return store_of(request).class_by_code(code)


def class_of_token(request: Request, token: str) -> ClassInfo:
    if not TEACHER_TOKEN.fullmatch(token):
        raise ClassNotFound("teacher link")
    return store_of(request).class_by_teacher_token(token)


def sentence(error: ValueError) -> str:
    """A check's message as a sentence for the form: capitalised, with a full stop."""
    text = str(error)
    return text[:1].upper() + text[1:] + "."


def name_given(request: Request, typed: str) -> str | None:
    """The display name typed in a form (checked as ``/api/me`` checks it), or None when the
    field was left empty; ``ValueError`` naming the limit otherwise."""
    if not typed.strip():
        return None
    return check_name(typed)


def absolute(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path


def teacher_names(members: Iterable[Member]) -> list[str]:
    return [shown_name(m.learner, m.name) for m in members if m.role == TEACHER]


# -- the JSON API ------------------------------------------------------------------------------


@router.post("/api/classes", status_code=201, responses=error_responses(422, 429))
def make_class(body: ClassRequest, request: Request, response: Response) -> ClassCreated:
    """Make a class taught by this learner. The answer carries its join code and link and the
    private teacher link, shown only here. 429 past ``classes_max_per_teacher``."""
    info, token = create_class(request, body.name)
    response.headers.update(NO_STORE)
    found = summary(info, TEACHER)
    return ClassCreated(
        id=info.id,
        name=info.name,
        code=found.code,
        join_url=found.join_url,
        teacher_url=f"/classes/teach/{token}",
        url=found.url,
    )


@router.get("/api/classes")
def list_classes(request: Request, response: Response) -> ClassesResponse:
    """The classes this learner is in, as a teacher or a learner: the twin of ``/classes``."""
    response.headers.update(NO_STORE)
    found = store_of(request).classes_of(learner_of(request))
    return ClassesResponse(classes=[summary(info, role) for info, role in found])


@router.post("/api/classes/join", responses=error_responses(404, 429))
def join_class(body: JoinRequest, request: Request, response: Response) -> Joined:
    """Join the class of this code (a teacher stays a teacher). Every attempt is counted: 429
    past ``classes_max_joins_per_minute`` for this learner or this address; 404 for no class."""
    info = class_of_code(request, body.code)
    role = store_of(request).join_class(info.id, learner_of(request), LEARNER)
    response.headers.update(NO_STORE)
    return Joined(id=info.id, name=info.name, role=role, url=f"/classes/{info.id}")


@router.get("/api/classes/{class_id}", responses=error_responses(403, 404))
def get_class(
    class_id: str, request: Request, response: Response, settings: SettingsDep
) -> ClassView:
    """The class page as JSON: for a teacher its code, members and every member's runs launched
    while in the class (with their best accuracy and the space they keep); for a learner its
    teachers and their own runs. 403 for those not in the class."""
    info, role = membership(request, class_id)
    response.headers.update(NO_STORE)
    return class_view(request, info, role, settings.runs_max_listed)


def leave(request: Request, class_id: str) -> bool:
    """Take the requesting learner out of the class; the class's only teacher cannot (409)."""
    if not CLASS_ID.fullmatch(class_id):
        raise ClassNotFound(class_id)
    store = store_of(request)
    store.get_class(class_id)
    learner = learner_of(request)
    if store.role_in(class_id, learner) == TEACHER:
        teachers = [m for m in store.members(class_id) if m.role == TEACHER]
        if len(teachers) <= 1:
            raise HTTPException(409, LAST_TEACHER)
    return store.leave_class(class_id, learner)


@router.post("/api/classes/{class_id}/leave", responses=error_responses(404, 409))
def leave_class(class_id: str, request: Request) -> Left:
    """Leave the class: its teachers no longer see this learner's runs (409 for its only
    teacher)."""
    return Left(id=class_id, left=leave(request, class_id))


# -- the pages ---------------------------------------------------------------------------------


def private_page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """A page of one learner's classes: never kept by a cache (it names codes and members)."""
    page = render(request, template, context, status_code=status_code)
    page.headers.update(NO_STORE)
    return page


def index_page(
    request: Request,
    *,
    only_create: bool = False,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """``/classes`` (or ``/classes/new`` with ``only_create``), with what a refused form had."""
    store = store_of(request)
    learner = learner_of(request)
    context = {
        "classes": [summary(info, role) for info, role in store.classes_of(learner)],
        "only_create": only_create,
        "has_name": store.learner_name(learner) is not None,
        "errors": errors or {},
        "typed": typed or {},
        "class_name_max": CLASS_NAME_MAX_CHARS,
        "name_max": NAME_MAX_CHARS,
    }
    return private_page(request, "classes/index.html", context, status_code)


@router.get("/classes", response_class=HTMLResponse, include_in_schema=False)
def classes_page(request: Request) -> Response:
    """The classes this learner is in, a form to join one by code and one to make one."""
    return index_page(request)


@router.get("/classes/new", response_class=HTMLResponse, include_in_schema=False)
def new_class_page(request: Request) -> Response:
    """Make a class: its name (and the teacher's own, when they have none yet)."""
    return index_page(request, only_create=True)


FormText = Annotated[str, Form(max_length=FORM_MAX_CHARS)]


@router.post("/classes/new", response_class=HTMLResponse, include_in_schema=False)
def new_class(request: Request, name: FormText = "", my_name: FormText = "") -> Response:
    """The form's class, made: its page shows the teacher link once (it is not kept)."""
    typed = {"name": name, "my_name": my_name}
    errors: dict[str, str] = {}
    try:
        class_name = check_class_name(name)
    except ValueError as error:
        errors["name"] = sentence(error)
    try:
        own_name = name_given(request, my_name)
    except ValueError as error:
        errors["my_name"] = sentence(error)
    if errors:
        return index_page(request, only_create=True, errors=errors, typed=typed, status_code=422)
    info, token = create_class(request, class_name)
    if own_name is not None:
        store_of(request).set_learner_name(learner_of(request), own_name)
    found = summary(info, TEACHER)
    context = {
        "info": found,
        "join_link": absolute(request, found.join_url),
        "teacher_link": absolute(request, f"/classes/teach/{token}"),
    }
    return private_page(request, "classes/created.html", context, 201)


@router.post("/classes/join", response_class=HTMLResponse, include_in_schema=False)
def join_by_code(request: Request, code: FormText = "", my_name: FormText = "") -> Response:
    """The Classes page's join form: join, then go to the class page."""
    typed = {"code": code, "my_name": my_name}
    try:
        info = class_of_code(request, code)
    except ClassNotFound:
        error = (
            f"No class has the code {code.strip()[:CODE_MAX_CHARS]!r}: check it with your "
            "teacher (a code is 8 letters and digits, such as ABCD-2345)."
        )
        return index_page(request, errors={"code": error}, typed=typed, status_code=404)
    try:
        own_name = name_given(request, my_name)
    except ValueError as error:
        errors = {"my_name": sentence(error)}
        return index_page(request, errors=errors, typed=typed, status_code=422)
    return joined(request, info, own_name, LEARNER)


def joined(request: Request, info: ClassInfo, own_name: str | None, role: str) -> Response:
    store = store_of(request)
    learner = learner_of(request)
    if own_name is not None:
        store.set_learner_name(learner, own_name)
    store.join_class(info.id, learner, role)
    return RedirectResponse(f"/classes/{info.id}", status_code=303, headers=NO_STORE)


def ask_page(
    request: Request,
    info: ClassInfo,
    kind: str,
    action: str,
    error: str | None = None,
    typed: str = "",
    status_code: int = 200,
) -> Response:
    """The page a join or teacher link opens: what it does, and a button that does it."""
    store = store_of(request)
    learner = learner_of(request)
    context = {
        "info": summary(info, LEARNER),
        "kind": kind,
        "action": action,
        "role": store.role_in(info.id, learner),
        "teachers": teacher_names(store.members(info.id)),
        "has_name": store.learner_name(learner) is not None,
        "error": error,
        "typed": typed,
        "name_max": NAME_MAX_CHARS,
    }
    return private_page(request, "classes/join.html", context, status_code)


@router.get("/join/{code}", response_class=HTMLResponse, include_in_schema=False)
def join_page(code: str, request: Request) -> Response:
    """Asks "Join class <name>?" and changes nothing (a link preview joins no one). Counted as
    a join attempt: the page names the class, so it would otherwise tell a guess it was right."""
    info = class_of_code(request, code)
    return ask_page(request, info, "join", f"/join/{shown_code(info.code)}")


@router.post("/join/{code}", include_in_schema=False)
def join(code: str, request: Request, my_name: FormText = "") -> Response:
    """Join the class of the link, then go to its page."""
    info = class_of_code(request, code)
    action = f"/join/{shown_code(info.code)}"
    try:
        own_name = name_given(request, my_name)
    except ValueError as error:
        message = sentence(error)
        return ask_page(request, info, "join", action, message, my_name, 422)
    return joined(request, info, own_name, LEARNER)


@router.get("/classes/teach/{token}", response_class=HTMLResponse, include_in_schema=False)
def teach_page(token: str, request: Request) -> Response:
    """Asks "Teach class <name>?" and changes nothing."""
    info = class_of_token(request, token)
    return ask_page(request, info, "teach", f"/classes/teach/{token}")


@router.post("/classes/teach/{token}", include_in_schema=False)
def teach(token: str, request: Request, my_name: FormText = "") -> Response:
    """Make this browser a teacher of the link's class, then go to its page."""
    info = class_of_token(request, token)
    try:
        own_name = name_given(request, my_name)
    except ValueError as error:
        message = sentence(error)
        action = f"/classes/teach/{token}"
        return ask_page(request, info, "teach", action, message, my_name, 422)
    return joined(request, info, own_name, TEACHER)


@router.post("/classes/{class_id}/leave", include_in_schema=False)
def leave_form(class_id: str, request: Request) -> Response:
    """The class page's Leave button: leave, then back to the Classes page."""
    leave(request, class_id)
    return RedirectResponse("/classes", status_code=303, headers=NO_STORE)


def picked_runs(query: Mapping[str, str]) -> list[str]:
    """The run ids in ``?runs=a,b`` (the runs ticked to compare), each once, others dropped."""
    ids = [part.strip() for part in query.get("runs", "").split(",")]
    return list(dict.fromkeys(i for i in ids if RUN_ID.fullmatch(i)))


@router.get("/classes/{class_id}", response_class=HTMLResponse, include_in_schema=False)
def class_page(class_id: str, request: Request, settings: SettingsDep) -> Response:
    """A class, for its members: a teacher's live table of every member's runs, or a learner's
    word on who teaches it (the twin of ``GET /api/classes/<id>``)."""
    info, role = membership(request, class_id)
    view = class_view(request, info, role, settings.runs_max_listed)
    listed = {run.id for run in view.runs}
    picked = [run_id for run_id in picked_runs(request.query_params) if run_id in listed]
    context: dict[str, Any] = {
        "view": view,
        "join_link": absolute(request, view.join_url),
        "picked": picked,
        "listed_max": settings.runs_max_listed,
        "max_compare": settings.tracking_max_runs,
        "data": {
            "id": view.id,
            "final_statuses": sorted(FINAL_STATUSES),
            "max_compare": settings.tracking_max_runs,
        },
    }
    return private_page(request, "classes/class.html", context)
