"""No input ends in a traceback: mutated traces through validate, summary, diagnose and report.

Each example damages a small valid trace -- a field of the wrong type, a missing field, NaN,
2**70, a duplicated line, a damaged run line -- and runs the command in-process: the exit code is
0 or 2, and on 2 the error is one line on stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.cli import main
from conftest import make_small_trace
from tracing import write_trace

_BAD_VALUES: list[Any] = [
    None, float("nan"), float("inf"), -1, 2**70, -(2**70), 1.5, "x", "", True, [], [1, "a"],
    {"a": 1}, {"name": "fixed"}, 0,
]


def _base_lines(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "base.jsonl"
    if not path.exists():
        write_trace(make_small_trace(), path)
    return [json.loads(line) for line in path.read_text().splitlines()]


@st.composite
def mutations(draw: st.DrawFn, lines: list[dict[str, Any]]) -> str:
    """A damaged copy of ``lines`` as JSONL text."""
    recs = [dict(r) for r in lines]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(recs) - 1))
        op = draw(st.sampled_from(["set", "delete", "duplicate", "drop", "nested"]))
        rec = recs[i]
        keys = sorted(rec) or ["type"]
        key = draw(st.sampled_from(keys))
        if op == "set":
            rec[key] = draw(st.sampled_from(_BAD_VALUES))
        elif op == "delete":
            rec.pop(key, None)
        elif op == "duplicate":
            recs.insert(i, dict(rec))
        elif op == "drop" and len(recs) > 1:
            recs.pop(i)
        elif op == "nested" and recs[0].get("type") == "run":
            # damage inside the run line's objects (policy_params values, extra)
            name = draw(st.sampled_from(["policy_params", "extra", "library_versions"]))
            recs[0][name] = {"tau": draw(st.sampled_from(_BAD_VALUES))}
    return "".join(json.dumps(r) + "\n" for r in recs)  # NaN/Infinity written as JSON allows


def _run(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, err.getvalue()


def _check(tmp: Path, text: str, argv: list[str]) -> None:
    path = tmp / "mutated.jsonl"
    path.write_text(text)
    rc, err = _run([a.replace("TRACE", str(path)) for a in argv])
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        lines = [line for line in err.splitlines() if line.startswith("specsim: error:")]
        assert len(lines) == 1 and "Traceback" not in err, err


_FAST = settings(max_examples=120, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
_SLOW = settings(max_examples=12, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_validate_and_summary_never_crash(tmp_path: Path) -> None:
    lines = _base_lines(tmp_path)

    @_FAST
    @given(mutations(lines))
    def run(text: str) -> None:
        _check(tmp_path, text, ["trace", "validate", "TRACE"])
        _check(tmp_path, text, ["trace", "summary", "TRACE", "--json"])

    run()


def test_diagnose_and_report_never_crash(tmp_path: Path) -> None:
    lines = _base_lines(tmp_path)
    out = tmp_path / "page.html"

    @_SLOW
    @given(mutations(lines))
    def run(text: str) -> None:
        _check(tmp_path, text, ["diagnose", "TRACE", "--json"])
        out.unlink(missing_ok=True)
        _check(tmp_path, text, ["report", "TRACE", "-o", str(out), "--no-whatif"])

    run()


def test_cycles_without_request_lines(tmp_path: Path) -> None:
    """Found by the fuzz: a trace cut before any request line (cycles only) used to crash
    diagnose's per-request cycle sums."""
    recs = _base_lines(tmp_path)
    text = "".join(json.dumps(r) + "\n" for r in recs if r.get("type") != "request")
    assert '"type": "cycle"' in text and '"type": "request"' not in text
    _check(tmp_path, text, ["diagnose", "TRACE", "--json"])
    _check(tmp_path, text, ["report", "TRACE", "-o", str(tmp_path / "p.html"), "--no-whatif"])
