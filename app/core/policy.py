"""How long a class's biometric data is kept: the deployment's defaults (``app.settings``), a
class's overrides (``class.json``) and the policy they make together.

In days; 0 means forever (class photos) or never (erasing inactive students). Kept apart from
:mod:`app.services.privacy.retention` (which purges) so that the settings can name the defaults without
importing the services.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_RETENTION_DAYS = 3650
"""Ten years: longer is a mistake (hours or weeks meant), refused with a reason."""


@dataclass(frozen=True)
class RetentionPolicy:
    session_photo_days: int
    """Class photos (original and annotated copy) older than this are removed; 0: kept forever."""
    student_inactive_days: int
    """A student enrolled longer ago than this, who attended no session dated within as many
    days, is erased; 0: never."""

    def override(
        self, session_photo_days: int | None, student_inactive_days: int | None
    ) -> RetentionPolicy:
        """This policy with a class's overrides (``None``: keep this policy's value)."""
        return RetentionPolicy(
            self.session_photo_days if session_photo_days is None else session_photo_days,
            self.student_inactive_days if student_inactive_days is None else student_inactive_days,
        )


RETENTION_DEFAULTS = RetentionPolicy(session_photo_days=30, student_inactive_days=0)
"""Class photos serve to check and correct a session, which teachers do within days; 30 days
leaves a month for a disputed record. Erasing inactive students is off: a school ends an
enrolment when a pupil leaves (``DELETE``), and a long illness must not erase a child's
registration (see docs/data-protection.md)."""
