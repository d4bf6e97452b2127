"""CloudWatch Logs' errors, worded as AWS words them."""

from __future__ import annotations

from squall.core.errors import ServiceError


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameterException", message, status=400)


def group_not_found() -> ServiceError:
    return ServiceError(
        "ResourceNotFoundException", "The specified log group does not exist.", status=400
    )


def stream_not_found() -> ServiceError:
    return ServiceError(
        "ResourceNotFoundException", "The specified log stream does not exist.", status=400
    )


def group_exists() -> ServiceError:
    return ServiceError(
        "ResourceAlreadyExistsException", "The specified log group already exists", status=400
    )


def stream_exists() -> ServiceError:
    return ServiceError(
        "ResourceAlreadyExistsException", "The specified log stream already exists", status=400
    )
