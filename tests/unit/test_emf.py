"""Embedded Metric Format lines → metric datums, as CloudWatch Logs extracts them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from squall.core.config import Settings
from squall.services.cloudwatch.emf import Datum, parse_line
from squall.services.cloudwatch.service import CloudWatchService
from squall.store import open_store

# Printed by Powertools for AWS Lambda (Python) 3.x's Metrics utility, verbatim: the cold-start
# metric, then add_metric twice for one name, a high-resolution metric, add_dimension and
# add_metadata (metadata is a root member no directive refers to).
POWERTOOLS_COLD_START = (
    '{"_aws":{"Timestamp":1795751560059,"CloudWatchMetrics":[{"Namespace":"ServerlessAirline",'
    '"Dimensions":[["function_name","service"]],"Metrics":[{"Name":"ColdStart","Unit":"Count"}]}]},'
    '"function_name":"fn","service":"booking","ColdStart":[1.0]}'
)
POWERTOOLS_METRICS = (
    '{"_aws":{"Timestamp":1795751560059,"CloudWatchMetrics":[{"Namespace":"ServerlessAirline",'
    '"Dimensions":[["env","service"]],"Metrics":[{"Name":"SuccessfulBooking","Unit":"Count"},'
    '{"Name":"Latency","Unit":"Milliseconds","StorageResolution":1}]}]},"env":"prod",'
    '"service":"booking","booking_id":"abc","SuccessfulBooking":[1.0,2.0],"Latency":[12.5]}'
)
# The example of the brief, as Powertools' documentation shows it.
POWERTOOLS_DOCS = (
    '{"_aws":{"Timestamp":1656620400000,"CloudWatchMetrics":[{"Namespace":"ServerlessAirline",'
    '"Dimensions":[["service"]],"Metrics":[{"Name":"SuccessfulBooking","Unit":"Count"}]}]},'
    '"service":"booking","SuccessfulBooking":[1.0]}'
)


def emf(directives: list[dict[str, Any]], timestamp: Any = 1_700_000_000_000, **root: Any) -> str:
    return json.dumps({"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": directives}, **root})


def directive(
    metrics: list[dict[str, Any]], dimensions: Any = None, namespace: str = "App"
) -> dict[str, Any]:
    found: dict[str, Any] = {"Namespace": namespace, "Metrics": metrics}
    if dimensions is not None:
        found["Dimensions"] = dimensions
    return found


def test_powertools_documentation_example() -> None:
    assert parse_line(POWERTOOLS_DOCS) == [
        Datum(
            namespace="ServerlessAirline",
            name="SuccessfulBooking",
            dimensions={"service": "booking"},
            values=(1.0,),
            unit="Count",
            timestamp=1656620400.0,
            storage_resolution=60,
        )
    ]


def test_powertools_metrics_utility_output() -> None:
    [cold] = parse_line(POWERTOOLS_COLD_START)
    assert (cold.name, cold.dimensions, cold.values) == (
        "ColdStart",
        {"function_name": "fn", "service": "booking"},
        (1.0,),
    )
    booking, latency = parse_line(POWERTOOLS_METRICS)
    assert booking == Datum(
        "ServerlessAirline",
        "SuccessfulBooking",
        {"env": "prod", "service": "booking"},
        (1.0, 2.0),
        "Count",
        1795751560.059,
        60,
    )
    assert (latency.name, latency.values, latency.unit) == ("Latency", (12.5,), "Milliseconds")
    assert latency.storage_resolution == 1
    assert parse_line(POWERTOOLS_METRICS + "\n") == [booking, latency]


def test_a_number_or_an_array_of_numbers() -> None:
    line = emf([directive([{"Name": "A"}, {"Name": "B"}], [[]])], A=3, B=[1, 2.5, -4])
    first, second = parse_line(line)
    assert (first.values, first.unit, first.dimensions) == ((3.0,), "None", {})
    assert second.values == (1.0, 2.5, -4.0)


def test_one_datum_per_metric_and_dimension_set() -> None:
    line = emf(
        [
            directive([{"Name": "Hits"}], [["a"], ["a", "b"], []]),
            directive([{"Name": "Hits"}], [["b"]], namespace="Other"),
        ],
        a="1",
        b="2",
        Hits=1,
    )
    found = [(d.namespace, d.dimensions) for d in parse_line(line)]
    assert found == [
        ("App", {"a": "1"}),
        ("App", {"a": "1", "b": "2"}),
        ("App", {}),
        ("Other", {"b": "2"}),
    ]


def test_missing_dimensions_means_no_dimensions() -> None:
    [datum] = parse_line(emf([directive([{"Name": "M"}])], M=1))
    assert datum.dimensions == {}


@pytest.mark.parametrize(
    "line",
    [
        "",
        "START RequestId: 1 Version: $LATEST",
        '{"message": "hello"}',
        '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [',  # truncated
        '["_aws"]',
        '{"_aws": "x"}',
        '{"_aws": {"CloudWatchMetrics": []}, "M": 1}',
        json.dumps({"_aws": {"CloudWatchMetrics": [directive([{"Name": "M"}])]}, "M": 1}),
        emf([directive([{"Name": "M"}])], timestamp="1700000000000", M=1),
        emf([directive([{"Name": "M"}])], timestamp=True, M=1),
        json.dumps({"_aws": {"Timestamp": 1, "CloudWatchMetrics": {"Namespace": "x"}}}),
        '[1, 2, "_aws"]',
    ],
)
def test_lines_that_are_not_emf(line: str) -> None:
    assert parse_line(line) == []


def test_invalid_parts_are_skipped_and_the_rest_counts() -> None:
    line = emf(
        [
            directive([{"Name": "Good"}], [["d"]]),
            directive([{"Name": "Good"}], [["missing"], ["number"], ["empty"], ["d"]]),
            directive([{"Name": "Good"}], namespace="AWS/Lambda"),
            directive([{"Name": "Good"}], namespace=""),
            {"Metrics": [{"Name": "Good"}]},
            "not a directive",
            directive([{"Name": "Good"}], "not a list"),
            directive(
                [
                    {"Name": "Text"},
                    {"Name": "Flag"},
                    {"Name": "Absent"},
                    {"Name": "Mixed"},
                    {"Name": "TooMany"},
                    {"Name": "Empty"},
                    {"Name": "Huge"},
                    {"Unit": "Count"},
                    "Good",
                ]
            ),
        ],
        d="x",
        number=5,
        empty="",
        Good=1,
        Text="3",
        Flag=True,
        Mixed=[1, "2"],
        TooMany=list(range(101)),
        Empty=[],
        Huge=2.0**361,
    )
    found = [(d.name, d.dimensions) for d in parse_line(line)]
    assert found == [("Good", {"d": "x"}), ("Good", {"d": "x"})]


def test_units_and_storage_resolution() -> None:
    line = emf(
        [
            directive(
                [
                    {"Name": "A", "Unit": "Bytes/Second", "StorageResolution": 1},
                    {"Name": "B", "Unit": "Parsecs", "StorageResolution": 60},
                    {"Name": "C", "Unit": ["Count"], "StorageResolution": 5},
                ]
            )
        ],
        A=1,
        B=2,
        C=3,
    )
    found = [(d.name, d.unit, d.storage_resolution) for d in parse_line(line)]
    assert found == [("A", "Bytes/Second", 1), ("B", "None", 60), ("C", "None", 60)]


def test_too_many_dimensions_in_a_set() -> None:
    keys = {f"k{i}": "v" for i in range(31)}
    line = emf([directive([{"Name": "M"}], [list(keys)[:30], list(keys)])], M=1, **keys)
    [datum] = parse_line(line)
    assert len(datum.dimensions) == 30


def test_record_emf_records_every_value(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = CloudWatchService(Settings(data_dir=tmp_path), open_store(tmp_path))
        await service.start()
        try:
            assert service.record_emf("1", "r", POWERTOOLS_METRICS) == 2
            assert service.record_emf("1", "r", "plain text") == 0
            dims = {"env": "prod", "service": "booking"}
            series = service.metrics.find("1", "r", "ServerlessAirline", "SuccessfulBooking", dims)
            assert series is not None
            [point] = await service.metrics.points([series], 0, 2e9)
            assert (point.aggregate.count, point.aggregate.total) == (2.0, 3.0)
            assert point.unit == "Count"
            assert point.ts == 1795751560 // 60 * 60
            latency = service.metrics.find("1", "r", "ServerlessAirline", "Latency", dims)
            assert latency is not None
            [fine] = await service.metrics.points([latency], 0, 2e9)
            assert fine.ts == 1795751560  # a 1-second bucket: StorageResolution 1
        finally:
            await service.stop()

    asyncio.run(scenario())
