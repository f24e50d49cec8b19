"""The learner's own page and API (issue 16, item 1): who this browser is, a display name, and a
one-time link that carries the identity to another browser.

``/me`` shows the learner id, the name form and the link button (``static/js/me.js``);
``GET /api/me`` is its twin. A link opens ``/me/claim/<token>``, a page that asks before it acts:
the ``POST`` from its button uses the link up and gives that browser the learner's cookie. A
``GET`` changes nothing, so a chat app that previews the link, or another site that loads it in
an image, neither spends it nor signs a browser in as someone else.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, field_validator

from app.jobs.store import LinkRefused, RunStore
from app.web.admission import client_key
from app.web.errors import error_response
from app.web.identity import adopt, learner_of, token_of
from app.web.rates import rates_of
from app.web.schemas import error_responses
from app.web.templating import render

router = APIRouter(tags=["learners"])

# A name the teacher's table shows in one line.
NAME_MAX_CHARS = 40
# Long enough to open the link on a phone, short enough that a link seen over a shoulder is dead.
LINK_TTL = timedelta(minutes=15)
# Characters that are not text: control codes, line breaks other than a space, and the marks that
# reorder what follows them (a name must not make the teacher's table read backwards).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# The store's answer when a link does not work: its status and what the page says.
REFUSED = {
    "unknown": (404, "This identity link is not known here: check that it was copied whole."),
    "used": (410, "This identity link has already been used: a link works once."),
    "expired": (410, "This identity link has expired: a link works for 15 minutes."),
}
NO_STORE = {"Cache-Control": "no-store"}
# A link token is 22 characters of base64url; anything else is unknown without asking the store.
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def check_text(value: str, what: str, limit: int) -> str:
    """``value`` trimmed: 1 to ``limit`` characters, all of them text (``what`` names it in the
    message: "a display name", "a class name")."""
    text = value.strip()
    bounds = f"{what} is 1 to {limit} characters"
    if not text:
        raise ValueError(f"{bounds}, not empty")
    if len(text) > limit:
        raise ValueError(f"{bounds}, not {len(text)}")
    for char in text:
        if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            raise ValueError(
                f"{bounds} of text, without control characters (it has U+{ord(char):04X})"
            )
    return text


def check_name(value: str) -> str:
    """A display name: 1 to 40 characters after trimming, all of them text."""
    return check_text(value, "a display name", NAME_MAX_CHARS)


class Me(BaseModel):
    learner: str = Field(description="this browser's anonymous learner id")
    name: str | None = Field(description="the display name, null until one is given")
    token: str = Field(description="the signed id a script sends as X-Explorer-Learner")


class NameRequest(BaseModel):
    name: str = Field(examples=["Ada"], description=f"1 to {NAME_MAX_CHARS} characters")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class LinkCreated(BaseModel):
    url: str = Field(description="open it in the other browser (once, before expires_at)")
    expires_at: datetime


def store_of(request: Request) -> RunStore:
    store: RunStore = request.app.state.runs.store
    return store


def me_of(request: Request) -> Me:
    learner = learner_of(request)
    name = store_of(request).learner_name(learner)
    return Me(learner=learner, name=name, token=token_of(request))


@router.get("/api/me")
def me(request: Request, response: Response) -> Me:
    """Who this browser (or the script's ``X-Explorer-Learner``) is: the twin of ``/me``."""
    response.headers.update(NO_STORE)
    return me_of(request)


@router.post("/api/me", responses=error_responses(422))
def name_me(body: NameRequest, request: Request, response: Response) -> Me:
    """Give this learner a display name (1 to 40 characters; 422 names the limit otherwise)."""
    store_of(request).set_learner_name(learner_of(request), body.name)
    response.headers.update(NO_STORE)
    return me_of(request)


@router.post("/api/me/link", status_code=201, responses=error_responses(429))
def make_link(request: Request, response: Response) -> LinkCreated:
    """A one-time link that makes another browser this learner (15 minutes, once); 429 past
    ``identity_max_links_per_minute`` for the learner or for the client's address."""
    learner = learner_of(request)
    rates_of(request).hit(
        "identity_max_links_per_minute", f"learner:{learner}", f"client:{client_key(request)}"
    )
    token, expires = store_of(request).create_learner_link(learner, LINK_TTL)
    response.headers.update(NO_STORE)
    return LinkCreated(url=f"/me/claim/{token}", expires_at=expires)


@router.get("/me", response_class=HTMLResponse, include_in_schema=False)
def me_page(request: Request) -> Response:
    """This browser's learner: its id, the display name form and the identity link."""
    page = render(request, "me.html", {"me": me_of(request), "name_max": NAME_MAX_CHARS})
    page.headers.update(NO_STORE)
    return page


def checked(token: str) -> str:
    """The token when it looks like one (``LinkRefused("unknown")`` otherwise)."""
    if not TOKEN.fullmatch(token):
        raise LinkRefused("unknown")
    return token


def refused(request: Request, error: LinkRefused) -> Response:
    status, detail = REFUSED[error.reason]
    return error_response(request, status, detail, {"reason": error.reason}, headers=NO_STORE)


@router.get("/me/claim/{token}", response_class=HTMLResponse, include_in_schema=False)
def claim_page(token: str, request: Request) -> Response:
    """What the link carries, and a button to become that learner here (nothing is spent yet)."""
    store = store_of(request)
    try:
        learner = store.check_learner_link(checked(token))
    except LinkRefused as error:
        return refused(request, error)
    context = {
        "learner": learner,
        "name": store.learner_name(learner),
        "current": learner_of(request),
        "token": token,
    }
    page = render(request, "me.html", {"claim": context, "name_max": NAME_MAX_CHARS})
    page.headers.update(NO_STORE)
    return page


@router.post("/me/claim/{token}", include_in_schema=False)
def claim(token: str, request: Request) -> Response:
    """Use the link up: this browser becomes its learner, then goes to ``/me``."""
    try:
        learner = store_of(request).claim_learner_link(checked(token))
    except LinkRefused as error:
        return refused(request, error)
    adopt(request, learner)
    return RedirectResponse("/me", status_code=303, headers=NO_STORE)
