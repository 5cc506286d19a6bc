"""Domain errors. They say what is wrong, never how HTTP reports it: :mod:`app.routers.errors`
maps each type to a status code, and renders the few that suggest a next request."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses; the message is shown to the client."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFoundError(ServiceError):
    """The class, student, session or photo does not exist."""


class ConflictError(ServiceError):
    """The id is taken, or the thing is being changed by another request."""


class InvalidInputError(ServiceError):
    """The input cannot be used (not an image, no face, a bad name...)."""


class PayloadTooLargeError(ServiceError):
    """An upload over the size or pixel limit."""


class NameAmbiguousError(ConflictError):
    """Several students of the class have this name: photos must name one of them by id."""

    def __init__(self, class_id: str, name: str, student_ids: list[str]):
        ids = ", ".join(repr(student_id) for student_id in student_ids)
        super().__init__(
            f"{len(student_ids)} students of class {class_id!r} are called {name!r} ({ids})"
        )
        self.class_id = class_id
        self.name = name
        self.student_ids = student_ids


class NameTakenError(ConflictError):
    """A student of this name is already enrolled (a new registration by name is refused)."""

    def __init__(self, class_id: str, name: str, student_id: str):
        super().__init__(
            f"a student called {name!r} already exists in class {class_id!r} (id {student_id!r})"
        )
        self.class_id = class_id
        self.name = name
        self.student_id = student_id


class StudentWithoutPhotosError(ConflictError):
    """The id is claimed, but no photo of it is stored yet: another registration is storing its
    photos, or one was cut off before its first photo."""

    def __init__(self, class_id: str, student_id: str):
        super().__init__(
            f"student {student_id!r} is being registered by another request, or an earlier "
            f"registration was cut off before storing a photo"
        )
        self.class_id = class_id
        self.student_id = student_id


class PhotoPurgedError(NotFoundError):
    """The images of a session photo were removed under the retention policy (its attendance
    facts are kept)."""


FoundFace = tuple[tuple[float, float, float, float], float]
"""A face found on a photo: its box ``(x1, y1, x2, y2)`` and detection score."""


class SeveralFacesError(InvalidInputError):
    """A registration photo shows several faces and none is clearly the student's: ``faces``
    are all of them, largest first; the request may name one (``face``)."""

    def __init__(self, message: str, photo_index: int, faces: list[FoundFace]):
        super().__init__(message)
        self.photo_index = photo_index
        self.faces = faces
