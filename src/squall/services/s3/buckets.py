"""Bucket operations: create, head, delete, list, location, notification configuration."""

from __future__ import annotations

import time
from typing import Any

from squall.core.context import RequestContext
from squall.services.base import operation

from . import errors
from .common import S3Base, as_datetime, owner
from .names import validate_bucket_name
from .notifications import validate_configuration
from .store import Bucket

DEFAULT_REGION = "us-east-1"


class BucketOperations(S3Base):
    @operation("CreateBucket")
    def create_bucket(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        name = request["Bucket"]
        validate_bucket_name(name)
        constraint = (request.get("CreateBucketConfiguration") or {}).get("LocationConstraint")
        if constraint == DEFAULT_REGION:
            raise errors.s3_error(
                "InvalidLocationConstraint", "The specified location-constraint is not valid", 400
            )
        region = constraint or ctx.region
        existing = self.store.bucket(name)
        if existing is not None:
            if existing.account == ctx.account_id:
                raise errors.bucket_already_owned_by_you(name)
            raise errors.bucket_already_exists(name)
        self.store.create_bucket(Bucket(name, ctx.account_id, region, time.time()))
        location = f"/{name}" if region == DEFAULT_REGION else f"http://{name}.s3.amazonaws.com/"
        return {"Location": location}

    @operation("HeadBucket")
    def head_bucket(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        return {"BucketRegion": bucket.region, "AccessPointAlias": False}

    @operation("DeleteBucket")
    def delete_bucket(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        if not self.store.is_empty(bucket.name):
            raise errors.bucket_not_empty(bucket.name)
        files: list[str] = []
        with self.store.transaction():
            for upload_id in self.store.uploads_in(bucket.name):
                files.extend(part.file for part in self.store.delete_upload(upload_id))
            self.store.delete_bucket(bucket.name)
        self.forget_files(files)
        return {}

    @operation("ListBuckets")
    def list_buckets(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        prefix = request.get("Prefix") or ""
        region = request.get("BucketRegion")
        after = request.get("ContinuationToken") or ""
        limit = request.get("MaxBuckets") or 10_000
        found = [
            bucket
            for bucket in self.store.buckets(ctx.account_id)
            if bucket.name.startswith(prefix)
            and bucket.name > after
            and (region is None or bucket.region == region)
        ]
        page = found[:limit]
        output: dict[str, Any] = {
            "Buckets": [
                {
                    "Name": bucket.name,
                    "CreationDate": as_datetime(bucket.created),
                    "BucketRegion": bucket.region,
                }
                for bucket in page
            ],
            "Owner": owner(ctx.account_id),
        }
        if prefix:
            output["Prefix"] = prefix
        if len(found) > limit:
            output["ContinuationToken"] = page[-1].name
        return output

    @operation("GetBucketLocation")
    def get_bucket_location(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        return {"LocationConstraint": None if bucket.region == DEFAULT_REGION else bucket.region}

    @operation("PutBucketNotificationConfiguration")
    def put_notification(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        config = validate_configuration(
            request.get("NotificationConfiguration") or {},
            bucket=bucket.name,
            account=bucket.account,
            region=bucket.region,
            targets=None if request.get("SkipDestinationValidation") else self.targets,
        )
        bucket.config["notification"] = config
        self.store.set_bucket_config(bucket.name, bucket.config)
        return {}

    @operation("GetBucketNotificationConfiguration")
    def get_notification(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        return dict(bucket.config.get("notification") or {})

    @operation("GetBucketVersioning")
    def get_bucket_versioning(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        # buckets are never versioned (PutBucketVersioning is not implemented): S3 answers an
        # empty configuration for a bucket whose versioning was never enabled
        self.owned_bucket(ctx, request["Bucket"])
        return {}
