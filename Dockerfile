# PyTorch Explorer: CPU-only PyTorch, served by uvicorn as a non-root user.
#   docker build -t pytorch-explorer .
#   docker run -p 8000:8000 -v explorer-data:/data pytorch-explorer
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU wheel from PyTorch's own index: PyPI's default torch pulls several GB of CUDA.
# Its own layer, so changing the app never downloads torch again.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The app finds templates/ and static/ next to its package (app/config.py ROOT), so the repo
# lives at /srv/explorer and the project is installed editable from there. A stub package
# first lets the dependencies install in a layer that only pyproject.toml invalidates; the
# editable finder maps "app" to /srv/explorer/app, where the real code lands below.
WORKDIR /srv/explorer
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && pip install --no-cache-dir -e . \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

COPY . .
# Bytecode now, since the non-root user cannot write __pycache__ next to root-owned sources.
RUN python -m compileall -q app \
    && groupadd --gid 10001 explorer \
    && useradd --create-home --uid 10001 --gid 10001 explorer \
    && mkdir /data \
    && chown 10001:10001 /data

ENV EXPLORER_HOST=0.0.0.0 \
    EXPLORER_PORT=8000 \
    EXPLORER_DATA_DIR=/data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('EXPLORER_PORT', '8000') + '/healthz', timeout=4)"]

CMD ["python", "-m", "app"]
