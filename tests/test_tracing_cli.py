"""`specsim trace ...`: JSON output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_small_trace
from tracing import read_trace, summarize, write_trace
from tracing.outputs import public_mode

SAMPLE = Path(__file__).parent / "data" / "sample_synthetic.jsonl"


def specsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], capture_output=True,
                          text=True, cwd=Path(__file__).parents[1])


def test_summary_json_has_the_contract_keys() -> None:
    res = specsim("trace", "summary", str(SAMPLE), "--json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    for key in ("requests", "cycles", "tokens_per_cycle", "mean_accepted", "acceptance_by_position",
                "draft_acceptance_rate", "mean_acceptance_length", "system_efficiency"):
        assert key in s
    assert set(s["latency_s"]) >= {"mean", "p50", "p95", "p99"}
    assert s["requests"] == 24 and s["cycles"] == 591


def test_summary_figures_on_a_hand_checked_trace() -> None:
    s = summarize(make_small_trace())
    # spec cycles: (4,4) (4,1) (4,0) (2,2); target-only: (0,0)
    assert s["spec_cycles"] == 4 and s["target_only_cycles"] == 1
    assert s["mean_accepted"] == pytest.approx(7 / 4)
    assert s["draft_acceptance_rate"] == pytest.approx(7 / 14)
    assert s["mean_acceptance_length"] == pytest.approx(1 + 7 / 4)
    assert s["tokens_per_cycle"] == pytest.approx(11 / 4)
    assert s["system_efficiency"] == pytest.approx(11 / 18)
    # position 1: drafted by 4 cycles, accepted by 3 (4,4),(4,1),(2,2); position 3: 3 drafted, 1 accepted
    assert s["acceptance_by_position"] == pytest.approx([3 / 4, 2 / 4, 1 / 3, 1 / 3])
    # hazard at position 2: reached by cycles with accepted >= 1 and tau >= 2 -> 3, accepted 2;
    # position 3 is reached only by (4,4), which accepted it
    assert s["acceptance_hazard_by_position"] == pytest.approx([3 / 4, 2 / 3, 1 / 1, 1 / 1])
    assert s["latency_s"]["p50"] == pytest.approx(0.045)


def test_validate_ok_and_bad_trace_exits_2_with_one_line(tmp_path: Path) -> None:
    res = specsim("trace", "validate", str(SAMPLE), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["valid"] is True
    bad = tmp_path / "bad.jsonl"
    lines = SAMPLE.read_text().splitlines()
    rec = json.loads(lines[5])
    rec["accepted"] = rec["tau"] + 1
    lines[5] = json.dumps(rec)
    bad.write_text("\n".join(lines) + "\n")
    for cmd in ("validate", "summary"):
        res = specsim("trace", cmd, str(bad))
        assert res.returncode == 2
        assert res.stderr.count("\n") == 1, res.stderr
        assert f"{bad}:6 field 'accepted'" in res.stderr
        assert res.stdout == ""


def test_cut_off_trace_says_how_many_records_were_read(tmp_path: Path) -> None:
    cut = tmp_path / "cut.jsonl"
    text = SAMPLE.read_text()
    cut.write_text(text[: len(text) // 2 - 7])
    res = specsim("trace", "validate", str(cut))
    assert res.returncode == 2
    assert "cut off mid-line" in res.stderr and "complete records were read" in res.stderr


def test_convert_both_ways_and_refuses_to_clobber(tmp_path: Path) -> None:
    pq_path, back = tmp_path / "t.parquet", tmp_path / "t.jsonl"
    assert specsim("trace", "convert", str(SAMPLE), str(pq_path)).returncode == 0
    assert specsim("trace", "convert", str(pq_path), str(back)).returncode == 0
    assert back.read_text() == SAMPLE.read_text()
    res = specsim("trace", "convert", str(back), str(back))
    assert res.returncode == 2 and "refusing to overwrite" in res.stderr
    res = specsim("trace", "convert", str(back), str(tmp_path / "t.csv"))
    assert res.returncode == 2 and "unknown trace format" in res.stderr


def test_failed_convert_keeps_an_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    write_trace(make_small_trace(), out)
    before = out.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type":"run"}\n')
    res = specsim("trace", "convert", str(bad), str(out), "--force")
    assert res.returncode == 2 and "field 'source'" in res.stderr
    assert out.read_bytes() == before


def test_perfetto_command(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    res = specsim("trace", "perfetto", str(SAMPLE), str(out))
    assert res.returncode == 0, res.stderr
    events = json.loads(out.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" and e["cat"] == "verify" for e in events) == len(
        read_trace(SAMPLE).cycles)


def test_outputs_are_never_clobbered_without_force_and_are_0644(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    assert specsim("trace", "convert", str(SAMPLE), "-o", str(out)).returncode == 0
    # written aside by mkstemp (0600), then published: 0644 under the usual umask 022
    assert out.stat().st_mode & 0o777 == public_mode()
    before = out.read_bytes()
    res = specsim("trace", "convert", str(SAMPLE), str(out))
    assert res.returncode == 2 and str(out) in res.stderr and "--force" in res.stderr
    assert out.read_bytes() == before
    assert specsim("trace", "convert", str(SAMPLE), str(out), "--force").returncode == 0
    pf = tmp_path / "p.json"
    assert specsim("trace", "perfetto", str(SAMPLE), "--out", str(pf)).returncode == 0
    assert pf.stat().st_mode & 0o777 == public_mode()
    res = specsim("trace", "perfetto", str(SAMPLE), str(pf))
    assert res.returncode == 2 and "p.json" in res.stderr and "--force" in res.stderr
