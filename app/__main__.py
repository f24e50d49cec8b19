"""``python -m app [APP]`` serves PyTorch Explorer (or the ``module:attribute`` app named) with
uvicorn on the configured host and port, behind the server's deadlines (``app.web.server``)."""

import argparse

import uvicorn

from app.config import get_settings
from app.web.server import uvicorn_options


def main(argv: list[str] | None = None) -> None:
    """Serve the app until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument(
        "app", nargs="?", default="app.main:app", help="the ASGI app (default: app.main:app)"
    )
    target = parser.parse_args(argv).app
    settings = get_settings()
    print(f"PyTorch Explorer on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(target, **uvicorn_options(settings))


if __name__ == "__main__":
    main()
