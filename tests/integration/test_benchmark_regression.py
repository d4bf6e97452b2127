"""The CI subset of `python -m benchmarks run`: warm invoke p50 against the machine's HTTP
floor, as a ratio (absolute times drift from one machine and one moment to the next).

It fails only on a gross regression: a ratio worse than 3x the one recorded in
benchmarks/baseline.json by a real run, so that noise does not make CI flaky.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.compare import measures
from benchmarks.compare.systems import started

from tests.support.servers import squall_process

BASELINE = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline.json"
INVOKES = 300
ROUNDS = 3


def _p50(port: int, request: measures.Request) -> float:
    """The median of per-round medians: one slow round (another process on the 2 cores)
    does not decide the figure."""
    measures.sequential(port, request, 50, 10)  # warm-up
    rounds = [
        statistics.median(measures.sequential(port, request, INVOKES, 10)) for _ in range(ROUNDS)
    ]
    return statistics.median(rounds)


def test_warm_invoke_over_the_floor_has_not_regressed(tmp_path: Path) -> None:
    baseline = json.loads(BASELINE.read_text())["warm_invoke_p50_over_http_floor"]
    with started("floor", tmp_path) as floor:
        request = ("POST", "/2015-03-31/functions/echo/invocations", b'{"n":1}', {})
        floor_p50 = _p50(floor.port, request)
    with squall_process(tmp_path / "data", "--log-level", "warning") as server:
        lam = measures.client(server.endpoint, "lambda")
        measures.deploy(lam, "regression", measures.SILENT, measures.FULL_CPU_MB)
        squall_p50 = _p50(server.port, measures.signed_invoke(server.port, "regression"))
    ratio = squall_p50 / floor_p50
    print(
        f"warm invoke p50 {squall_p50 * 1000:.3f} ms, floor {floor_p50 * 1000:.3f} ms: {ratio:.2f}x"
    )
    assert ratio <= 3 * baseline, (
        f"warm invoke p50 is {ratio:.1f}x the HTTP floor; the recorded ratio is {baseline:.1f}x "
        f"(fails above {3 * baseline:.1f}x): squall {squall_p50 * 1000:.3f} ms, "
        f"floor {floor_p50 * 1000:.3f} ms"
    )
