"""AWS wire protocols, parsed and serialized generically from botocore's service models."""

from .base import Protocol
from .cbor_rpc import CborProtocol
from .json_rpc import JsonProtocol
from .query import QueryProtocol
from .rest import RestJsonProtocol, RestXmlProtocol

PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        JsonProtocol(),
        QueryProtocol(),
        RestJsonProtocol(),
        RestXmlProtocol(),
        CborProtocol(),
    )
}

__all__ = ["PROTOCOLS", "Protocol"]
