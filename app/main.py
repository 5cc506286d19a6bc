"""The FastAPI application: ``uv run uvicorn app.main:app``.

Models are loaded once, in the lifespan, before the first request (start-up fails if they cannot be
loaded). Every blocking call (models, storage) runs in the thread pool, never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from app.commands import configure_logging
from app.core.errors import ServiceError
from app.core.images import ImageError, ImageTooLargeError
from app.json_charset import JsonCharsetMiddleware
from app.routers import (
    audit,
    classes,
    console,
    health,
    imports,
    legacy,
    sessions,
    strangers,
    students,
)
from app.routers.errors import detail, extra_fields, status_code
from app.security import (
    API_KEY_HEADER,
    UNAUTHORISED_RESPONSES,
    AccessPolicy,
    ApiKeyMiddleware,
    authorize_class,
    authorize_legacy,
)
from app.services.context import Context
from app.services.privacy import RetentionPurger
from app.settings import Settings
from app.storage import (
    DataKeyError,
    ObjectNotFoundError,
    ObjectStore,
    ObjectUnreadableError,
    StorageUnavailableError,
    create_object_store,
    encrypt_at_rest,
    verify_data_key,
)
from ml.pipeline import FacePipeline, TooManyFacesError

logger = logging.getLogger(__name__)

API_DESCRIPTION = """\
Face-recognition attendance. Enrol each student of a class from one or more photos, then upload
photos of the class during a session: every recognised student is recorded present.

Ids are URL-safe slugs `[a-z0-9][a-z0-9_-]{0,63}`. Errors are `{"detail": "..."}` (a sentence;
request-validation errors add the field-by-field list as `errors`) with a 4xx status
(401 missing or invalid `X-API-Key` when the server has API keys, 403 key not allowed on this class,
404 unknown class/student/session, 409 id taken, 413 upload too large, 422 invalid input such as
not an image, no face or several faces on a registration photo) or 503 when storage is down (or a
stored object cannot be decrypted).
`/register/register-student` and `/mark/detect` are the mobile client's calls on the class
`ROLLCALL_LEGACY_CLASS` (`default` unless configured). `GET /v1/audit` lists who changed or looked
at what (ids only).
"""


def _queue_backfills(context: Context) -> None:
    if not context.backfill.models:
        return
    try:
        class_ids = context.records.classes.ids()
    except StorageUnavailableError as error:
        logger.warning("back-fill not queued, storage unavailable: %s", error)
        return  # queued again by the first request that reads each class
    for class_id in class_ids:
        context.backfill.request(class_id)


def create_app(
    settings: Settings | None = None,
    *,
    pipeline: FacePipeline | None = None,
    store: ObjectStore | None = None,
) -> FastAPI:
    """Build the application. ``pipeline`` and ``store`` are built from ``settings`` when not given
    (tests pass one pipeline to many apps: it is slow to build)."""
    config = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(config.log_level)
        active_pipeline = pipeline
        if active_pipeline is None:
            from ml.factory import build_pipeline

            # Raises when a model cannot be loaded: the server does not start.
            active_pipeline = await run_in_threadpool(build_pipeline, config.pipeline_config())
        if store is None:
            active_store = await run_in_threadpool(
                lambda: create_object_store(
                    **config.storage_kwargs(), create_bucket=config.create_bucket
                )
            )
        else:
            active_store = encrypt_at_rest(store, config.data_keyring())
        try:
            await run_in_threadpool(active_store.ping)
            await run_in_threadpool(verify_data_key, active_store)
        except DataKeyError as error:
            # A key that cannot open the stored data would answer every request with an error, or
            # write new data under another key: the server does not start.
            logger.error("refusing to start: %s", error)
            raise
        except StorageUnavailableError as error:
            # Not fatal: the S3 server may come up later; /readyz answers 503 until it does (and
            # an encrypted store checks its data key before its first read or write).
            logger.warning("storage not reachable yet: %s", error)
        context = Context.build(config, active_store, active_pipeline)
        app.state.context = context
        # Students registered before a face model was added get its embeddings in the background.
        await run_in_threadpool(_queue_backfills, context)
        # The school-wide cohort (every class's students) is read in the background from now.
        context.impostors.start()
        # Class photos and inactive students past their retention go at start-up and then every
        # ROLLCALL_PURGE_INTERVAL_HOURS (or from cron: python -m app.purge).
        purger = None
        if config.purge_interval_hours > 0:
            purger = RetentionPurger(context, config.purge_interval_hours * 3600.0)
            purger.start()
        app.state.retention = purger
        logger.info("rollcall ready: storage %s", active_store.description)
        try:
            yield
        finally:
            if purger is not None:
                await run_in_threadpool(purger.close)
            await run_in_threadpool(context.close)
            del app.state.context
            del app.state.retention

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from this service
    # (/static-offline-docs), never from a CDN, so the docs work on a machine without internet.
    app = FastAPIOffline(
        title="Rollcall",
        version="1.0.0",
        summary="Self-hosted face-recognition attendance",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        max_body_size=config.max_request_bytes,
    )
    legacy_paths = [route.path for route in legacy.router.routes if hasattr(route, "path")]
    _add_error_handlers(app, legacy_paths)
    # Access control (app/security.py): every /v1 router gets the class check; the middleware
    # below authenticates before any body is read.
    policy = AccessPolicy.from_settings(config)
    app.state.access_policy = policy
    v1_access: dict[str, Any] = {}
    if policy.enabled:
        v1_access = {
            "dependencies": [Depends(authorize_class)],
            "responses": UNAUTHORISED_RESPONSES,
        }
    app.include_router(health.router)
    app.include_router(console.router)  # the teachers' web console, open like /healthz
    app.include_router(legacy.router, dependencies=[Depends(authorize_legacy)])
    app.include_router(classes.router, **v1_access)
    app.include_router(students.router, **v1_access)
    app.include_router(sessions.router, **v1_access)
    app.include_router(strangers.router, **v1_access)
    app.include_router(audit.router, **v1_access)
    app.include_router(imports.build_router(config.import_max_archive_bytes), **v1_access)
    _add_access_middleware(app, config, policy, legacy_paths)
    # Outermost: every JSON reply, whoever wrote it, says charset=utf-8.
    app.add_middleware(JsonCharsetMiddleware)
    return app


def _add_access_middleware(
    app: FastAPI, config: Settings, policy: AccessPolicy, legacy_paths: list[str]
) -> None:
    """API keys first, CORS outermost (so that a browser's preflight needs no key)."""
    app.add_middleware(
        ApiKeyMiddleware, policy=policy, prefixes=("/v1",), legacy_paths=legacy_paths
    )
    if config.cors_origins:
        # Closed unless configured. Keys travel in a header, never in cookies: no credentials.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[API_KEY_HEADER, "Content-Type"],
            expose_headers=["Content-Disposition", "Retry-After"],
            allow_credentials=False,
            max_age=600,
        )


def _add_error_handlers(app: FastAPI, legacy_paths: list[str]) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        body: dict[str, Any] = {"detail": detail(error)}
        if request.url.path not in legacy_paths:
            body.update(extra_fields(error))
        return JSONResponse(body, status_code=status_code(error))

    @app.exception_handler(ImageError)
    async def image_error(_: Request, error: ImageError) -> JSONResponse:
        status = 413 if isinstance(error, ImageTooLargeError) else 422
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        brief = _brief(error.errors())
        body: dict[str, Any] = {"detail": describe_errors(brief)}
        # The mobile app prints the body of a refused registration: it gets the sentence only.
        if request.url.path not in legacy_paths:
            body["errors"] = jsonable_encoder(brief)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(TooManyFacesError)
    async def too_many_faces(_: Request, error: TooManyFacesError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"{error} (ROLLCALL_MAX_FACES_PER_PHOTO); send a photo of fewer people"},
            status_code=422,
        )

    @app.exception_handler(ObjectNotFoundError)
    async def vanished(_: Request, error: ObjectNotFoundError) -> JSONResponse:
        # Something was deleted by a concurrent request half-way through this one.
        return JSONResponse({"detail": "not found (changed meanwhile)"}, status_code=404)

    @app.exception_handler(ObjectUnreadableError)
    async def unreadable(_: Request, error: ObjectUnreadableError) -> JSONResponse:
        # A stored object that fails its integrity check (altered in the store, or written under
        # a data key this server does not have): not the client's fault, and retrying does not
        # help until an administrator restores the object or configures the key. Services that
        # can do without one object (the gallery, the head) skip it; this is the rest.
        logger.error("stored object unreadable: %s", error)
        return JSONResponse(
            {"detail": f"stored data unreadable ({error.why}); ask the administrator"},
            status_code=503,
        )

    @app.exception_handler(StorageUnavailableError)
    async def storage_down(_: Request, error: StorageUnavailableError) -> JSONResponse:
        logger.error("storage unavailable: %s", error)
        # The reason names the cause (unreachable, timed out, access denied...), never the
        # endpoint or bucket; clients retry after a few seconds.
        return JSONResponse(
            {"detail": f"storage unavailable ({error.reason}); try again later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )


ECHO_LIMIT = 100
"""Longest refused value a 422 quotes back."""


def _brief(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors with the refused values cut short: by default a 1 MB name comes
    back whole in the 422 (an amplifier, and a mirror for whatever a client sent)."""
    brief = []
    for error in errors:
        item = {k: v for k, v in dict(error).items() if k != "input"}
        value = error.get("input")
        if isinstance(value, str):
            item["input"] = value if len(value) <= ECHO_LIMIT else value[:ECHO_LIMIT] + "..."
        elif value is None or isinstance(value, int | float | bool):
            item["input"] = value
        brief.append(item)
    return brief


_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def describe_errors(errors: list[dict[str, Any]]) -> str:
    """``[{"loc": ["body", "student_name"], "msg": "Field required"}, ...]`` ->
    ``"student_name: Field required"`` (one clause per refused field, ``; `` between them)."""
    clauses = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        field = ".".join(part for part in loc if part not in _LOCATIONS) or ".".join(loc)
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "json_invalid":  # loc is ("body", <character offset>)
            reason = dict(error.get("ctx") or {}).get("error")
            field = "body"
            message = "not valid JSON" + (f" ({reason} at character {loc[-1]})" if reason else "")
        clauses.append(f"{field}: {message}" if field else message)
    return "; ".join(clauses) or "invalid request"


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """``app.main:app`` for uvicorn, built on first access (PEP 562), so that importing this
    module (tests, ``create_app``) never reads the environment."""
    global _default_app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _default_app is None:
        _default_app = create_app()
    return _default_app
