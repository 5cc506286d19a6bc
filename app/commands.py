"""What the service and its commands (``python -m app.importer``, ``app.purge``, ``app.reseal``)
share: their logging, and the check of a ``--class`` argument."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from app.core.ids import is_slug


def configure_logging(level: str, packages: Sequence[str] = ("app", "ml")) -> None:
    """Log to stderr (unless the process already has a handler) at ``level`` for the service's
    own packages."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in packages:
        logging.getLogger(name).setLevel(level)


def class_id_is_valid(class_id: str) -> bool:
    """False, with the reason on stderr, when ``--class`` is not a class id."""
    if is_slug(class_id):
        return True
    sys.stderr.write(f"--class must match [a-z0-9][a-z0-9_-]{{0,63}}, got {class_id[:100]!r}\n")
    return False
