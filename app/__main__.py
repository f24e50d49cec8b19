"""``python -m app`` serves PyTorch Explorer with uvicorn on the configured host and port."""

import uvicorn

from app.config import get_settings


def main() -> None:
    """Serve the app until interrupted."""
    settings = get_settings()
    print(f"PyTorch Explorer on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
