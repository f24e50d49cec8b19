"""Who may see and change which run (issue 16, item 2).

A run is read by anyone who has its link (its id is 128 random bits): its page, charts, stream
and downloads, marked read-only for all but those who control it. Lists (``/runs``,
``GET /api/runs``, the lessons' run pickers) show only what a learner may see: their own runs,
the runs of the classes they teach and, on the machine the app runs alone on, the runs made
before learners existed ("earlier runs", owner None). Cancel, delete and resume-from are the
owner's, or a teacher's of a class the owner was in when they launched it; others get 403.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from app.jobs.store import Run, RunStore
from app.web.identity import learner_of

# What an action on a run is called in a refusal.
ACTIONS = {"cancel": "cancel", "delete": "delete", "resume": "resume from"}


class NotYours(PermissionError):
    """A learner asked to change a run that is not theirs: the app's 403."""

    def __init__(self, run: Run, action: str) -> None:
        verb = ACTIONS.get(action, action)
        super().__init__(
            f"Run {run.id} is another learner's: only they (or their teacher) can {verb} it. "
            f"Anyone with its link can still open it read-only at /runs/{run.id}."
        )
        self.run_id = run.id
        self.action = action


@dataclass(frozen=True)
class Viewer:
    """The requesting learner, and whether this request may see the earlier runs."""

    learner: str
    earlier: bool = False


def on_this_machine(request: Request) -> bool:
    """Whether the request comes from the machine the app runs on (a loopback address)."""
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def viewer_of(request: Request) -> Viewer:
    """Who asks. Runs made before learners existed belong to nobody: they are shown, as
    "earlier runs", only on the machine of an app that runs alone (never to a class)."""
    settings = request.app.state.settings
    earlier = settings.runner == "local" and on_this_machine(request)
    return Viewer(learner=learner_of(request), earlier=earlier)


def may_control(store: RunStore, viewer: Viewer, run: Run) -> bool:
    """Whether ``viewer`` may cancel, delete or resume from ``run``."""
    if run.owner is None:
        return viewer.earlier
    return run.owner == viewer.learner or store.teaches(viewer.learner, run)


def require_control(store: RunStore, viewer: Viewer, run: Run, action: str) -> None:
    """``NotYours`` (a 403 that says why, and that the run is still readable) unless ``viewer``
    controls ``run``."""
    if not may_control(store, viewer, run):
        raise NotYours(run, action)


def visible_runs(store: RunStore, viewer: Viewer | None, limit: int) -> list[Run]:
    """The runs ``viewer`` sees in lists, newest first; none without a viewer."""
    if viewer is None:
        return []
    return store.visible(viewer.learner, earlier=viewer.earlier, limit=limit)


class LearnerRuns:
    """The app's runs as one learner's lesson page reads them: any run by its id (as its link
    allows), but only the runs this learner sees in the lists the page offers."""

    def __init__(self, runs: Any, viewer: Viewer | None) -> None:
        self.store: RunStore = runs.store
        self.artifacts = runs.artifacts
        self.viewer = viewer

    def listed(self, limit: int) -> list[Run]:
        """The runs this learner sees, newest first (none for a page built with no learner)."""
        return visible_runs(self.store, self.viewer, limit)
