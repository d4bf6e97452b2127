"""The server as a user runs it: CLI, health, logs, auth modes, durable state, audit records."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from squall import __version__
from tests.support.aws import client
from tests.support.servers import free_port, squall_process, wait_healthy


def squall_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squall", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version_command() -> None:
    result = squall_cli("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"squall {__version__}"


def test_doctor_reports_host_capabilities() -> None:
    result = squall_cli("doctor")
    assert result.returncode == 0, result.stderr
    text = result.stdout.lower()
    for topic in ("root", "cgroup", "namespace", "seccomp"):
        assert topic in text, f"doctor says nothing about {topic}:\n{result.stdout}"


def test_server_help_documents_defaults() -> None:
    result = squall_cli("server", "--help")
    assert result.returncode == 0
    for text in ("127.0.0.1", "4566", "us-east-1", "--data-dir", "--log-level", "--auth"):
        assert text in result.stdout


def test_health_lists_version_and_services(endpoint: str) -> None:
    response = requests.get(f"{endpoint}/_squall/health", timeout=5)
    assert response.status_code == 200
    document = response.json()
    assert document["version"] == __version__
    assert "sts" in document["services"]


def test_environment_variables_mirror_flags(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "SQUALL_PORT": str(port),
        "SQUALL_DATA_DIR": str(tmp_path / "env-data"),
        "SQUALL_LOG_LEVEL": "debug",
        "SQUALL_REGION": "eu-west-1",
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "squall", "server"],
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_healthy(endpoint, process=process)
        assert client(endpoint, "sts").get_caller_identity()["Account"] == "000000000000"
        assert (tmp_path / "env-data" / "squall.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=15)
    log = log_path.read_text()
    # debug level: one readable line per request, naming the operation
    assert "sts.GetCallerIdentity" in log
    assert "-> 200" in log


def test_auth_any_accepts_unknown_keys_and_says_so(tmp_path: Path) -> None:
    with squall_process(tmp_path / "data", "--auth", "any") as server:
        sts = client(server.endpoint, "sts", access_key="111122223333", secret_key="whatever")
        identity = sts.get_caller_identity()
        assert identity["Account"] == "111122223333"
        assert "AUTH IS OFF" in server.log()


def test_default_auth_refuses_unknown_keys(endpoint: str) -> None:
    sts = client(endpoint, "sts", access_key="111122223333", secret_key="whatever")
    with pytest.raises(botocore.exceptions.ClientError):
        sts.get_caller_identity()


def _audit_records(data_dir: Path, event_name: str) -> list[dict]:
    with sqlite3.connect(data_dir / "squall.db") as conn:
        rows = conn.execute(
            "SELECT record FROM audit_events WHERE event_name = ? ORDER BY seq", (event_name,)
        ).fetchall()
    return [json.loads(row[0]) for row in rows]


def test_every_call_is_audited_in_cloudtrail_shape(tmp_path: Path) -> None:
    with squall_process(tmp_path / "data") as server:
        client(server.endpoint, "sts").get_caller_identity()
        bad = client(server.endpoint, "sts", secret_key="wrong")
        with pytest.raises(botocore.exceptions.ClientError):
            bad.get_caller_identity()
        deadline = time.monotonic() + 10
        records: list[dict] = []
        while time.monotonic() < deadline and len(records) < 2:
            records = _audit_records(server.data_dir, "GetCallerIdentity")
            time.sleep(0.1)
    assert len(records) == 2
    ok, failed = records
    for record in records:
        assert record["eventVersion"]
        assert record["eventSource"] == "sts.amazonaws.com"
        assert record["eventName"] == "GetCallerIdentity"
        assert record["eventType"] == "AwsApiCall"
        assert record["awsRegion"] == "us-east-1"
        assert record["sourceIPAddress"] == "127.0.0.1"
        assert "Boto3" in record["userAgent"]
        assert record["readOnly"] is True
        assert record["managementEvent"] is True
        assert record["recipientAccountId"] == "000000000000"
        assert record["requestID"] and record["eventID"]
        assert record["eventTime"].endswith("Z")
    assert ok["userIdentity"] == {
        "type": "Root",
        "principalId": "000000000000",
        "arn": "arn:aws:iam::000000000000:root",
        "accountId": "000000000000",
        "accessKeyId": "test",
    }
    assert "errorCode" not in ok
    assert failed["errorCode"] == "SignatureDoesNotMatch"
    assert failed["errorMessage"]


def test_audit_records_are_flushed_on_clean_shutdown(tmp_path: Path) -> None:
    with squall_process(tmp_path / "data") as server:
        sts = client(server.endpoint, "sts")
        for _ in range(25):
            sts.get_caller_identity()
        data_dir = server.data_dir
    assert len(_audit_records(data_dir, "GetCallerIdentity")) == 25


def test_kill_9_under_load_leaves_a_database_that_opens(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with squall_process(data_dir) as server:
        sts = client(server.endpoint, "sts")
        pid = _server_pid(server.port)
        for _ in range(200):
            sts.get_caller_identity()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    with sqlite3.connect(data_dir / "squall.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM access_keys").fetchone()[0] >= 1
    # and the server starts again on the same data
    with squall_process(data_dir) as server:
        assert client(server.endpoint, "sts").get_caller_identity()["Account"] == "000000000000"


def _server_pid(port: int) -> int:
    output = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    for line in output.splitlines():
        if "squall" in line and f"--port {port}" in line:
            return int(line.split()[0])
    raise AssertionError(f"no squall server process on port {port}")
