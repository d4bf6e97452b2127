"""ETL: turn a CSV file that lands in one bucket into JSON in another.

Triggered by an S3 `ObjectCreated` notification. For every record in the event, the handler
reads the CSV object, converts each row into a JSON object with typed fields (integers,
decimals, booleans and empty cells become numbers, `true`/`false` and `null`; everything else
stays a string), and writes the result to the bucket named by the `OUTPUT_BUCKET` environment
variable under the same key with `.json` in place of `.csv`.

Python 3.11+, boto3 only (it is in every Lambda Python runtime).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any
from urllib.parse import unquote_plus

import boto3

s3 = boto3.client("s3")  # created once per sandbox, reused by warm invocations

INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")  # no leading zeros: "007" is an identifier
DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+")


def typed(cell: str) -> Any:
    """A CSV cell as the JSON value it most plainly means."""
    text = cell.strip()
    if text == "":
        return None
    if INTEGER.fullmatch(text):
        return int(text)
    if DECIMAL.fullmatch(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return cell


def transform(source: str, text: str) -> dict[str, Any]:
    """The JSON document for one CSV file: where it came from, and its rows as records."""
    reader = csv.DictReader(io.StringIO(text))
    records = [
        {column: typed(value or "") for column, value in row.items() if column is not None}
        for row in reader
    ]
    return {"source": source, "records": records}


def output_key(key: str) -> str:
    stem = key[: -len(".csv")] if key.lower().endswith(".csv") else key
    return stem + ".json"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    output_bucket = os.environ["OUTPUT_BUCKET"]
    written = []
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])  # keys arrive URL-encoded
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        document = transform(f"s3://{bucket}/{key}", body.decode("utf-8-sig"))
        target = output_key(key)
        s3.put_object(
            Bucket=output_bucket,
            Key=target,
            Body=(json.dumps(document, indent=2) + "\n").encode(),
            ContentType="application/json",
        )
        rows = len(document["records"])
        print(f"s3://{bucket}/{key}: {rows} rows -> s3://{output_bucket}/{target}")
        written.append(target)
    return {"written": written}
