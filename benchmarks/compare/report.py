"""The Markdown table (each figure per system, squall / peer ratios, the goals met or missed)
and the "Squall vs its peers" section of docs/performance.md, replaced on each run."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ruff: noqa: RUF001  (the table uses en dashes for "none" and multiplication signs)

BEGIN = "<!-- peers:begin (written by `python -m benchmarks run`; replaced on each run) -->"
END = "<!-- peers:end -->"
HEADING = "## Squall vs its peers (issue 7)"
PEERS = ("ministack", "moto", "floor")
COLUMNS = ("squall", *PEERS)


def machine() -> dict[str, str]:
    cpu, ram = "unknown CPU", "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def squall_version() -> str:
    try:
        import importlib.metadata

        return importlib.metadata.version("squall")
    except Exception:
        return "unknown"


# ---- values


def _get(figures: dict[str, Any], *path: str) -> Any:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _p50(key: str) -> Callable[[dict], Any]:
    return lambda f: _failure(f, key) or _get(f, key, "p50_ms")


def _p99(key: str) -> Callable[[dict], Any]:
    return lambda f: _failure(f, key) or _get(f, key, "p99_ms")


def _failure(figures: dict[str, Any], key: str) -> str | None:
    entry = figures.get(key)
    if isinstance(entry, dict) and "error" in entry:
        return "error (see JSON)"
    if isinstance(entry, dict) and "unsupported" in entry:
        return "unsupported"
    return None


def _rate(clients: str) -> Callable[[dict], Any]:
    return lambda f: _failure(f, "throughput") or _get(f, "throughput", clients, "per_s")


def _density(figures: dict[str, Any]) -> Any:
    failure = _failure(figures, "idle_density")
    if failure or "idle_density" not in figures:
        return failure
    if not figures["idle_density"]["keeps_a_process"]:
        return "n/a (keeps no process)"
    return figures["idle_density"].get("per_gib", "n/a")


def _enforced(kind: str) -> Callable[[dict], Any]:
    def value(figures: dict[str, Any]) -> Any:
        failure = _failure(figures, "limits")
        if failure or "limits" not in figures:
            return failure
        return "yes" if figures["limits"][kind]["enforced"] else "no"

    return value


def _memory(figures: dict[str, Any]) -> Any:
    idle = figures.get("idle_memory")
    if not idle:
        return None
    count = idle["processes"]
    return f"{idle['pss_mb']:.0f} MB ({count} process{'es' if count != 1 else ''})"


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if unit == "ms":
        digits = 3 if value < 1 else 2 if value < 10 else 1 if value < 100 else 0
        return f"{value:,.{digits}f} ms"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f}"


# ---- goals


def _best(figures: dict[str, Any] | None, getters: list[Callable], pick: Callable) -> Any:
    values = [g(figures) for g in getters] if figures else []
    numbers = [v for v in values if isinstance(v, int | float)]
    return pick(numbers) if numbers else None


def _verdict(misses: list[str], partial: str = "") -> str:
    if misses:
        return "**missed**: " + "; ".join(misses)
    return "met" + partial


def _times_faster(limit_ms: float, factor: float, getters: list[Callable]) -> Callable:
    def goal(squall: dict, ministack: dict | None) -> str:
        mine = _best(squall, getters[:1], min)
        if mine is None:
            return "no squall figure"
        misses = [f"{mine:.2f} ms > {limit_ms:g} ms"] if mine > limit_ms else []
        theirs = _best(ministack, getters, min)
        if theirs is None:
            return _verdict(misses, " (absolute part; no ministack figure)")
        if theirs / mine < factor:
            misses.append(f"{theirs / mine:.1f}× faster than ministack, not {factor:g}×")
        return _verdict(misses, f" ({theirs / mine:.0f}× faster)")

    return goal


def _throughput_goal(squall: dict, ministack: dict | None) -> str:
    getters = [_rate(str(n)) for n in (1, 8, 64)]
    mine = _best(squall, getters, max)
    if mine is None:
        return "no squall figure"
    misses = [f"best {mine:,.0f}/s < 3,000/s"] if mine < 3000 else []
    theirs = _best(ministack, getters, max)
    if theirs is None:
        return _verdict(misses, " (absolute part; no ministack figure)")
    if mine / theirs < 20:
        misses.append(f"{mine / theirs:.1f}× ministack's best, not 20×")
    return _verdict(misses, f" ({mine / theirs:.0f}× ministack's best)")


def _yes_goal(getter: Callable) -> Callable:
    return lambda squall, _: "met" if getter(squall) == "yes" else "**missed**"


def _density_goal(squall: dict, _: Any) -> str:
    value = _density(squall)
    if not isinstance(value, int | float):
        return "no squall figure"
    return "met" if value >= 400 else f"**missed**: {value:.0f} < 400"


@dataclass
class Row:
    label: str
    value: Callable[[dict], Any]
    unit: str = ""
    goal: str = ""
    judge: Callable[[dict, dict | None], str] | None = None
    ratio: bool = True


ROWS = [
    Row("server start-up to healthy", lambda f: f.get("startup_s"), "s"),
    Row("idle memory, whole process tree (sum of PSS)", _memory, ratio=False),
    Row(
        "cold invoke p50 (first invoke of a new function)",
        _p50("cold_invoke"),
        "ms",
        "≤ 10 ms and ≥ 20× faster than ministack",
        _times_faster(10, 20, [_p50("cold_invoke")]),
    ),
    Row("cold invoke p99", _p99("cold_invoke"), "ms"),
    Row(
        "warm invoke p50, silent handler",
        _p50("warm_invoke"),
        "ms",
        "≤ 1 ms and ≥ 10× faster than ministack's best case",
        _times_faster(1, 10, [_p50("warm_invoke"), _p50("warm_invoke_print")]),
    ),
    Row("warm invoke p99, silent handler", _p99("warm_invoke"), "ms"),
    Row("warm invoke p50, handler printing a line", _p50("warm_invoke_print"), "ms"),
    Row("warm invoke p99, handler printing a line", _p99("warm_invoke_print"), "ms"),
    Row(
        "warm invoke p50 through boto3 `invoke` (client included)", _p50("warm_invoke_boto3"), "ms"
    ),
    Row("invokes/s, 1 client", _rate("1"), "/s"),
    Row("invokes/s, 8 clients", _rate("8"), "/s"),
    Row(
        "invokes/s, 64 clients",
        _rate("64"),
        "/s",
        "≥ 3,000/s and ≥ 20× ministack (best of 1/8/64 each)",
        _throughput_goal,
    ),
    Row(
        "idle warm sandboxes per GiB (host MemAvailable drop)",
        _density,
        "",
        "≥ 400",
        _density_goal,
    ),
    Row(
        "memory limit enforced (MemorySize=128 writes 300 MB)",
        _enforced("memory"),
        goal="yes",
        judge=_yes_goal(_enforced("memory")),
        ratio=False,
    ),
    Row(
        "timeout enforced (Timeout=1 sleeps 5 s)",
        _enforced("timeout"),
        goal="yes",
        judge=_yes_goal(_enforced("timeout")),
        ratio=False,
    ),
    Row("S3 PutObject 1 KB p50", _p50("s3_put_1kb"), "ms"),
    Row("S3 GetObject 1 KB p50", _p50("s3_get_1kb"), "ms"),
    Row("S3 PUT → handler start p50 (notification)", _p50("put_to_handler"), "ms"),
]


# ---- the table and the section


def _ratio(mine: Any, theirs: Any) -> str:
    if not isinstance(mine, int | float) or not isinstance(theirs, int | float) or not theirs:
        return "–"
    value = mine / theirs
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}" if value < 10 else f"{value:.0f}"


def table(results: dict[str, Any]) -> str:
    systems = results["systems"]
    shown = [name for name in COLUMNS if name in systems]
    peers = [name for name in shown if name != "squall"]
    head = ["figure", *shown, *(f"squall / {p}" for p in peers), "goal", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    status = ["system"]
    for name in shown:
        entry = systems[name]
        version = f" {entry['version']}" if entry.get("version") else ""
        status.append(name + version if entry["status"] == "ok" else f"{entry['status']}¹")
    lines.append("| " + " | ".join(status + ["–"] * (len(peers) + 2)) + " |")
    squall = systems.get("squall", {}).get("figures")
    ministack = systems.get("ministack", {}).get("figures")
    for row in ROWS:
        values = {
            name: row.value(systems[name]["figures"]) if systems[name].get("figures") else None
            for name in shown
        }
        cells = [row.label, *(_fmt(values[name], row.unit) for name in shown)]
        cells += [_ratio(values.get("squall"), values[p]) if row.ratio else "–" for p in peers]
        verdict = row.judge(squall, ministack) if row.judge and squall else "–"
        cells += [row.goal or "–", verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    kind = "--quick run" if results["quick"] else "full run"
    systems = results["systems"]
    problems = [
        f"- ¹ **{name}** {entry['status']}: {entry['reason']}"
        for name, entry in systems.items()
        if entry["status"] != "ok"
    ]
    errors = [
        f"- {name}: `{key}` failed: {value['error']}"
        for name, entry in systems.items()
        for key, value in (entry.get("figures") or {}).items()
        if isinstance(value, dict) and "error" in value
    ]
    unsupported = [
        f"- {name}: `{key}` unsupported: {value['unsupported']}"
        for name, entry in systems.items()
        for key, value in (entry.get("figures") or {}).items()
        if isinstance(value, dict) and "unsupported" in value
    ]
    size = results["sizes"]
    parts = [
        HEADING,
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Linux {m['kernel']}, "
        f"Python {m['python']}. {results['date']}, {kind} ({results['seconds']:.0f} s; load "
        f"average {results['load_average_at_start']:.2f} at the start).",
        "",
        "Reproduce (as root, for squall's isolation; peers are installed into their own "
        "virtualenvs under `~/.cache/squall-bench` on first use):",
        "",
        "```sh",
        ".venv/bin/python -m benchmarks run            # full run, ≈ 6 min; writes this section",
        ".venv/bin/python -m benchmarks run --quick    # smoke run, < 2 min",
        ".venv/bin/python -m benchmarks run --systems squall,ministack --out results.json",
        "```",
        "",
        "Each system is started in turn on a free loopback port in its own temp dir and driven "
        "through the same boto3 client code (the control plane) and the same botocore-signed "
        "requests sent over keep-alive HTTP/1.1 (the figures), so client-side signing is not "
        "measured; one row repeats the warm invoke through boto3's `invoke`. Times: lower is "
        "better, so a squall / peer ratio below 1 means squall is faster; rates and densities: "
        "higher is better. "
        f"Cold: p50 over {size['cold']} new 128 MB functions (floor: a fork of a warm, "
        "boto3-sized process answering over a pipe). Warm: sequential invokes of a 1,769 MB "
        f"echo handler (up to {size['warm']:,} or {size['warm_s']:g} s). Throughput: one uvloop "
        f"client process, N keep-alive connections for {size['load_s']:g} s after a warm-up. "
        f"Idle density: {size['idle']} functions invoked once and left idle; the drop of the "
        "host's MemAvailable per function. The floor is a minimal HTTP echo server under the "
        "uvicorn + httptools + uvloop stack squall serves on, answering the same signed "
        "requests. moto is measured for S3 only (its Lambda needs Docker). S3 PUT → handler "
        "start: a subscribed function prints `time.time()` first thing; p50 of that minus the "
        "PUT's send time, read back from CloudWatch Logs.",
        "",
        table(results),
    ]
    notes = problems + errors + unsupported
    if notes:
        parts += ["", *notes]
    return "\n".join(parts) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the generated block of `path` (or add it under the title) with `section`."""
    text = path.read_text() if path.exists() else "# Performance\n"
    block = f"{BEGIN}\n{section}{END}\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = before + block + "\n" + after
    else:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{block}\n{rest.lstrip()}"
    path.write_text(text)
