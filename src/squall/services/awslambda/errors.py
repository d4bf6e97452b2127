"""The errors Lambda answers with, in its words."""

from __future__ import annotations

from squall.core.errors import ServiceError


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", message, status=404)


def conflict(message: str) -> ServiceError:
    return ServiceError("ResourceConflictException", message, status=409)


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameterValueException", message, status=400)


def revision_mismatch() -> ServiceError:
    return ServiceError(
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/"
        "GetAlias API to retrieve the latest Revision Id",
        status=412,
    )


def check_revision(given: str | None, current: str) -> None:
    if given is not None and given != current:
        raise revision_mismatch()
