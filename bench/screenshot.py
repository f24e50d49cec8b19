"""``python -m bench.screenshot docs/screenshot.png``: the softmax lesson as a browser shows it.

Starts the real server on a free port, opens the lesson in Chromium at 1280x900, waits for
the Plotly figures to draw, and saves a screenshot of the viewport.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.common import CHROMIUM, CHROMIUM_ARGS, chromium_available, serve

PAGE = "/lessons/softmax-cross-entropy"
VIEWPORT = {"width": 1280, "height": 900}


def screenshot(out: Path, page_path: str = PAGE) -> None:
    from playwright.sync_api import sync_playwright

    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="explorer-shot-") as tmp,
        serve(Path(tmp) / "data") as base,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base + page_path, wait_until="networkidle")
            page.wait_for_selector(".plot .main-svg", state="attached", timeout=30_000)
            page.wait_for_load_state("networkidle")
            # Fonts and Plotly's last layout pass, so the picture is the settled page.
            page.evaluate("document.fonts.ready")
            page.wait_for_timeout(300)
            if errors:
                raise RuntimeError(f"the page raised: {errors}")
            page.screenshot(path=str(out), full_page=False)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.screenshot", description=__doc__)
    parser.add_argument("out", type=Path, help="where to save the PNG")
    parser.add_argument("--page", default=PAGE, help=f"the path to open (default {PAGE})")
    args = parser.parse_args(argv)
    if not chromium_available():
        print(f"No Chromium at {CHROMIUM}: set EXPLORER_CHROMIUM or run 'make chromium'.")
        return 1
    screenshot(args.out, args.page)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
