"""botocore's service models, loaded once per process and shared by every protocol."""

from __future__ import annotations

from functools import cache

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel, Shape

_loader = Loader()


@cache
def service_model(name: str) -> ServiceModel:
    """The botocore model of service `name` (botocore's service name, e.g. "lambda", "sts")."""
    return ServiceModel(_loader.load_service_model(name, "service-2"), service_name=name)


def member_location_name(name: str, shape: Shape) -> str:
    """The wire name of a structure member: its `locationName`, else the member name."""
    return shape.serialization.get("name", name)


def error_shape(model: ServiceModel, code: str) -> Shape | None:
    """The model's error shape for an error code, matched on shape name or `error.code`."""
    return _error_shapes(model).get(code)


@cache
def _error_shapes_cached(name: str) -> dict[str, Shape]:
    model = service_model(name)
    shapes: dict[str, Shape] = {}
    for shape in model.error_shapes:
        shapes[shape.name] = shape
        code = shape.metadata.get("error", {}).get("code")
        if code:
            shapes.setdefault(code, shape)
    return shapes


def _error_shapes(model: ServiceModel) -> dict[str, Shape]:
    return _error_shapes_cached(model.service_name)


def error_status(model: ServiceModel, code: str, default: int = 400) -> int:
    shape = error_shape(model, code)
    if shape is None:
        return default
    return int(shape.metadata.get("error", {}).get("httpStatusCode", default))


def is_read_only(operation: OperationModel) -> bool:
    """CloudTrail's `readOnly`: true for operations that only read."""
    return operation.name.startswith(_READ_PREFIXES)


_READ_PREFIXES = ("Get", "List", "Describe", "Head", "Lookup", "Search", "Select", "Query", "Scan")
