"""Access control: API keys, optionally scoped to classes.

With ``ROLLCALL_API_KEYS`` set, every ``/v1`` call needs a valid ``X-API-Key`` header. Two layers:

- :class:`ApiKeyMiddleware` *authenticates*: a ``/v1`` request (and a mobile-client request when
  ``ROLLCALL_LEGACY_AUTH=api-key``) without a valid key gets 401 before its body is read, so an
  anonymous client cannot make the server spool a 200 MB upload to disk.
- :func:`authorize_class` is a router-level dependency (``include_router(..., dependencies=...)``)
  that *authorises*: a key scoped to some classes gets 403 on any other class (``class_id`` is read
  from the route's path parameters, so endpoints need nothing of their own), and on calls that span
  every class, except listing classes (filtered to its classes), creating one of its classes and
  reading the audit log (its classes' events).

Every 403 is an event of the audit log (``access.denied``: the key's label, the class and the
other ids of the path, the route's template). A 401 is not: the caller is anonymous, and storing an
object for every anonymous request would let anyone fill the bucket; the middleware logs it.

Keys are compared in constant time: the SHA-256 digest of the presented key against the digest of
every configured key, always all of them (``hmac.compare_digest``), so neither the key's length nor
which key nearly matched leaks through timing. A key is never logged and never echoed in a
response; logs name keys by position (``key 2``).

Format of ``ROLLCALL_API_KEYS``: entries separated by ``;`` (or new lines); each entry is a key,
optionally followed by ``:`` and comma-separated class ids it is limited to::

    ROLLCALL_API_KEYS="adminkey-0123456789abcdef;teacher-a-9f8e7d6c5b4a:class-7a,class-7b"
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api_keys import ApiKey, key_digest, parse_api_keys
from app.core.ids import is_slug
from app.services.audit import MOBILE_APP_ACTOR, Action, AuditSubject
from app.settings import Settings

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
LegacyAuth = Literal["open", "api-key"]

WWW_AUTHENTICATE = f'ApiKey realm="rollcall", header="{API_KEY_HEADER}"'
_SCOPE_KEY = "rollcall.api_key"
"""Where the middleware leaves the authenticated :class:`ApiKey` in the ASGI scope."""

CLASS_INDEPENDENT_ROUTES = frozenset(
    {("GET", "/v1/classes"), ("POST", "/v1/classes"), ("GET", "/v1/audit")}
)
"""``/v1`` routes without ``{class_id}`` that a scoped key may call: the endpoint itself applies
the scope (the list is filtered, a class outside the scope cannot be created). Any other route
that spans every class is refused to a scoped key (403) until it is added here."""


@dataclass(frozen=True)
class AccessPolicy:
    """The configured keys and the mobile client's settings, built once per app."""

    keys: tuple[ApiKey, ...] = ()
    legacy_auth: LegacyAuth = "open"
    legacy_class: str = "default"

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        raw = settings.api_keys.get_secret_value() if settings.api_keys is not None else None
        return cls(
            keys=parse_api_keys(raw) if raw is not None else (),
            legacy_auth=settings.legacy_auth,
            legacy_class=settings.legacy_class,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def identify(self, presented: str | None) -> ApiKey | None:
        """The configured key equal to ``presented``, compared in constant time against all."""
        if presented is None:
            return None
        candidate = key_digest(presented)
        found: ApiKey | None = None
        for key in self.keys:
            # No early exit: every key is compared, whatever matched before.
            equal = hmac.compare_digest(candidate, key.digest)
            if equal:
                found = key
        return found


class ApiKeyMiddleware:
    """Authenticates protected paths before anything reads the request body (pure ASGI)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: AccessPolicy,
        prefixes: Iterable[str] = ("/v1",),
        legacy_paths: Iterable[str] = (),
    ):
        self.app = app
        self.policy = policy
        self.prefixes = tuple(p.rstrip("/") for p in prefixes)
        self.legacy_paths = frozenset(legacy_paths)

    def _protected(self, path: str) -> bool:
        if any(path == p or path.startswith(p + "/") for p in self.prefixes):
            return True
        return self.policy.legacy_auth == "api-key" and path in self.legacy_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.policy.enabled:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        presented = _header(scope, API_KEY_HEADER)
        key = self.policy.identify(presented)
        if key is not None:
            scope[_SCOPE_KEY] = key
        elif self._protected(path):
            reason = "missing" if presented is None else "invalid"
            client = scope.get("client")
            logger.warning(
                "refused %s %s from %s: %s API key",
                scope.get("method"),
                path,
                client[0] if client else "?",
                reason,
            )
            await _send_json(send, 401, {"detail": _unauthenticated_detail(presented)})
            return
        await self.app(scope, receive, send)


def _unauthenticated_detail(presented: str | None) -> str:
    if presented is None:
        return f"missing API key: send it in the {API_KEY_HEADER} header"
    return "invalid API key"


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    for header_name, value in scope.get("headers", []):
        if header_name.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
                (b"www-authenticate", WWW_AUTHENTICATE.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# --- dependencies -----------------------------------------------------------------------------


def access_policy(request: Request) -> AccessPolicy:
    policy: AccessPolicy = request.app.state.access_policy
    return policy


def _authenticated_key(request: Request, policy: AccessPolicy) -> ApiKey:
    key: ApiKey | None = request.scope.get(_SCOPE_KEY)
    if key is None:
        # Only reachable if the middleware is missing: fail closed, same answer as it gives.
        presented = request.headers.get(API_KEY_HEADER)
        key = policy.identify(presented)
        if key is None:
            raise HTTPException(
                status_code=401,
                detail=_unauthenticated_detail(presented),
                headers={"WWW-Authenticate": WWW_AUTHENTICATE},
            )
    return key


_AUDITED_PATH_IDS = ("student_id", "session_id", "photo_id", "sample_id")


def _forbidden(key: ApiKey, detail: str, request: Request, class_id: str | None) -> HTTPException:
    """The 403, logged and recorded in the audit log (ids only: values that are not ids, which
    path validation has not refused yet at this point, are left out). Blocking: it writes the
    event (call it from the thread pool)."""
    logger.warning("refused %s %s to %s: %s", request.method, request.url.path, key.label, detail)
    context = getattr(request.app.state, "context", None)
    if context is not None:
        ids = {
            name: str(value)
            for name, value in request.path_params.items()
            if name in _AUDITED_PATH_IDS and is_slug(str(value))
        }
        route_path = getattr(request.scope.get("route"), "path", None)
        subject = AuditSubject(
            class_id=class_id if class_id is not None and is_slug(class_id) else None,
            request=f"{request.method} {route_path}" if route_path else request.method,
            **ids,
        )
        context.audit.record(Action.ACCESS_DENIED, key.label, subject, outcome="denied")
    return HTTPException(status_code=403, detail=detail)


_documented_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from ROLLCALL_API_KEYS (possibly limited to some classes).",
)


async def authorize_class(
    request: Request, _: Annotated[str | None, Security(_documented_header)]
) -> None:
    """Router dependency of every ``/v1`` router: the key must allow the route's ``class_id``."""
    policy = access_policy(request)
    if not policy.enabled:
        return
    key = _authenticated_key(request, policy)
    class_id = request.path_params.get("class_id")
    if class_id is not None:
        if not key.allows(str(class_id)):
            detail = f"this API key may not access class {class_id!r}"
            raise await run_in_threadpool(_forbidden, key, detail, request, str(class_id))
        return
    route_path = getattr(request.scope.get("route"), "path", request.url.path)
    if key.classes is not None and (request.method, route_path) not in CLASS_INDEPENDENT_ROUTES:
        detail = "this API key is limited to some classes; this call spans every class"
        raise await run_in_threadpool(_forbidden, key, detail, request, None)


async def authorize_legacy(request: Request) -> None:
    """Router dependency of the mobile client's calls: with ``ROLLCALL_LEGACY_AUTH=api-key`` the
    key must allow ``ROLLCALL_LEGACY_CLASS``."""
    policy = access_policy(request)
    if policy.legacy_auth == "open":
        return
    key = _authenticated_key(request, policy)
    if not key.allows(policy.legacy_class):
        detail = f"this API key may not access class {policy.legacy_class!r}"
        raise await run_in_threadpool(_forbidden, key, detail, request, policy.legacy_class)


@dataclass(frozen=True)
class ClassScope:
    """What the caller's key allows, for endpoints that span classes (list, create, audit)."""

    key: ApiKey | None
    request: Request | None = None

    def allows(self, class_id: str) -> bool:
        return self.key is None or self.key.allows(class_id)

    @property
    def classes(self) -> frozenset[str] | None:
        """The classes the key is limited to; ``None``: every class."""
        return self.key.classes if self.key is not None else None

    def require(self, class_id: str) -> None:
        """403 (recorded in the audit log) unless the key allows ``class_id``; blocking (called
        from endpoints, which run in the thread pool)."""
        if self.key is None or self.key.allows(class_id):
            return
        detail = f"this API key may not access class {class_id!r}"
        if self.request is None:
            raise HTTPException(status_code=403, detail=detail)
        raise _forbidden(self.key, detail, self.request, class_id)


def class_scope(request: Request) -> ClassScope:
    policy = access_policy(request)
    if not policy.enabled:
        return ClassScope(None)
    return ClassScope(_authenticated_key(request, policy), request)


ClassScopeDep = Annotated[ClassScope, Depends(class_scope)]

UNAUTHORISED_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid API key (`X-API-Key` header)"},
    403: {"description": "The API key may not access this class"},
}


CONSOLE_LABEL = "console"
"""Who made a change when no API key was presented (the service runs open: the console)."""


def actor_label(request: Request) -> str:
    """Who is making a change, for the record: the API key's label (``key 2``), never the key."""
    key: ApiKey | None = request.scope.get(_SCOPE_KEY)
    return key.label if key is not None else CONSOLE_LABEL


def legacy_actor_label(request: Request) -> str:
    """Who calls the mobile client's endpoints: the key's label when one was presented (they
    need one with ``ROLLCALL_LEGACY_AUTH=api-key``), else ``mobile app``."""
    key: ApiKey | None = request.scope.get(_SCOPE_KEY)
    return key.label if key is not None else MOBILE_APP_ACTOR
