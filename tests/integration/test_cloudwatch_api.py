"""The CloudWatch metrics API against a real squall server, in each protocol botocore speaks it.

boto3's default client speaks JSON 1.0 for CloudWatch; clients whose copy of the model lists
only `smithy-rpc-v2-cbor` or `query` speak the others, and raw signed requests check the wire
formats themselves. The Prometheus exposition, Embedded Metric Format lines and durability
across a restart are checked on a server running in this process, where the test can record
Lambda metrics as the Lambda service does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import boto3
import botocore.session
import cbor2
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.loaders import Loader

from squall.core.config import Settings
from squall.services.cloudwatch.service import CloudWatchService
from squall.store import open_store
from tests.support.aws import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    aws_cli,
    cli_json,
    client,
    signed_request,
)
from tests.support.servers import squall_thread

pytestmark = pytest.mark.timeout(60)

ACCOUNT = "000000000000"
JSON_10 = "application/x-amz-json-1.0"
TARGET = "GraniteServiceVersion20100801"
CBOR_PATH = f"/service/{TARGET}/operation/"
CBOR_HEADERS = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
XMLNS = {"cw": "http://monitoring.amazonaws.com/doc/2010-08-01/"}
ALL_STATISTICS = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"]
PROTOCOLS = ["json", "smithy-rpc-v2-cbor", "query"]


def namespace() -> str:
    return f"Test/{uuid.uuid4().hex[:10]}"


def base_time() -> datetime:
    """A 5-minute boundary 15 minutes ago: every datum of a test fits after it."""
    now = time.time()
    return datetime.fromtimestamp(now // 300 * 300 - 900, UTC)


@pytest.fixture(scope="module")
def cw(endpoint: str) -> Any:
    return client(endpoint, "cloudwatch")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cloudwatch-models")


def narrowed(endpoint: str, models: Path, protocol: str) -> Any:
    """A boto3 client whose copy of the model lists only `protocol` (botocore would otherwise
    always pick JSON)."""
    directory = models / protocol
    if not directory.exists():
        model = Loader().load_service_model("cloudwatch", "service-2")
        model["metadata"]["protocols"] = [protocol]
        model["metadata"]["protocol"] = protocol
        target = directory / "cloudwatch" / model["metadata"]["apiVersion"]
        target.mkdir(parents=True)
        (target / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.Session()
    session.set_config_variable("data_path", str(directory))
    return boto3.session.Session(botocore_session=session).client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]


def statistics(cw: Any, ns: str, name: str, start: datetime, end: datetime, **extra: Any) -> list:
    extra.setdefault("Statistics", ALL_STATISTICS)
    answer = cw.get_metric_statistics(
        Namespace=ns, MetricName=name, StartTime=start, EndTime=end, **extra
    )
    return sorted(answer["Datapoints"], key=lambda p: (p["Timestamp"], p.get("Unit", "")))


# --------------------------------------------------------------------------- protocols


def test_boto3_speaks_json_by_default(cw: Any) -> None:
    seen: list[Any] = []
    cw.meta.events.register("before-send", lambda request, **_: seen.append(request))
    cw.list_metrics(Namespace=namespace())
    assert seen[0].headers["X-Amz-Target"] == f"{TARGET}.ListMetrics".encode()
    assert seen[0].headers["Content-Type"] == JSON_10.encode()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_whole_api_over_each_protocol(endpoint: str, models: Path, protocol: str) -> None:
    cw = narrowed(endpoint, models, protocol)
    ns, base = namespace(), base_time()
    at = base + timedelta(seconds=30)
    dims = [{"Name": "Host", "Value": "a"}]
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {"MetricName": "Latency", "Dimensions": dims, "Timestamp": at, "Value": 10.0},
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "Timestamp": at,
                "Values": [20.0, 30.0],
                "Counts": [1.0, 2.0],
                "Unit": "None",
            },
        ],
    )
    end = base + timedelta(minutes=5)
    points = statistics(cw, ns, "Latency", base, end, Period=300, Dimensions=dims)
    assert points == [
        {
            "Timestamp": base,
            "SampleCount": 4.0,
            "Average": 22.5,
            "Sum": 90.0,
            "Minimum": 10.0,
            "Maximum": 30.0,
            "Unit": "None",
        }
    ]
    percentiles = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Latency",
        Dimensions=dims,
        StartTime=base,
        EndTime=base + timedelta(minutes=5),
        Period=300,
        ExtendedStatistics=["p50", "p99"],
    )["Datapoints"]
    assert percentiles[0]["ExtendedStatistics"] == {"p50": 20.0, "p99": 30.0}
    got = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": ns, "MetricName": "Latency", "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Sum",
                },
            },
            {"Id": "half", "Expression": "m / 2", "Label": "Half"},
        ],
        StartTime=base,
        EndTime=base + timedelta(minutes=5),
    )["MetricDataResults"]
    assert [(r["Id"], r["Label"], r["Values"], r["StatusCode"]) for r in got] == [
        ("m", "Latency", [90.0], "Complete"),
        ("half", "Half", [45.0], "Complete"),
    ]
    assert got[0]["Timestamps"] == [base]
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert listed == [{"Namespace": ns, "MetricName": "Latency", "Dimensions": dims}]
    error = error_of(cw.put_metric_data, Namespace="AWS/EC2", MetricData=[{"MetricName": "m"}])
    assert error["Code"] == "InvalidParameterValue"
    assert error["Message"] == "The value AWS/EC2 for parameter Namespace is invalid."


def test_raw_json_cbor_and_query_requests(endpoint: str) -> None:
    ns = namespace()
    body = json.dumps(
        {"Namespace": ns, "MetricData": [{"MetricName": "Raw", "Value": 4, "Unit": "Count"}]}
    ).encode()
    json_headers = {"Content-Type": JSON_10, "X-Amz-Target": f"{TARGET}.PutMetricData"}
    put = signed_request(endpoint, "monitoring", body=body, headers=json_headers)
    assert put.status_code == 200, put.text
    as_query = signed_request(
        endpoint,
        "monitoring",
        body=(
            "Action=GetMetricStatistics&Version=2010-08-01"
            f"&Namespace={ns}&MetricName=Raw&Period=60"
            f"&StartTime={(datetime.now(UTC) - timedelta(minutes=5)).isoformat()}"
            f"&EndTime={(datetime.now(UTC) + timedelta(minutes=1)).isoformat()}"
            "&Statistics.member.1=Sum&Statistics.member.2=SampleCount"
        )
        .replace("+00:00", "Z")
        .encode(),
        headers=FORM,
    )
    assert as_query.status_code == 200, as_query.text
    root = ET.fromstring(as_query.content)
    member = root.find("cw:GetMetricStatisticsResult/cw:Datapoints/cw:member", XMLNS)
    assert member is not None
    assert member.findtext("cw:Sum", namespaces=XMLNS) == "4.0"
    assert member.findtext("cw:Unit", namespaces=XMLNS) == "Count"
    as_cbor = signed_request(
        endpoint,
        "monitoring",
        path=CBOR_PATH + "ListMetrics",
        body=cbor2.dumps({"Namespace": ns}),
        headers=CBOR_HEADERS,
    )
    assert as_cbor.status_code == 200
    assert cbor2.loads(as_cbor.content)["Metrics"] == [
        {"Namespace": ns, "MetricName": "Raw", "Dimensions": []}
    ]
    refused = signed_request(
        endpoint,
        "monitoring",
        body=b"Action=PutMetricData&Version=2010-08-01&Namespace=AWS%2FX"
        b"&MetricData.member.1.MetricName=m&MetricData.member.1.Value=1",
        headers=FORM,
    )
    assert refused.status_code == 400
    error = ET.fromstring(refused.content).find("cw:Error", XMLNS)
    assert error is not None
    assert error.findtext("cw:Code", namespaces=XMLNS) == "InvalidParameterValue"


# --------------------------------------------------------------------------- GetMetricStatistics


def test_statistics_percentiles_and_periods(cw: Any) -> None:
    ns, base = namespace(), base_time()
    data = [
        {"MetricName": "Lat", "Timestamp": base + timedelta(minutes=m, seconds=5), "Value": v}
        for m in range(5)
        for v in (float(m * 100 + i) for i in range(1, 101))
    ]
    for chunk in range(0, len(data), 1000):
        cw.put_metric_data(Namespace=ns, MetricData=data[chunk : chunk + 1000])
    end = base + timedelta(minutes=5)
    per_minute = statistics(
        cw, ns, "Lat", base, end, Period=60, ExtendedStatistics=["p50", "p90", "p99", "p99.5"]
    )
    assert [p["Timestamp"] for p in per_minute] == [base + timedelta(minutes=m) for m in range(5)]
    first = per_minute[0]
    assert (first["SampleCount"], first["Sum"], first["Minimum"], first["Maximum"]) == (
        100.0,
        5050.0,
        1.0,
        100.0,
    )
    assert first["Average"] == 50.5
    assert first["ExtendedStatistics"] == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.5": 100.0}
    assert per_minute[4]["ExtendedStatistics"]["p50"] == 450.0
    whole = statistics(cw, ns, "Lat", base, end, Period=300, ExtendedStatistics=["p90"])
    assert len(whole) == 1
    assert whole[0]["SampleCount"] == 500.0
    assert whole[0]["Maximum"] == 500.0
    assert whole[0]["ExtendedStatistics"] == {"p90": 450.0}
    # a window that starts mid-period is rounded down to the minute
    shifted = statistics(cw, ns, "Lat", base + timedelta(seconds=50), end, Period=120)
    assert [p["Timestamp"] for p in shifted] == [base + timedelta(minutes=m) for m in (0, 2, 4)]
    assert [p["SampleCount"] for p in shifted] == [200.0, 200.0, 100.0]


def test_high_resolution_periods(cw: Any) -> None:
    ns, base = namespace(), base_time()
    data = [
        {
            "MetricName": "Fast",
            "Timestamp": base + timedelta(seconds=s),
            "Value": float(s),
            "StorageResolution": 1,
        }
        for s in (1, 2, 7, 61)
    ]
    cw.put_metric_data(Namespace=ns, MetricData=data)
    end = base + timedelta(minutes=2)
    by_second = statistics(cw, ns, "Fast", base, end, Period=1, Statistics=["Sum"])
    assert [(p["Timestamp"] - base).total_seconds() for p in by_second] == [1, 2, 7, 61]
    by_five = statistics(cw, ns, "Fast", base, end, Period=5, Statistics=["Sum"])
    assert [(p["Timestamp"] - base).total_seconds() for p in by_five] == [0, 5, 60]
    assert [p["Sum"] for p in by_five] == [3.0, 7.0, 61.0]
    by_minute = statistics(cw, ns, "Fast", base, end, Period=60, Statistics=["SampleCount"])
    assert [p["SampleCount"] for p in by_minute] == [3.0, 1.0]


def test_dimensions_must_match_exactly_and_units_filter(cw: Any) -> None:
    ns, base = namespace(), base_time()
    at = base + timedelta(seconds=10)
    both = [{"Name": "B", "Value": "2"}, {"Name": "A", "Value": "1"}]
    datum = {"MetricName": "M", "Dimensions": both, "Timestamp": at}
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {**datum, "Value": 1.0, "Unit": "Count"},
            {**datum, "Value": 3.0, "Unit": "Count"},
            {**datum, "Value": 2.0, "Unit": "Seconds"},
            {**datum, "Dimensions": both[:1], "Value": 100.0},
        ],
    )
    end = base + timedelta(minutes=1)
    reordered = list(reversed(both))
    mixed = statistics(cw, ns, "M", base, end, Period=60, Dimensions=reordered)
    assert [(p["Unit"], p["Sum"]) for p in mixed] == [("Count", 4.0), ("Seconds", 2.0)]
    counts = statistics(cw, ns, "M", base, end, Period=60, Dimensions=both, Unit="Count")
    assert [(p["Unit"], p["Sum"]) for p in counts] == [("Count", 4.0)]
    assert statistics(cw, ns, "M", base, end, Period=60, Dimensions=both, Unit="Bytes") == []
    partial = statistics(cw, ns, "M", base, end, Period=60, Dimensions=both[:1])
    assert [p["Sum"] for p in partial] == [100.0]
    assert statistics(cw, ns, "M", base, end, Period=60) == []  # no dimensions: another metric


def test_statistic_sets(cw: Any) -> None:
    ns, base = namespace(), base_time()
    at = base + timedelta(seconds=1)
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {
                "MetricName": "Set",
                "Timestamp": at,
                "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4},
                "Unit": "Milliseconds",
            },
            {
                "MetricName": "Same",
                "Timestamp": at,
                "StatisticValues": {"SampleCount": 3, "Sum": 6, "Minimum": 2, "Maximum": 2},
            },
        ],
    )
    end = base + timedelta(minutes=1)
    [point] = statistics(cw, ns, "Set", base, end, Period=60, ExtendedStatistics=["p50"])
    assert (point["SampleCount"], point["Sum"], point["Average"]) == (4.0, 10.0, 2.5)
    assert (point["Minimum"], point["Maximum"], point["Unit"]) == (1.0, 4.0, "Milliseconds")
    assert point["ExtendedStatistics"] == {}  # the values of a statistic set are unknown
    [same] = statistics(cw, ns, "Same", base, end, Period=60, ExtendedStatistics=["p50"])
    assert same["ExtendedStatistics"] == {"p50": 2.0}


def test_get_metric_statistics_validation(cw: Any) -> None:
    ns, base = namespace(), base_time()
    end = base + timedelta(minutes=5)
    common = {"Namespace": ns, "MetricName": "M", "StartTime": base}
    error = error_of(cw.get_metric_statistics, **common, EndTime=end, Period=7, Statistics=["Sum"])
    assert error["Code"] == "InvalidParameterValue"
    error = error_of(cw.get_metric_statistics, **common, EndTime=end, Period=60)
    assert error["Code"] == "InvalidParameterCombination"
    error = error_of(
        cw.get_metric_statistics, **common, EndTime=base, Period=60, Statistics=["Sum"]
    )
    assert error["Code"] == "InvalidParameterValue"
    error = error_of(
        cw.get_metric_statistics,
        **common,
        EndTime=base + timedelta(days=2),
        Period=60,
        Statistics=["Sum"],
    )
    assert error["Code"] == "InvalidParameterCombination"
    assert "exceeds the limit of 1,440" in error["Message"]
    error = error_of(
        cw.get_metric_statistics, **common, EndTime=end, Period=60, ExtendedStatistics=["p101"]
    )
    assert error["Code"] == "InvalidParameterValue"
    unknown = cw.get_metric_statistics(**common, EndTime=end, Period=60, Statistics=["Sum"])
    assert unknown["Datapoints"] == []
    assert unknown["Label"] == "M"


# --------------------------------------------------------------------------- PutMetricData


def test_put_metric_data_validation(cw: Any) -> None:
    ns = namespace()
    error = error_of(cw.put_metric_data, Namespace="AWS/Lambda", MetricData=[{"MetricName": "m"}])
    assert (error["Code"], error["Message"]) == (
        "InvalidParameterValue",
        "The value AWS/Lambda for parameter Namespace is invalid.",
    )
    too_many = [{"MetricName": "m", "Value": 1.0}] * 1001
    error = error_of(cw.put_metric_data, Namespace=ns, MetricData=too_many)
    assert error["Code"] == "InvalidParameterValue"
    assert "1000" in error["Message"]
    one = {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}
    both = {"MetricName": "m", "Value": 1.0, "StatisticValues": one}
    error = error_of(cw.put_metric_data, Namespace=ns, MetricData=[both])
    assert error["Code"] == "InvalidParameterCombination"
    old = datetime.now(UTC) - timedelta(days=15)
    error = error_of(
        cw.put_metric_data,
        Namespace=ns,
        MetricData=[{"MetricName": "m", "Value": 1.0, "Timestamp": old}] * 2,
    )
    assert error["Message"].splitlines() == [
        f"The parameter MetricData.member.{i}.Timestamp must specify a time within the past "
        "two weeks."
        for i in (1, 2)
    ]
    error = error_of(
        cw.put_metric_data,
        Namespace=ns,
        MetricData=[{"MetricName": "m", "Values": [1.0, 2.0], "Counts": [1.0]}],
    )
    assert error["Code"] == "InvalidParameterValue"
    error = error_of(
        cw.put_metric_data,
        Namespace=ns,
        MetricData=[{"MetricName": "m", "Value": 1.0, "StorageResolution": 5}],
    )
    assert error["Code"] == "InvalidParameterValue"
    assert cw.list_metrics(Namespace=ns)["Metrics"] == []  # nothing of a refused call was kept


# --------------------------------------------------------------------------- GetMetricData


def test_get_metric_data_stats_expressions_order_and_pages(cw: Any) -> None:
    ns, base = namespace(), base_time()
    data = []
    for minute in range(4):
        at = base + timedelta(minutes=minute, seconds=1)
        data.append({"MetricName": "A", "Timestamp": at, "Values": [1.0, float(minute + 1)]})
        if minute != 2:
            data.append({"MetricName": "B", "Timestamp": at, "Value": 10.0})
    cw.put_metric_data(Namespace=ns, MetricData=data)

    def stat(query_id: str, name: str, statistic: str, **extra: Any) -> dict[str, Any]:
        metric = {"Namespace": ns, "MetricName": name}
        return {
            "Id": query_id,
            "MetricStat": {"Metric": metric, "Period": 60, "Stat": statistic},
            **extra,
        }

    queries = [
        stat("a", "A", "Sum"),
        stat("b", "B", "Sum", ReturnData=False),
        stat("amax", "A", "p100", Label="A max"),
        {"Id": "ratio", "Expression": "(a + b) / 2"},
        {"Id": "total", "Expression": "SUM([a, b])"},
        {"Id": "avg", "Expression": "AVG(a) * 1", "Label": "mean"},
        {"Id": "all", "Expression": "SUM(METRICS())"},
    ]
    minutes = [base + timedelta(minutes=m) for m in range(4)]
    answer = cw.get_metric_data(
        MetricDataQueries=queries, StartTime=base, EndTime=base + timedelta(minutes=4)
    )
    results = {r["Id"]: r for r in answer["MetricDataResults"]}
    assert list(results) == ["a", "amax", "ratio", "total", "avg", "all"]
    assert results["a"]["Timestamps"] == list(reversed(minutes))  # newest first by default
    assert results["a"]["Values"] == [5.0, 4.0, 3.0, 2.0]
    assert results["a"]["Label"] == "A"
    assert results["amax"]["Label"] == "A max"
    assert results["amax"]["Values"] == [4.0, 3.0, 2.0, 1.0]
    assert dict(zip(results["ratio"]["Timestamps"], results["ratio"]["Values"], strict=True)) == {
        minutes[0]: 6.0,
        minutes[1]: 6.5,
        minutes[3]: 7.5,
    }
    assert results["total"]["Values"] == [15.0, 4.0, 13.0, 12.0]
    assert results["avg"]["Values"] == [3.5] * 4
    assert results["avg"]["Label"] == "mean"
    assert results["all"]["Values"] == [19.0, 7.0, 15.0, 13.0]  # a + b + amax
    ascending = cw.get_metric_data(
        MetricDataQueries=queries[:1],
        StartTime=base,
        EndTime=base + timedelta(minutes=4),
        ScanBy="TimestampAscending",
    )["MetricDataResults"][0]
    assert ascending["Timestamps"] == minutes
    assert ascending["Values"] == [2.0, 3.0, 4.0, 5.0]
    # pages of MaxDatapoints, the way boto3's paginator walks them
    paginator = cw.get_paginator("get_metric_data")
    pages = list(
        paginator.paginate(
            MetricDataQueries=queries[:1],
            StartTime=base,
            EndTime=base + timedelta(minutes=4),
            ScanBy="TimestampAscending",
            MaxDatapoints=3,
        )
    )
    assert len(pages) == 2
    values = [v for page in pages for r in page["MetricDataResults"] for v in r["Values"]]
    assert values == [2.0, 3.0, 4.0, 5.0]


def test_get_metric_data_rejects_bad_queries(cw: Any) -> None:
    ns, base = namespace(), base_time()
    window = {"StartTime": base, "EndTime": base + timedelta(minutes=5)}
    metric = {"Namespace": ns, "MetricName": "M"}
    good = {"Id": "m", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}
    for queries in (
        [{**good, "Id": "Upper"}],
        [good, good],
        [{"Id": "e", "Expression": "m +"}, good],
        [{"Id": "e", "Expression": "nothing * 2"}],
        [{"Id": "e", "Expression": "f"}, {"Id": "f", "Expression": "e"}],
        [{"Id": "m", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Median"}}],
        [{"Id": "m"}],
    ):
        error = error_of(cw.get_metric_data, MetricDataQueries=queries, **window)
        assert error["Code"] == "ValidationError", queries
    error = error_of(cw.get_metric_data, MetricDataQueries=[good], NextToken="garbage", **window)
    assert error["Code"] == "InvalidNextToken"
    empty = cw.get_metric_data(MetricDataQueries=[good], **window)["MetricDataResults"]
    assert empty == [
        {"Id": "m", "Label": "M", "Timestamps": [], "Values": [], "StatusCode": "Complete"}
    ]


# --------------------------------------------------------------------------- ListMetrics


def test_list_metrics_filters_and_pages(cw: Any) -> None:
    ns, other = namespace(), namespace()
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {"MetricName": "Hits", "Dimensions": [{"Name": "Page", "Value": "/"}], "Value": 1.0},
            {
                "MetricName": "Hits",
                "Dimensions": [{"Name": "Page", "Value": "/a"}, {"Name": "Host", "Value": "h"}],
                "Value": 1.0,
            },
            {"MetricName": "Misses", "Value": 1.0},
        ],
    )
    cw.put_metric_data(Namespace=other, MetricData=[{"MetricName": "Hits", "Value": 1.0}])

    def names(**filters: Any) -> list[tuple[str, list[tuple[str, str]]]]:
        metrics = cw.list_metrics(**filters)["Metrics"]
        return [
            (m["MetricName"], [(d["Name"], d["Value"]) for d in m["Dimensions"]]) for m in metrics
        ]

    assert names(Namespace=ns) == [
        ("Hits", [("Host", "h"), ("Page", "/a")]),
        ("Hits", [("Page", "/")]),
        ("Misses", []),
    ]
    assert names(Namespace=ns, MetricName="Misses") == [("Misses", [])]
    assert len(names(Namespace=ns, Dimensions=[{"Name": "Page"}])) == 2
    assert names(Namespace=ns, Dimensions=[{"Name": "Page", "Value": "/"}]) == [
        ("Hits", [("Page", "/")])
    ]
    assert names(Namespace=ns, Dimensions=[{"Name": "Host"}, {"Name": "Page", "Value": "/"}]) == []
    assert len(names(Namespace=ns, RecentlyActive="PT3H")) == 3
    assert names(Namespace=other) == [("Hits", [])]
    linked = cw.list_metrics(Namespace=other, IncludeLinkedAccounts=True)
    assert linked["OwningAccounts"] == [ACCOUNT]

    many = namespace()
    cw.put_metric_data(
        Namespace=many, MetricData=[{"MetricName": f"m{i:03d}", "Value": 1.0} for i in range(600)]
    )
    first = cw.list_metrics(Namespace=many)
    assert len(first["Metrics"]) == 500
    second = cw.list_metrics(Namespace=many, NextToken=first["NextToken"])
    assert len(second["Metrics"]) == 100
    assert "NextToken" not in second
    pages = cw.get_paginator("list_metrics").paginate(Namespace=many)
    listed = [m["MetricName"] for page in pages for m in page["Metrics"]]
    assert listed == [f"m{i:03d}" for i in range(600)]


# --------------------------------------------------------------------------- the AWS CLI


def test_aws_cli_put_and_get_metric_statistics(endpoint: str) -> None:
    ns, base = namespace(), base_time()
    at = (base + timedelta(seconds=5)).isoformat()
    end = (base + timedelta(minutes=5)).isoformat()
    put = aws_cli(
        endpoint,
        *f"cloudwatch put-metric-data --namespace {ns} --metric-name Cli --value 7".split(),
        *f"--unit Count --timestamp {at} --dimensions Env=test".split(),
    )
    assert put.returncode == 0, put.stderr
    got = cli_json(
        aws_cli(
            endpoint,
            *f"cloudwatch get-metric-statistics --namespace {ns} --metric-name Cli".split(),
            *["--dimensions", "Name=Env,Value=test", "--period", "300"],
            *f"--start-time {base.isoformat()} --end-time {end}".split(),
            *["--statistics", "Sum", "Maximum", "--extended-statistics", "p50"],
        )
    )
    assert got["Label"] == "Cli"
    [point] = got["Datapoints"]
    assert (point["Sum"], point["Maximum"], point["Unit"]) == (7.0, 7.0, "Count")
    assert point["ExtendedStatistics"] == {"p50": 7.0}
    # AWS CLI v1 prints timestamps as they came over the wire (epoch seconds in JSON and CBOR)
    stamp = point["Timestamp"]
    if isinstance(stamp, str):
        assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) == base
    else:
        assert datetime.fromtimestamp(stamp, UTC) == base


# --------------------------------------------------------------------------- in-process server


def parse_exposition(text: str) -> dict[str, float]:
    """`name{labels}` → value for each sample line; checks the comment lines' shape."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.split(" ")[1] in ("HELP", "TYPE"), line
            continue
        series, value = line.rsplit(" ", 1)
        samples[series] = float(value)
    return samples


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[Any, CloudWatchService, Path]]:
    service = CloudWatchService(Settings(data_dir=tmp_path), open_store(tmp_path))
    with squall_thread(tmp_path, [service]) as server:
        yield server, service, tmp_path


def test_prometheus_exposition_of_lambda_and_custom_metrics(
    local: tuple[Any, CloudWatchService, Path],
) -> None:
    server, service, _ = local

    def lambda_metric(name: str, dims: dict[str, str], value: float, unit: str) -> None:
        service.record(ACCOUNT, REGION, "AWS/Lambda", name, dims, value, unit)

    for qualifier, duration, error in (("live", 12.5, 0.0), (None, 7.5, 1.0), (None, 5.0, 0.0)):
        sets = [{"FunctionName": "f"}]
        if qualifier:
            sets.append({"FunctionName": "f", "Resource": f"f:{qualifier}"})
        for dims in sets:
            service.record(ACCOUNT, REGION, "AWS/Lambda", "Invocations", dims, 1, "Count")
            service.record(ACCOUNT, REGION, "AWS/Lambda", "Errors", dims, error, "Count")
            service.record(
                ACCOUNT, REGION, "AWS/Lambda", "Duration", dims, duration, "Milliseconds"
            )
            service.record(ACCOUNT, REGION, "AWS/Lambda", "ConcurrentExecutions", dims, 2, "Count")
    service.record(ACCOUNT, REGION, "AWS/Lambda", "Throttles", {"FunctionName": "g"}, 1, "Count")
    service.record(ACCOUNT, REGION, "Shop", "Orders", {"store": 'a"b', "2x": "y"}, 4.0, "Count")
    response = requests.get(f"{server.endpoint}/_squall/cloudwatch/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_exposition(response.text)
    where = f'account="{ACCOUNT}",region="{REGION}",function="f"'
    assert samples[f"squall_lambda_invocations_total{{{where}}}"] == 3
    assert samples[f'squall_lambda_invocations_total{{{where},resource="f:live"}}'] == 1
    assert samples[f"squall_lambda_errors_total{{{where}}}"] == 1
    assert samples[f"squall_lambda_duration_ms_sum{{{where}}}"] == 25
    assert samples[f"squall_lambda_duration_ms_count{{{where}}}"] == 3
    assert samples[f"squall_lambda_concurrent_executions{{{where}}}"] == 2
    throttled = f'account="{ACCOUNT}",region="{REGION}",function="g"'
    assert samples[f"squall_lambda_throttles_total{{{throttled}}}"] == 1
    custom = (
        f'account="{ACCOUNT}",region="{REGION}",namespace="Shop",name="Orders",'
        'dim_2x="y",store="a\\"b"'
    )
    assert samples[f"squall_metric{{{custom}}}"] == 4
    assert samples[f"squall_metric_count{{{custom}}}"] == 1
    assert "# TYPE squall_lambda_duration_ms summary" in response.text
    assert "# TYPE squall_lambda_invocations_total counter" in response.text
    bare = requests.get(f"{server.endpoint}/metrics", timeout=10)
    assert bare.status_code == 200
    assert parse_exposition(bare.text).keys() == samples.keys()
    # the AWS/Lambda metrics are CloudWatch metrics like any other
    cw = client(server.endpoint, "cloudwatch")
    now = datetime.now(UTC)
    [point] = cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Duration",
        Dimensions=[{"Name": "FunctionName", "Value": "f"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=["SampleCount", "Maximum"],
        ExtendedStatistics=["p50"],
    )["Datapoints"]
    assert (point["SampleCount"], point["Maximum"], point["Unit"]) == (3.0, 12.5, "Milliseconds")
    assert point["ExtendedStatistics"] == {"p50": 7.5}


def test_emf_lines_and_durability_across_a_restart(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    powertools = (
        f'{{"_aws":{{"Timestamp":{now_ms},"CloudWatchMetrics":[{{"Namespace":"ServerlessAirline",'
        '"Dimensions":[["service"]],"Metrics":[{"Name":"SuccessfulBooking","Unit":"Count"}]}]},'
        '"service":"booking","SuccessfulBooking":[1.0]}'
    )
    window = {
        "StartTime": datetime.now(UTC) - timedelta(minutes=5),
        "EndTime": datetime.now(UTC) + timedelta(minutes=1),
        "Period": 3600,
    }
    query = {
        "Namespace": "ServerlessAirline",
        "MetricName": "SuccessfulBooking",
        "Dimensions": [{"Name": "service", "Value": "booking"}],
        "Statistics": ["Sum", "SampleCount"],
        **window,
    }
    service = CloudWatchService(Settings(data_dir=tmp_path), open_store(tmp_path))
    with squall_thread(tmp_path, [service]) as server:
        assert service.record_emf(ACCOUNT, REGION, powertools) == 1
        assert service.record_emf(ACCOUNT, REGION, powertools) == 1
        assert service.record_emf(ACCOUNT, REGION, "START RequestId: 1 Version: $LATEST") == 0
        service.record(ACCOUNT, REGION, "AWS/Lambda", "Invocations", {"FunctionName": "f"}, 1)
        [point] = client(server.endpoint, "cloudwatch").get_metric_statistics(**query)["Datapoints"]
        assert (point["Sum"], point["SampleCount"], point["Unit"]) == (2.0, 2.0, "Count")
        # recorded after the last read: only the flush on shutdown writes it
        service.record_emf(ACCOUNT, REGION, powertools)
    reopened = CloudWatchService(Settings(data_dir=tmp_path), open_store(tmp_path))
    with squall_thread(tmp_path, [reopened]) as server:
        cw = client(server.endpoint, "cloudwatch")
        [point] = cw.get_metric_statistics(**query)["Datapoints"]
        assert point["Sum"] == 3.0
        assert cw.list_metrics(Namespace="ServerlessAirline")["Metrics"] == [
            {
                "Namespace": "ServerlessAirline",
                "MetricName": "SuccessfulBooking",
                "Dimensions": [{"Name": "service", "Value": "booking"}],
            }
        ]
        text = requests.get(f"{server.endpoint}/metrics", timeout=10).text
        samples = parse_exposition(text)
        totals = f'account="{ACCOUNT}",region="{REGION}",function="f"'
        assert samples[f"squall_lambda_invocations_total{{{totals}}}"] == 1
