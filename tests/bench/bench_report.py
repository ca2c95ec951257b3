"""Benchmark: diagnose and report a 1,000,000-cycle trace; the report's size.

    python tests/bench/bench_report.py [--cycles 1000000] [--requests 10000]

Prints wall-clock seconds of each step measured in this one run, their ratios to reading the
trace back from Parquet, and the report size (total, and beyond the embedded plotly.js).
(tests/bench/bench_analysis.py, of the metrics/diagnosis side, measures detection accuracy.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from plotly.offline import get_plotlyjs  # noqa: E402
from test_report import synthetic_trace  # noqa: E402

from analysis.report import (  # noqa: E402
    ReportConfig,
    build_report,
    findings_and_metrics,
    render_html,
    run_whatifs,
)
from tracing import read_trace, write_trace  # noqa: E402


def timed(label: str, fn: Callable[[], Any], times: dict[str, float]) -> Any:
    start = time.perf_counter()
    result = fn()
    times[label] = time.perf_counter() - start
    print(f"  {label:<30} {times[label]:8.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    per = max(1, args.cycles // args.requests)
    cycles = args.requests * per
    times: dict[str, float] = {}
    print(f"trace: {args.requests} requests x {per} cycles = {cycles} cycles")
    trace = timed("generate (numpy)", lambda: synthetic_trace(args.requests, per), times)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "big.parquet")
        timed("write parquet", lambda: write_trace(trace, path), times)
        trace = timed("read parquet (validated)", lambda: read_trace(path), times)
    findings, metrics = timed("diagnose + metrics (what-ifs)",
                              lambda: findings_and_metrics(trace, whatif=True), times)
    config = ReportConfig()
    assert config.whatif is not None
    whatifs = timed("report what-if sweeps", lambda: run_whatifs(trace, config.whatif), times)
    data = timed("report figures", lambda: build_report(
        trace, config, findings=findings, metrics=metrics, whatifs=whatifs), times)
    page = timed("render html", lambda: render_html(data), times)
    size = len(page.encode("utf-8"))
    js = len(get_plotlyjs().encode("utf-8"))
    read_s = times["read parquet (validated)"]
    diagnose_s = times["diagnose + metrics (what-ifs)"]
    report_s = times["report what-if sweeps"] + times["report figures"] + times["render html"]
    print(f"report size {size / 1e6:.2f} MB (plotly.js {js / 1e6:.2f} MB + "
          f"{(size - js) / 1e3:.0f} kB of figures and text); bound 10 MB")
    print(f"diagnose {diagnose_s:.2f} s = {diagnose_s / read_s:.1f}x reading the trace")
    print(f"report   {report_s:.2f} s = {report_s / read_s:.1f}x reading the trace "
          f"(what-ifs {times['report what-if sweeps'] / report_s:.0%} of it)")


if __name__ == "__main__":
    main()
