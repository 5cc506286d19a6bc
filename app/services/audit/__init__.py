"""The audit log: who changed or looked at what, when (:mod:`.log`)."""

from app.records.documents import AuditSubject
from app.services.audit.log import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MAX_EVENTS,
    MOBILE_APP_ACTOR,
    SYSTEM_ACTOR,
    Action,
    AuditEntry,
    AuditLog,
    default_range,
)

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "MAX_EVENTS",
    "MOBILE_APP_ACTOR",
    "SYSTEM_ACTOR",
    "Action",
    "AuditEntry",
    "AuditLog",
    "AuditSubject",
    "default_range",
]
