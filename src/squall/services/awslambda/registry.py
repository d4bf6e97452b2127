"""Functions and layers: held in memory, written through to the store on every change.

Each function is one JSON document (its versions, aliases, tags, policies and settings) in
`lambda_functions`; each layer one in `lambda_layers`. Reads never touch the database: the
documents are loaded once at start-up, and every write replaces the row in a transaction
before the in-memory copy is used again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from squall.sandbox.spec import FunctionSpec
from squall.store import Store

from .names import LATEST, function_arn, layer_arn

MIGRATIONS = [
    """
    CREATE TABLE lambda_functions (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        doc BLOB NOT NULL,
        PRIMARY KEY (account, region, name)
    );
    CREATE TABLE lambda_layers (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        doc BLOB NOT NULL,
        PRIMARY KEY (account, region, name)
    )
    """,
]

Key = tuple[str, str, str]


def timestamp(at: float | None = None) -> str:
    """Lambda's `LastModified` format: `2024-01-02T03:04:05.678+0000`."""
    at = time.time() if at is None else at
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
    return f"{whole}.{int(at * 1000) % 1000:03d}+0000"


def new_revision() -> str:
    return str(uuid.uuid4())


@dataclass
class Version:
    """One version's configuration as Lambda reports it, plus where its code lives."""

    config: dict[str, Any]
    code: str  # sha256 hex of the zip in the code store
    layers: list[str] = field(default_factory=list)  # sha256 hex of each layer's zip, in order
    spec: FunctionSpec | None = None  # built on first invoke, dropped on change

    @property
    def number(self) -> str:
        return str(self.config["Version"])

    def to_doc(self) -> dict[str, Any]:
        return {"config": self.config, "code": self.code, "layers": self.layers}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Version:
        return cls(config=doc["config"], code=doc["code"], layers=list(doc.get("layers", [])))


@dataclass
class Function:
    account: str
    region: str
    name: str
    versions: dict[str, Version] = field(default_factory=dict)
    next_version: int = 1
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    reserved: int | None = None
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # qualifier ("" = none)
    event_invoke: dict[str, dict[str, Any]] = field(default_factory=dict)  # qualifier
    provisioned: dict[str, dict[str, Any]] = field(default_factory=dict)  # qualifier

    @property
    def key(self) -> Key:
        return (self.account, self.region, self.name)

    @property
    def arn(self) -> str:
        return function_arn(self.account, self.region, self.name)

    @property
    def latest(self) -> Version:
        return self.versions[LATEST]

    def published(self) -> list[Version]:
        numbers = sorted(int(v) for v in self.versions if v != LATEST)
        return [self.versions[str(n)] for n in numbers]

    def to_doc(self) -> dict[str, Any]:
        return {
            "versions": {number: v.to_doc() for number, v in self.versions.items()},
            "next_version": self.next_version,
            "aliases": self.aliases,
            "tags": self.tags,
            "reserved": self.reserved,
            "policies": self.policies,
            "event_invoke": self.event_invoke,
            "provisioned": self.provisioned,
        }

    @classmethod
    def from_doc(cls, key: Key, doc: dict[str, Any]) -> Function:
        return cls(
            account=key[0],
            region=key[1],
            name=key[2],
            versions={n: Version.from_doc(v) for n, v in doc["versions"].items()},
            next_version=doc.get("next_version", 1),
            aliases=doc.get("aliases", {}),
            tags=doc.get("tags", {}),
            reserved=doc.get("reserved"),
            policies=doc.get("policies", {}),
            event_invoke=doc.get("event_invoke", {}),
            provisioned=doc.get("provisioned", {}),
        )


@dataclass
class Layer:
    account: str
    region: str
    name: str
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_version: int = 1

    @property
    def key(self) -> Key:
        return (self.account, self.region, self.name)

    @property
    def arn(self) -> str:
        return layer_arn(self.account, self.region, self.name)

    def to_doc(self) -> dict[str, Any]:
        return {
            "versions": {str(n): v for n, v in self.versions.items()},
            "next_version": self.next_version,
        }

    @classmethod
    def from_doc(cls, key: Key, doc: dict[str, Any]) -> Layer:
        return cls(
            account=key[0],
            region=key[1],
            name=key[2],
            versions={int(n): v for n, v in doc["versions"].items()},
            next_version=doc.get("next_version", 1),
        )


class Registry:
    """Every function and layer, cached in memory and persisted on each change."""

    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate("lambda.registry", MIGRATIONS)
        self.functions: dict[Key, Function] = {}
        self.layers: dict[Key, Layer] = {}
        for account, region, name, doc in store.conn.execute(
            "SELECT account, region, name, doc FROM lambda_functions"
        ):
            key = (account, region, name)
            self.functions[key] = Function.from_doc(key, orjson.loads(doc))
        for account, region, name, doc in store.conn.execute(
            "SELECT account, region, name, doc FROM lambda_layers"
        ):
            key = (account, region, name)
            self.layers[key] = Layer.from_doc(key, orjson.loads(doc))

    def function(self, key: Key) -> Function | None:
        return self.functions.get(key)

    def save(self, function: Function) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO lambda_functions VALUES (?, ?, ?, ?)",
                (*function.key, orjson.dumps(function.to_doc())),
            )
        self.functions[function.key] = function

    def delete(self, function: Function) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "DELETE FROM lambda_functions WHERE account = ? AND region = ? AND name = ?",
                function.key,
            )
        self.functions.pop(function.key, None)

    def save_layer(self, layer: Layer) -> None:
        """Kept even with no versions left: version numbers are never reused."""
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO lambda_layers VALUES (?, ?, ?, ?)",
                (*layer.key, orjson.dumps(layer.to_doc())),
            )
        self.layers[layer.key] = layer

    def in_region(self, account: str, region: str) -> list[Function]:
        return sorted(
            (f for f in self.functions.values() if f.account == account and f.region == region),
            key=lambda f: f.name,
        )
