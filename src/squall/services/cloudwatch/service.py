"""The CloudWatch service (`cloudwatch`, signing name `monitoring`): metrics."""

from __future__ import annotations

from squall.core.config import Settings
from squall.services.base import Service
from squall.store import Store


class CloudWatchService(Service):
    name = "cloudwatch"

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
