"""The CloudWatch service (`cloudwatch`, signing name `monitoring`): metrics.

Besides the API, other services record metrics through `record` (the Lambda service's
`AWS/Lambda` metrics) and `record_emf` (functions' Embedded Metric Format log lines); both only
update memory. `GET /_squall/cloudwatch/metrics` (and the bare `GET /metrics`) is the Prometheus
text exposition.
"""

from __future__ import annotations

import time
from typing import Any

from squall.core.config import Settings
from squall.core.context import RequestContext
from squall.core.http import HttpRequest, HttpResponse
from squall.services.base import Request, Response, Service, operation
from squall.store import Store

from . import emf, ingest, prometheus, queries
from .metrics import MetricStore, Series

LIST_PAGE = 500
LISTED_FOR_S = 14 * 86400  # ListMetrics shows metrics published to in the last two weeks
RECENTLY_ACTIVE_S = 3 * 3600


class CloudWatchService(Service):
    name = "cloudwatch"

    def __init__(self, settings: Settings, store: Store, *, flush_interval: float = 1.0) -> None:
        self.settings = settings
        self.store = store
        self.metrics = MetricStore(store, flush_interval=flush_interval)

    # ------------------------------------------------------------------ for other services

    def record(  # noqa: PLR0917 (the positional signature other services call)
        self,
        account: str,
        region: str,
        namespace: str,
        name: str,
        dimensions: dict[str, str],
        value: float,
        unit: str = "None",
        timestamp: float | None = None,
    ) -> None:
        """Record one value (standard resolution) without blocking; `timestamp` in epoch
        seconds, default now."""
        self.metrics.record(account, region, namespace, name, dimensions, value, unit, timestamp)

    def record_many(
        self,
        account: str,
        region: str,
        namespace: str,
        items: list[tuple[str, dict[str, str], float, str]],
        timestamp: float | None = None,
    ) -> None:
        """Several (name, dimensions, value, unit) at once."""
        for name, dimensions, value, unit in items:
            self.metrics.record(
                account, region, namespace, name, dimensions, value, unit, timestamp
            )

    def record_emf(self, account: str, region: str, line: str) -> int:
        """Record the metrics of one Embedded Metric Format log line; the number of datums
        (metric and dimension set) recorded, 0 when the line is not EMF."""
        now = time.time()
        datums = [datum for datum in emf.parse_line(line) if emf.recordable(datum, now)]
        for datum in datums:
            self.metrics.record_values(
                account,
                region,
                datum.namespace,
                datum.name,
                datum.dimensions,
                values=datum.values,
                unit=datum.unit,
                timestamp=datum.timestamp,
                resolution=datum.storage_resolution,
            )
        return len(datums)

    def prometheus_text(self) -> str:
        return prometheus.text_exposition(self.metrics.snapshot(), time.time())

    # ------------------------------------------------------------------ lifecycle and URLs

    async def start(self) -> None:
        await self.metrics.start()

    async def stop(self) -> None:
        await self.metrics.stop()

    async def internal(self, request: HttpRequest, path: str) -> HttpResponse | None:
        if path != "metrics" or request.method not in ("GET", "HEAD"):
            return None
        body = self.prometheus_text().encode()
        return HttpResponse(
            200,
            [("Content-Type", prometheus.CONTENT_TYPE)],
            b"" if request.method == "HEAD" else body,
            label="cloudwatch metrics exposition",
        )

    # ------------------------------------------------------------------ operations

    @operation("PutMetricData")
    def put_metric_data(self, ctx: RequestContext, request: Request) -> Response:
        ingest.put_metric_data(self.metrics, ctx.account_id, ctx.region, request)
        return {}

    @operation("GetMetricStatistics")
    async def get_metric_statistics(self, ctx: RequestContext, request: Request) -> Response:
        return await queries.get_metric_statistics(
            self.metrics, ctx.account_id, ctx.region, request
        )

    @operation("GetMetricData")
    async def get_metric_data(self, ctx: RequestContext, request: Request) -> Response:
        return await queries.get_metric_data(self.metrics, ctx.account_id, ctx.region, request)

    @operation("ListMetrics")
    def list_metrics(self, ctx: RequestContext, request: Request) -> Response:
        now = time.time()
        window = RECENTLY_ACTIVE_S if request.get("RecentlyActive") == "PT3H" else LISTED_FOR_S
        matching = sorted(
            (
                series
                for series in self.metrics.in_region(ctx.account_id, ctx.region)
                if series.last_seen >= now - window and _matches(series, request)
            ),
            key=lambda s: (s.namespace, s.name, s.dimensions),
        )
        offset = queries.decode_token(request.get("NextToken"))
        page = matching[offset : offset + LIST_PAGE]
        response: dict[str, Any] = {
            "Metrics": [
                {
                    "Namespace": series.namespace,
                    "MetricName": series.name,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in series.dimensions],
                }
                for series in page
            ]
        }
        if request.get("IncludeLinkedAccounts"):
            response["OwningAccounts"] = [series.account for series in page]
        if offset + LIST_PAGE < len(matching):
            response["NextToken"] = queries.encode_token(offset + LIST_PAGE)
        return response


def _matches(series: Series, request: Request) -> bool:
    if "Namespace" in request and series.namespace != request["Namespace"]:
        return False
    if "MetricName" in request and series.name != request["MetricName"]:
        return False
    dimensions = dict(series.dimensions)
    for wanted in request.get("Dimensions") or []:
        if wanted["Name"] not in dimensions:
            return False
        if "Value" in wanted and dimensions[wanted["Name"]] != wanted["Value"]:
            return False
    return True
