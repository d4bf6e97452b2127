"""Test doubles of AWS services whose handlers echo or derive their outputs from their inputs.

They exist to exercise the wire-protocol layer with real botocore operations: every handler
records the request it received (`service.calls[operation] = request`) so a test can check the
exact Python values the protocol layer produced, and answers with values derived from it so a
test can check what boto3 parsed back. Each one deliberately leaves some model operations
without a handler (those answer 501 NotImplemented).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from squall.core.context import RequestContext
from squall.core.errors import ServiceError
from squall.services.base import Request, Response, Service, operation

ACCOUNT = "000000000000"
FIXED_TIME = datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC)


class Recording(Service):
    """A service that remembers the last request of every operation."""

    def __init__(self) -> None:
        self.calls: dict[str, Request] = {}

    def record(self, name: str, request: Request) -> Request:
        self.calls[name] = request
        return request


# --------------------------------------------------------------------------- rest-json: lambda


class LambdaEcho(Recording):
    name = "lambda"

    def __init__(self) -> None:
        super().__init__()
        self.functions: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}

    @operation("CreateFunction")
    def create_function(self, ctx: RequestContext, request: Request) -> Response:
        self.record("CreateFunction", request)
        name = request["FunctionName"]
        zipped = request["Code"].get("ZipFile", b"")
        config = {
            "FunctionName": name,
            "FunctionArn": f"arn:aws:lambda:{ctx.region}:{ACCOUNT}:function:{name}",
            "Runtime": request.get("Runtime"),
            "Role": request["Role"],
            "Handler": request.get("Handler"),
            "CodeSize": len(zipped),
            "CodeSha256": base64.b64encode(hashlib.sha256(zipped).digest()).decode(),
            "Description": request.get("Description", ""),
            "Timeout": request.get("Timeout", 3),
            "MemorySize": request.get("MemorySize", 128),
            "LastModified": "2024-02-29T12:34:56.789+0000",
            "Version": "$LATEST",
            "Environment": {"Variables": request.get("Environment", {}).get("Variables", {})},
            "Layers": [{"Arn": arn, "CodeSize": 1024} for arn in request.get("Layers", [])],
            "Architectures": request.get("Architectures", ["x86_64"]),
            "EphemeralStorage": request.get("EphemeralStorage", {"Size": 512}),
            "State": "Active",
        }
        self.functions[name] = (config, request.get("Tags", {}))
        return config

    @operation("GetFunction")
    def get_function(self, ctx: RequestContext, request: Request) -> Response:
        self.record("GetFunction", request)
        config, tags = self._find(ctx, request["FunctionName"])
        qualifier = request.get("Qualifier")
        if qualifier:
            config = {**config, "Version": qualifier}
        return {
            "Configuration": config,
            "Code": {"RepositoryType": "S3", "Location": f"{ctx.endpoint_url}/code.zip"},
            "Tags": tags,
            "Concurrency": {"ReservedConcurrentExecutions": 7},
        }

    @operation("Invoke")
    def invoke(self, ctx: RequestContext, request: Request) -> Response:
        self.record("Invoke", request)
        self._find(ctx, request["FunctionName"])
        if request.get("InvocationType") == "Event":
            return {"StatusCode": 202}
        payload: bytes = request.get("Payload", b"")
        output: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": payload[::-1],
            "ExecutedVersion": request.get("Qualifier", "$LATEST"),
        }
        if b"fail" in payload:
            output["FunctionError"] = "Unhandled"
        if request.get("LogType") == "Tail":
            output["LogResult"] = base64.b64encode(b"START\nEND\n").decode()
        return output

    @operation("ListFunctions")
    def list_functions(self, ctx: RequestContext, request: Request) -> Response:
        self.record("ListFunctions", request)
        names = sorted(self.functions)
        start = int(request.get("Marker", "0"))
        size = request.get("MaxItems", 50)
        page = names[start : start + size]
        output: dict[str, Any] = {"Functions": [self.functions[n][0] for n in page]}
        if start + size < len(names):
            output["NextMarker"] = str(start + size)
        return output

    @operation("DeleteFunction")
    def delete_function(self, ctx: RequestContext, request: Request) -> Response:
        self.record("DeleteFunction", request)
        name = self._name(request["FunctionName"])
        self._find(ctx, name)
        del self.functions[name]
        return {"StatusCode": 204}

    def _find(self, ctx: RequestContext, name_or_arn: str) -> tuple[dict[str, Any], dict[str, str]]:
        name = self._name(name_or_arn)
        if name not in self.functions:
            arn = f"arn:aws:lambda:{ctx.region}:{ACCOUNT}:function:{name}"
            raise ServiceError(
                "ResourceNotFoundException", f"Function not found: {arn}", fields={"Type": "User"}
            )
        return self.functions[name]

    @staticmethod
    def _name(name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn.split(":")[6]
        return name_or_arn


# --------------------------------------------------------------------------- rest-xml: s3


class S3Echo(Recording):
    name = "s3"

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.tags: dict[str, list[dict[str, str]]] = {}

    @operation("PutObject")
    def put_object(self, ctx: RequestContext, request: Request) -> Response:
        self.record("PutObject", request)
        body: bytes = request.get("Body", b"")
        etag = '"' + hashlib.md5(body).hexdigest() + '"'
        self.objects[(request["Bucket"], request["Key"])] = {
            "Body": body,
            "ContentType": request.get("ContentType", "binary/octet-stream"),
            "Metadata": request.get("Metadata", {}),
            "ETag": etag,
            "LastModified": FIXED_TIME,
        }
        output = {"ETag": etag}
        for name in ("ChecksumCRC32", "ChecksumCRC32C"):
            if name in request:
                output[name] = request[name]
        return output

    @operation("GetObject")
    def get_object(self, ctx: RequestContext, request: Request) -> Response:
        self.record("GetObject", request)
        stored = self._object(request)
        body: bytes = stored["Body"]
        output = self._head(stored)
        wanted = request.get("Range")
        if wanted:
            first, last = _byte_range(wanted, len(body))
            body = body[first : last + 1]
            output["ContentRange"] = f"bytes {first}-{last}/{len(stored['Body'])}"
        output["ContentLength"] = len(body)
        output["Body"] = body
        return output

    @operation("HeadObject")
    def head_object(self, ctx: RequestContext, request: Request) -> Response:
        self.record("HeadObject", request)
        stored = self.objects.get((request["Bucket"], request["Key"]))
        if stored is None:
            raise ServiceError("NotFound", "Not Found", status=404)
        return {**self._head(stored), "ContentLength": len(stored["Body"])}

    @operation("PutBucketTagging")
    def put_bucket_tagging(self, ctx: RequestContext, request: Request) -> Response:
        self.record("PutBucketTagging", request)
        self.tags[request["Bucket"]] = request["Tagging"]["TagSet"]
        return {}

    @operation("GetBucketTagging")
    def get_bucket_tagging(self, ctx: RequestContext, request: Request) -> Response:
        self.record("GetBucketTagging", request)
        return {"TagSet": self.tags.get(request["Bucket"], [])}

    @operation("ListObjectsV2")
    def list_objects_v2(self, ctx: RequestContext, request: Request) -> Response:
        self.record("ListObjectsV2", request)
        bucket, prefix = request["Bucket"], request.get("Prefix", "")
        delimiter = request.get("Delimiter")
        contents: list[dict[str, Any]] = []
        prefixes: list[str] = []
        for (owner, key), stored in sorted(self.objects.items()):
            if owner != bucket or not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                if common not in prefixes:
                    prefixes.append(common)
                continue
            contents.append(
                {
                    "Key": key,
                    "LastModified": stored["LastModified"],
                    "ETag": stored["ETag"],
                    "Size": len(stored["Body"]),
                    "StorageClass": "STANDARD",
                }
            )
        output: dict[str, Any] = {
            "Name": bucket,
            "Prefix": prefix,
            "MaxKeys": request.get("MaxKeys", 1000),
            "KeyCount": len(contents) + len(prefixes),
            "IsTruncated": False,
            "Contents": contents,
            "CommonPrefixes": [{"Prefix": p} for p in prefixes],
        }
        if delimiter:
            output["Delimiter"] = delimiter
        return output

    def _object(self, request: Request) -> dict[str, Any]:
        stored = self.objects.get((request["Bucket"], request["Key"]))
        if stored is None:
            raise ServiceError(
                "NoSuchKey",
                "The specified key does not exist.",
                status=404,
                fields={"Key": request["Key"]},
            )
        return stored

    @staticmethod
    def _head(stored: dict[str, Any]) -> dict[str, Any]:
        return {
            "ContentType": stored["ContentType"],
            "Metadata": stored["Metadata"],
            "ETag": stored["ETag"],
            "LastModified": stored["LastModified"],
            "AcceptRanges": "bytes",
        }


def _byte_range(header: str, size: int) -> tuple[int, int]:
    first, _, last = header.removeprefix("bytes=").partition("-")
    if not first:
        return size - int(last), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


# --------------------------------------------------------------------------- json: dynamodb, logs


class DynamoDBEcho(Recording):
    name = "dynamodb"

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, dict[str, Any]] = {}

    @operation("PutItem")
    def put_item(self, ctx: RequestContext, request: Request) -> Response:
        self.record("PutItem", request)
        table = request["TableName"]
        old = self.items.get(table)
        self.items[table] = request["Item"]
        output: dict[str, Any] = {"ConsumedCapacity": {"TableName": table, "CapacityUnits": 1.5}}
        if request.get("ReturnValues") == "ALL_OLD" and old is not None:
            output["Attributes"] = old
        return output

    @operation("GetItem")
    def get_item(self, ctx: RequestContext, request: Request) -> Response:
        self.record("GetItem", request)
        table = request["TableName"]
        if table not in self.items:
            raise ServiceError("ResourceNotFoundException", "Requested resource not found")
        return {"Item": self.items[table]}


class LogsEcho(Recording):
    name = "logs"

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[tuple[str, str], list[dict[str, Any]]] = {}

    @operation("PutLogEvents")
    def put_log_events(self, ctx: RequestContext, request: Request) -> Response:
        self.record("PutLogEvents", request)
        stream = (request["logGroupName"], request["logStreamName"])
        if request["logGroupName"].startswith("missing"):
            raise ServiceError(
                "ResourceNotFoundException", "The specified log group does not exist."
            )
        ingested = int(FIXED_TIME.timestamp() * 1000)
        for event in request["logEvents"]:
            self.events.setdefault(stream, []).append({**event, "ingestionTime": ingested})
        return {"nextSequenceToken": f"{len(self.events[stream]):056d}"}

    @operation("GetLogEvents")
    def get_log_events(self, ctx: RequestContext, request: Request) -> Response:
        self.record("GetLogEvents", request)
        events = self.events.get((request["logGroupName"], request["logStreamName"]), [])
        start, end = request.get("startTime"), request.get("endTime")
        chosen = [
            e
            for e in events
            if (start is None or e["timestamp"] >= start) and (end is None or e["timestamp"] < end)
        ]
        return {
            "events": chosen[: request.get("limit", 10000)],
            "nextForwardToken": "f/1",
            "nextBackwardToken": "b/0",
        }


# --------------------------------------------------------------------------- query: sns, iam


class SnsEcho(Recording):
    name = "sns"

    @operation("Publish")
    def publish(self, ctx: RequestContext, request: Request) -> Response:
        self.record("Publish", request)
        return {"MessageId": "m-" + hashlib.sha1(request["Message"].encode()).hexdigest()[:12]}


class IamEcho(Recording):
    name = "iam"

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}

    @operation("CreateUser")
    def create_user(self, ctx: RequestContext, request: Request) -> Response:
        self.record("CreateUser", request)
        name = request["UserName"]
        if name in self.users:
            raise ServiceError(
                "EntityAlreadyExists", f"User with name {name} already exists.", status=409
            )
        path = request.get("Path", "/")
        user: dict[str, Any] = {
            "Path": path,
            "UserName": name,
            "UserId": "AIDA" + hashlib.sha1(name.encode()).hexdigest()[:17].upper(),
            "Arn": f"arn:aws:iam::{ACCOUNT}:user{path}{name}",
            "CreateDate": FIXED_TIME,
        }
        if request.get("Tags"):
            user["Tags"] = request["Tags"]
        self.users[name] = user
        return {"User": user}

    @operation("ListUsers")
    def list_users(self, ctx: RequestContext, request: Request) -> Response:
        self.record("ListUsers", request)
        users = [
            u
            for _, u in sorted(self.users.items())
            if u["Path"].startswith(request.get("PathPrefix", "/"))
        ]
        size = request.get("MaxItems", 100)
        output: dict[str, Any] = {"Users": users[:size], "IsTruncated": len(users) > size}
        if len(users) > size:
            output["Marker"] = users[size]["UserName"]
        return output


# --------------------------------------------------------------------------- cbor: cloudwatch


class CloudWatchEcho(Recording):
    name = "cloudwatch"

    def __init__(self) -> None:
        super().__init__()
        self.data: list[tuple[str, dict[str, Any]]] = []

    @operation("PutMetricData")
    def put_metric_data(self, ctx: RequestContext, request: Request) -> Response:
        self.record("PutMetricData", request)
        if request["Namespace"].startswith("AWS/"):
            raise ServiceError(
                "InvalidParameterValue",
                "The value AWS/ for parameter Namespace is invalid.",
            )
        self.data.extend((request["Namespace"], datum) for datum in request["MetricData"])
        return {}

    @operation("GetMetricData")
    def get_metric_data(self, ctx: RequestContext, request: Request) -> Response:
        self.record("GetMetricData", request)
        results = []
        for query in request["MetricDataQueries"]:
            metric = query["MetricStat"]["Metric"]
            matching = [
                datum
                for namespace, datum in self.data
                if namespace == metric["Namespace"] and datum["MetricName"] == metric["MetricName"]
            ]
            results.append(
                {
                    "Id": query["Id"],
                    "Label": metric["MetricName"],
                    "Timestamps": [d["Timestamp"] for d in matching],
                    "Values": [d["Value"] for d in matching],
                    "StatusCode": "Complete",
                }
            )
        return {"MetricDataResults": results, "Messages": []}

    @operation("ListMetrics")
    def list_metrics(self, ctx: RequestContext, request: Request) -> Response:
        self.record("ListMetrics", request)
        seen: list[dict[str, Any]] = []
        for namespace, datum in self.data:
            if request.get("Namespace") not in (None, namespace):
                continue
            metric = {
                "Namespace": namespace,
                "MetricName": datum["MetricName"],
                "Dimensions": datum.get("Dimensions", []),
            }
            if metric not in seen:
                seen.append(metric)
        return {"Metrics": seen}


class SdbEcho(Recording):
    """SimpleDB: query-protocol flattened lists whose members have their own names."""

    name = "sdb"

    @operation("BatchPutAttributes")
    def batch_put_attributes(self, ctx: RequestContext, request: Request) -> Response:
        self.record("BatchPutAttributes", request)
        return {}
