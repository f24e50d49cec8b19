"""Worker processes must import the test-only tasks by name, so the repo root goes on sys.path
before any fork server starts (pytest's importlib mode does not put it there)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
