"""Classes: create, list, show (with the head's state and retention), change, delete."""

from app.services.classes.models import ClassInfo, ClassRetention, ModelProgress
from app.services.classes.service import (
    DEFAULT_CLASS_ID,
    RETENTION_FIELDS,
    ClassChanges,
    class_retention,
    create_class,
    delete_class,
    ensure_default_class,
    get_class,
    list_classes,
    train_head,
    update_class,
)

__all__ = [
    "DEFAULT_CLASS_ID",
    "RETENTION_FIELDS",
    "ClassChanges",
    "ClassInfo",
    "ClassRetention",
    "ModelProgress",
    "class_retention",
    "create_class",
    "delete_class",
    "ensure_default_class",
    "get_class",
    "list_classes",
    "train_head",
    "update_class",
]
