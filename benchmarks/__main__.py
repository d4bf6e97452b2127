"""`python -m benchmarks [SUITE] [--quick] [--out FILE]`: run a suite, print and save figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import edge, invoke, logs, sandbox

SUITES = {"edge": edge, "sandbox": sandbox, "invoke": invoke, "logs": logs}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suite", nargs="?", default="edge", choices=sorted(SUITES))
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = SUITES[args.suite].run(quick=args.quick)
    args.out = args.out or Path(f"benchmarks/results-{args.suite}.json")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
