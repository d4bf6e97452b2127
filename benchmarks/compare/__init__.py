"""`python -m benchmarks run [--quick] [--out FILE] [--systems squall,ministack,moto,floor]`.

Starts each system in turn (never two at once: they would share the 2 cores), takes its
figures, stops it, then writes the JSON and, on a full run, the "Squall vs its peers" section
of docs/performance.md. A peer that cannot be installed, started or measured is reported as
such in its column; the run goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.compare import measures, report
from benchmarks.compare.systems import Running, Unavailable, installed_version, started

SYSTEMS = ("floor", "squall", "ministack", "moto")
CLIENTS = (1, 8, 64)
LAMBDA_SYSTEMS = {"squall", "ministack"}
S3_SYSTEMS = {"squall", "ministack", "moto", "floor"}


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "cold": 8,
            "warm": 500,
            "warm_s": 4.0,
            "load_s": 2.0,
            "idle": 20,
            "s3": 500,
            "s3_s": 3.0,
            "events": 20,
            "fork": 50,
        }
    return {
        "cold": 30,
        "warm": 3000,
        "warm_s": 20.0,
        "load_s": 8.0,
        "idle": 100,
        "s3": 2000,
        "s3_s": 10.0,
        "events": 100,
        "fork": 200,
    }


def _attempt(figures: dict[str, Any], key: str, measure: Callable[[], Any]) -> None:
    """figures[key] = measure(), or the error it raised (one failure spoils one figure)."""
    try:
        value = measure()
    except Exception as exc:
        traceback.print_exc()
        figures[key] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return
    if key == "*":
        figures.update(value)
    else:
        figures[key] = value


def measure_system(running: Running, size: dict[str, Any]) -> dict[str, Any]:
    name = running.name
    figures: dict[str, Any] = {"startup_s": running.startup_s}
    time.sleep(1)
    figures["idle_memory"] = running.memory()
    if name == "floor":
        request = ("POST", "/2015-03-31/functions/echo/invocations", b'{"n":1}', {})
        _attempt(figures, "cold_invoke", lambda: measures.fork_floor(size["fork"]))
        echo = measures.latency(running.port, request, size["warm"], size["warm_s"])
        figures["warm_invoke"] = figures["warm_invoke_print"] = echo
        _attempt(
            figures,
            "throughput",
            lambda: {
                str(n): measures.throughput(running.port, request, n, size["load_s"])
                for n in CLIENTS
            },
        )
    if name in LAMBDA_SYSTEMS:
        _attempt(figures, "cold_invoke", lambda: measures.cold_invokes(running, size["cold"]))
        _attempt(figures, "*", lambda: measures.warm_invokes(running, size["warm"], size["warm_s"]))
        _attempt(
            figures,
            "throughput",
            lambda: measures.invoke_throughput(running, CLIENTS, size["load_s"]),
        )
        _attempt(figures, "idle_density", lambda: measures.idle_density(running, size["idle"]))
        _attempt(figures, "limits", lambda: measures.limits(running))
    if name in S3_SYSTEMS:
        _attempt(figures, "*", lambda: measures.s3_objects(running, size["s3"], size["s3_s"]))
    if name in LAMBDA_SYSTEMS:
        _attempt(
            figures, "put_to_handler", lambda: measures.put_to_handler(running, size["events"])
        )
    return figures


def run(quick: bool = False, systems: tuple[str, ...] = SYSTEMS) -> dict[str, Any]:
    began = time.perf_counter()
    size = sizes(quick)
    results: dict[str, Any] = {
        "machine": report.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": quick,
        "load_average_at_start": os.getloadavg()[0],
        "sizes": size,
        "systems": {},
    }
    with tempfile.TemporaryDirectory(prefix="squall-bench-") as tmp:
        for name in systems:
            print(f"[benchmarks] {name}: starting", flush=True)
            entry: dict[str, Any] = {"status": "ok"}
            system_began = time.perf_counter()
            try:
                with started(name, Path(tmp)) as running:
                    entry["figures"] = measure_system(running, size)
            except Unavailable as exc:
                entry = {"status": "unavailable", "reason": str(exc)[:500]}
            except Exception as exc:
                traceback.print_exc()
                entry = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
            if name in ("ministack", "moto"):
                entry["version"] = installed_version(name, name)
            elif name == "squall":
                entry["version"] = report.squall_version()
            entry["seconds"] = time.perf_counter() - system_began
            results["systems"][name] = entry
            print(f"[benchmarks] {name}: {entry['status']} in {entry['seconds']:.1f} s", flush=True)
    results["seconds"] = time.perf_counter() - began
    return results


def main(args: argparse.Namespace) -> None:
    systems = tuple(s.strip() for s in (args.systems or ",".join(SYSTEMS)).split(",") if s)
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown systems: {', '.join(sorted(unknown))}")
    results = run(quick=args.quick, systems=systems)
    out = args.out or Path("benchmarks/results-run.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    section = report.markdown(results)
    print(section)
    docs = getattr(args, "docs", None) or (None if args.quick else Path("docs/performance.md"))
    if docs:
        report.write_section(Path(docs), section)
        print(f"[benchmarks] wrote {out} and the peers section of {docs}")
    else:
        print(f"[benchmarks] wrote {out} (a --quick run leaves docs/performance.md alone)")
