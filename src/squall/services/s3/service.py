"""The S3 service: buckets and objects on local disk, with notifications to functions."""

from __future__ import annotations

import logging

from squall.core.config import Settings
from squall.core.errors import ServiceError
from squall.services.base import Service
from squall.store import Store

from . import errors
from .buckets import BucketOperations
from .files import ObjectFiles
from .listing_ops import ListingOperations
from .multipart import MultipartOperations
from .notifications import FunctionTargets
from .objects import ObjectOperations
from .store import S3Store

log = logging.getLogger("squall.s3")

OBJECT_DIR = "s3"


class S3Service(
    BucketOperations, ObjectOperations, MultipartOperations, ListingOperations, Service
):
    name = "s3"
    allows_anonymous = False
    streamed_input = frozenset({"PutObject", "UploadPart"})
    # CloudTrail's S3 data events: object-level calls, audited without their parameters
    data_events = frozenset(
        {
            "GetObject",
            "HeadObject",
            "PutObject",
            "CopyObject",
            "DeleteObject",
            "DeleteObjects",
            "CreateMultipartUpload",
            "UploadPart",
            "UploadPartCopy",
            "CompleteMultipartUpload",
            "AbortMultipartUpload",
            "ListParts",
            "GetObjectTagging",
            "PutObjectTagging",
            "DeleteObjectTagging",
        }
    )

    def __init__(
        self, settings: Settings, store: Store, *, targets: FunctionTargets | None = None
    ) -> None:
        self.settings = settings
        self.store = S3Store(store)
        self.files = ObjectFiles(settings.data_dir / OBJECT_DIR)
        self.targets = targets

    def validation_error(self, message: str, protocol: str) -> ServiceError:
        # S3 has no ValidationException: a bad region name is its own error, the rest are
        # InvalidArgument
        if "locationConstraint" in message:
            return errors.s3_error(
                "InvalidLocationConstraint", "The specified location-constraint is not valid", 400
            )
        return errors.invalid_argument(message)

    async def start(self) -> None:
        removed = self.files.collect(self.store.referenced_files())
        if removed:
            log.info("removed %d object files left behind by an interrupted write", removed)
