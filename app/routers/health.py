"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import schemas
from app.services.context import Context
from app.storage import StorageUnavailableError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=schemas.HealthOut, summary="The process is up")
async def healthz() -> schemas.HealthOut:
    return schemas.HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=schemas.ReadyOut,
    summary="Models loaded and storage reachable (503 otherwise)",
    responses={503: {"model": schemas.ReadyOut}},
)
def readyz(request: Request) -> JSONResponse:
    context: Context | None = getattr(request.app.state, "context", None)
    if context is None:
        body = schemas.ReadyOut(status="not ready", models=False, storage="not configured")
        return JSONResponse(body.model_dump(), status_code=503)
    try:
        context.store.ping()
    except StorageUnavailableError as error:
        body = schemas.ReadyOut(
            status="not ready",
            models=True,
            storage=context.store.description,
            detail=f"storage unavailable ({error.reason}): {error}",
        )
        return JSONResponse(body.model_dump(), status_code=503)
    body = schemas.ReadyOut(status="ready", models=True, storage=context.store.description)
    return JSONResponse(body.model_dump())
