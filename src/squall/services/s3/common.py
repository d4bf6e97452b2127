"""What the S3 handlers share: the stores, bucket ownership checks, time formats, and
notifications fired as objects change."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from squall.core.context import RequestContext

from . import errors
from .files import ObjectFiles
from .notifications import S3_PRINCIPAL, FunctionTargets, bucket_arn, event_principal, publish
from .store import Bucket, S3Store

log = logging.getLogger("squall.s3")

MAX_PUT_SIZE = 5 * 1024**3  # one PutObject or UploadPart: 5 GiB


class S3Base:
    """State and helpers of the S3 service; the operation mixins build on it."""

    store: S3Store
    files: ObjectFiles
    targets: FunctionTargets | None

    def owned_bucket(self, ctx: RequestContext, name: str) -> Bucket:
        """The bucket `name` if the caller's account owns it; S3's 404 or 403 otherwise."""
        bucket = self.store.bucket(name)
        if bucket is None:
            raise errors.no_such_bucket(name)
        if bucket.account != ctx.account_id:
            raise errors.access_denied()
        return bucket

    def notify(
        self,
        ctx: RequestContext,
        bucket: Bucket,
        event_name: str,
        key: str,
        *,
        size: int | None = None,
        etag: str | None = None,
    ) -> None:
        """Queue the bucket's notifications for one change. Call inside the transaction that
        makes the change: the events are durable exactly when the change is."""
        config = bucket.config.get("notification")
        if not config or self.targets is None:
            return
        publish(
            _Permitted(self.targets, bucket),
            config,
            event_name=event_name,
            key=key,
            bucket=bucket.name,
            region=bucket.region,
            request_id=ctx.request_id,
            principal_id=event_principal(ctx.principal),
            owner_id=owner_principal(bucket.account),
            source_ip=ctx.source_ip,
            size=size,
            etag=etag,
        )

    def forget_files(self, names: list[str]) -> None:
        """Delete files no row points at any more (after the transaction that unlinked them)."""
        if names:
            try:
                self.files.delete(names)
            except OSError:
                log.exception("could not delete object files; they are collected at restart")


class _Permitted:
    """The function targets as a bucket's events reach them: an event goes to a function only
    while its resource policy lets S3 invoke it for this bucket (as on AWS, where S3's invoke
    is refused once the permission is removed)."""

    def __init__(self, targets: FunctionTargets, bucket: Bucket) -> None:
        self._targets = targets
        self._bucket = bucket

    def function_exists(self, arn: str) -> bool:
        return self._targets.function_exists(arn)

    def allows(self, arn: str, *, principal: str, source_arn: str, source_account: str) -> bool:
        return self._targets.allows(
            arn, principal=principal, source_arn=source_arn, source_account=source_account
        )

    def enqueue(self, arn: str, payload: bytes) -> None:
        if not self._targets.allows(
            arn,
            principal=S3_PRINCIPAL,
            source_arn=bucket_arn(self._bucket.name),
            source_account=self._bucket.account,
        ):
            log.warning(
                "not invoking %s for bucket %s: its policy no longer allows %s",
                arn,
                self._bucket.name,
                S3_PRINCIPAL,
            )
            return
        self._targets.enqueue(arn, payload)


def owner(account: str) -> dict[str, str]:
    return {"DisplayName": "squall", "ID": canonical_id(account)}


def canonical_id(account: str) -> str:
    return hashlib.sha256(f"squall-canonical:{account}".encode()).hexdigest()


def owner_principal(account: str) -> str:
    """The bucket owner's `principalId` in event records (an opaque id, as S3 shows)."""
    return f"A{hashlib.sha256(account.encode()).hexdigest()[:13].upper()}"


def whole_seconds(timestamp: float) -> datetime:
    """A time as HTTP headers and S3's write results carry it: whole seconds."""
    return datetime.fromtimestamp(int(timestamp), UTC)


def as_datetime(timestamp: float) -> datetime:
    """A timestamp with the millisecond precision S3 shows in listings."""
    return datetime.fromtimestamp(round(timestamp, 3), UTC)


def quoted(md5_hex: str) -> str:
    return f'"{md5_hex}"'
