"""Domain errors; :mod:`app.main` maps each to an HTTP status with the message as ``detail``."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses; the message is shown to the client."""

    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFoundError(ServiceError):
    status_code = 404


class ConflictError(ServiceError):
    status_code = 409


class InvalidInputError(ServiceError):
    status_code = 422


class PayloadTooLargeError(ServiceError):
    status_code = 413
