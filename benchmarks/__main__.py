"""`python -m benchmarks [SUITE] [--quick] [--out FILE]`: run a suite, print and save figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import benchmarks.compare  # `run`: squall against its peers and the floor
from benchmarks import edge, invoke, logs, s3, sandbox

SUITES = {"edge": edge, "sandbox": sandbox, "invoke": invoke, "logs": logs, "s3": s3}
SUITES["run"] = benchmarks.compare


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suite", nargs="?", default="edge", choices=sorted(SUITES))
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--systems", default=None, help="run: e.g. squall,ministack,moto,floor")
    parser.add_argument("--docs", type=Path, default=None, help="run: the Markdown file to update")
    args = parser.parse_args()
    if args.suite == "run":
        benchmarks.compare.main(args)
        return
    results = SUITES[args.suite].run(quick=args.quick)
    args.out = args.out or Path(f"benchmarks/results-{args.suite}.json")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
