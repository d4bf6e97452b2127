"""Tests for squall.doctor: host probing for sandbox support."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from squall.doctor import Check, HostReport, format_report, probe_host

IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def report() -> HostReport:
    return probe_host()


def mounted_fstypes() -> set[str]:
    types = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        types.add(line.split(" - ", 1)[1].split()[0])
    return types


def test_is_root_matches_euid(report: HostReport) -> None:
    assert report.is_root == IS_ROOT
    assert report.check("root") == Check("root", IS_ROOT, report.check("root").detail)


def test_cgroup_version_consistent_with_mountinfo(report: HostReport) -> None:
    types = mounted_fstypes()
    has_v1, has_v2 = "cgroup" in types, "cgroup2" in types
    expected = {
        "v2": has_v2,
        "hybrid": has_v1 and has_v2,
        "v1": has_v1 and not has_v2,
        "none": not has_v1 and not has_v2,
    }
    assert expected[report.cgroup_version], (report.cgroup_version, types)
    assert set(report.cgroup_controllers.values()) <= {"v1", "v2"}
    if report.cgroup_version == "v1":
        assert set(report.cgroup_controllers.values()) <= {"v1"}
    if report.cgroup_version == "v2":
        assert set(report.cgroup_controllers.values()) <= {"v2"}
    for name in report.cgroup_controllers:
        assert name in {"memory", "pids", "cpu", "cpuacct", "cpuset", "freezer", "io", "blkio"}


def test_cgroup_v1_controllers_match_mountinfo(report: HostReport) -> None:
    v1_options: set[str] = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fstype, _source, options = line.split(" - ", 1)[1].split()[:3]
        if fstype == "cgroup":
            v1_options |= set(options.split(","))
    for name, version in report.cgroup_controllers.items():
        assert (version == "v1") == (name in v1_options)


def test_format_report_lists_every_check(report: HostReport) -> None:
    text = format_report(report)
    names = [c.name for c in report.checks]
    assert len(names) == len(set(names))
    for name in names:
        assert name in text
    for expected in ("python", "kernel", "root", "cgroups", "cgroup.memory", "seccomp"):
        assert expected in names
    for ns in ("mount", "pid", "net", "ipc", "uts", "user"):
        assert f"ns.{ns}" in names
    assert "summary:" in text


def test_missing_protections_describe_failed_checks() -> None:
    report = HostReport(
        checks=[
            Check("python", True, "3.11"),
            Check("cgroup.memory", False, "no memory cgroup controller writable"),
            Check("ns.net", False, "cannot create net namespaces: EPERM"),
            Check("root", False, "euid 1000"),
        ],
        is_root=False,
        cgroup_version="none",
        cgroup_controllers={},
    )
    missing = report.missing_protections()
    assert missing == [
        "memory limits: no memory cgroup controller writable",
        "network isolation (network namespace): cannot create net namespaces: EPERM",
    ]
    text = format_report(report)
    assert "MISSING" in text
    assert missing[0] in text


def test_probe_leaves_calling_process_untouched(report: HostReport) -> None:
    before = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in ("mnt", "pid", "net", "user")}
    probe_host()
    after = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in ("mnt", "pid", "net", "user")}
    assert before == after
    status = Path("/proc/self/status").read_text()
    assert "NoNewPrivs:\t0" in status or "NoNewPrivs" not in status


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="creating mount/pid/net namespaces needs root")
def test_namespaces_available_as_root(report: HostReport) -> None:
    for ns in ("mount", "pid", "net"):
        assert report.namespaces[ns], report.check(f"ns.{ns}")
    assert report.pivot_root
    assert not [line for line in report.missing_protections() if "namespace" in line]


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="dropping to an unprivileged user needs root")
def test_probe_as_unprivileged_user_reports_instead_of_crashing() -> None:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            r = probe_host()
            payload = {"is_root": r.is_root, "ns": r.namespaces, "text": format_report(r)}
            os.write(write_fd, json.dumps(payload).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result = json.loads(data)
    assert result["is_root"] is False
    for ns in ("mount", "pid", "net"):
        assert result["ns"][ns] is False
    assert "protections that will be OFF" in result["text"]
