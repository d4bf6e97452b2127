"""CloudWatch's errors, with the codes of the model's error shapes."""

from __future__ import annotations

from squall.core.errors import ServiceError


def invalid_value(message: str) -> ServiceError:
    return ServiceError("InvalidParameterValue", message, status=400)


def invalid_combination(message: str) -> ServiceError:
    return ServiceError("InvalidParameterCombination", message, status=400)


def missing(message: str) -> ServiceError:
    return ServiceError("MissingParameter", message, status=400)


def validation(message: str) -> ServiceError:
    """What CloudWatch answers for a malformed GetMetricData query."""
    return ServiceError("ValidationError", message, status=400)


def invalid_next_token() -> ServiceError:
    return ServiceError("InvalidNextToken", "The NextToken is not valid.", status=400)
