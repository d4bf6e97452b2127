"""Assembles the server from settings: store, identities, services, edge; runs it with uvicorn."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys

import uvicorn

from squall import __version__
from squall.core.config import Settings
from squall.doctor import probe_host
from squall.edge.app import EdgeApp
from squall.edge.audit import AuditLog
from squall.edge.auth import Authenticator
from squall.edge.router import Router
from squall.services.awslambda.service import LambdaService
from squall.services.awslambda.telemetry import Telemetry
from squall.services.base import Service
from squall.services.cloudwatch.service import CloudWatchService
from squall.services.iam.keys import AccessKeys
from squall.services.logs.service import LogsService
from squall.services.s3.service import S3Service
from squall.services.sts import StsService
from squall.store import BlobStore, Store, open_store

log = logging.getLogger("squall.server")


def build_services(settings: Settings, store: Store, blobs: BlobStore) -> list[Service]:
    logs = LogsService(settings, store)
    metrics = CloudWatchService(settings, store)
    telemetry = Telemetry(ingest=logs.ingest, record=metrics.record, record_emf=metrics.record_emf)
    functions = LambdaService(settings, store, blobs, telemetry=telemetry)
    objects = S3Service(settings, store, targets=functions.targets)
    functions.objects = objects  # Lambda code from S3
    return [StsService(), logs, metrics, objects, functions]


def build_app(settings: Settings, services: list[Service] | None = None) -> EdgeApp:
    """Everything the server needs, wired together; nothing runs until the lifespan starts.

    Call it on the thread that will run the event loop: the store's connection belongs to it.
    """
    store = open_store(settings.data_dir)
    blobs = BlobStore(settings.data_dir / "blobs")
    blobs.sweep_temp()
    keys = AccessKeys(store)
    services = build_services(settings, store, blobs) if services is None else services
    audit = AuditLog(store)

    async def close_store() -> None:
        store.close()

    return EdgeApp(
        settings,
        Router(services),
        Authenticator(keys, mode=settings.auth, default_region=settings.region),
        audit,
        on_startup=[audit.start, *(service.start for service in services)],
        on_shutdown=[*(service.stop for service in reversed(services)), audit.stop, close_store],
    )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # botocore's own debug output (model loading) drowns the request log
    logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLevelName(level.upper())))


def announce(settings: Settings) -> None:
    log.info("squall %s on %s (data dir %s)", __version__, settings.endpoint_url, settings.data_dir)
    if settings.auth == "any":
        log.warning(
            "AUTH IS OFF (--auth any): every access key is accepted and signatures are NOT "
            "checked. Never expose this server beyond this machine."
        )
    report = probe_host()
    missing = report.missing_protections()
    if missing:
        log.warning("sandbox protections unavailable on this host (see `squall doctor`):")
        for line in missing:
            log.warning("  - %s", line)


def listening_sockets(settings: Settings) -> list[socket.socket]:
    """The TCP port clients use, and the unix socket sandboxes reach the API through."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    tcp = socket.create_server((settings.host, settings.port), family=family, backlog=2048)
    path = settings.api_socket
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    os.chmod(path, 0o666)  # sandboxes run as an unprivileged uid; SigV4 still guards the API
    unix.listen(2048)
    return [tcp, unix]


def run(settings: Settings) -> None:
    configure_logging(settings.log_level)
    announce(settings)
    sockets = listening_sockets(settings)
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,  # open streams (live tails) are cancelled after this
        log_config=None,
    )
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        with contextlib.suppress(OSError):
            settings.api_socket.unlink()
