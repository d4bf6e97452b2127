"""The CloudWatch Logs service (`logs`, JSON 1.1): log groups, streams and events."""

from __future__ import annotations

from squall.core.config import Settings
from squall.services.base import Service
from squall.store import Store


class LogsService(Service):
    name = "logs"

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
