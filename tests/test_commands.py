"""`specsim diagnose | report | demo`: outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.commands import DEMO_TRACES, TRACES_DIR
from conftest import make_small_trace
from tracing import write_trace

SAMPLE = str(Path(__file__).parent / "data" / "sample_synthetic.jsonl")


@pytest.fixture
def bad_trace(tmp_path: Path) -> str:
    """A JSONL trace whose third line accepts more tokens than were drafted."""
    path = tmp_path / "bad.jsonl"
    write_trace(make_small_trace(), str(path))
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    assert record["type"] == "cycle"
    record["accepted"] = record["tau"] + 1
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("specsim: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_diagnose_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", SAMPLE, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"findings", "metrics", "warnings", "schedule"}
    assert out["warnings"] == []  # the synthetic sample's timing is steady
    assert out["metrics"]["requests"] == 24
    severities = [f["severity"] for f in out["findings"]]
    assert severities == sorted(severities, reverse=True)
    for finding in out["findings"]:
        assert {"kind", "severity", "evidence", "recommendation", "predicted"} <= set(finding)


def test_diagnose_human_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    trace = make_small_trace()
    trace.meta.target_model = "[bold]not markup[/bold]"
    write_trace(trace, str(path))
    assert main(["diagnose", str(path), "--no-whatif"]) == 0
    out = capsys.readouterr().out
    assert "2 requests, 5 cycles; target [bold]not markup[/bold]" in out
    assert "tokens/cycle" in out and "No bottleneck found" in out


@pytest.mark.parametrize("command", [["diagnose"], ["diagnose", "--json"], ["report"]])
def test_invalid_trace_exits_2_with_the_validator_line(
    command: list[str], bad_trace: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [*command, bad_trace]
    if command == ["report"]:
        argv += ["-o", str(tmp_path / "r.html")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, f"{bad_trace}:3", "accepted")
    assert not (tmp_path / "r.html").exists()


def test_missing_trace_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["diagnose", str(tmp_path / "nope.jsonl")]) == 2
    _one_error_line(capsys.readouterr().err, "nope.jsonl")


def test_report_writes_one_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", SAMPLE, "-o", str(out), "--whatif-requests", "10"]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    # an n-gram draft: no draft-depth chart (it has no layers), and the page says why
    assert page.count("data-plot=") == 10
    assert "What-if: hardware" in page and "What-if: draft depth" not in page
    assert "draft depth</b>: not drawn" in page
    assert "catalog x" in page  # the hardware chart says each point's basis and band


def test_report_bad_flags_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", SAMPLE, "-o", str(tmp_path / "missing" / "r.html")]) == 2
    _one_error_line(capsys.readouterr().err, "does not exist")
    assert main(["report", SAMPLE, "--slo-p95-ms", "-1", "-o", str(tmp_path / "r.html")]) == 2
    _one_error_line(capsys.readouterr().err, "--slo-p95-ms")


def test_demo(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    assert main(["demo", "--out", str(out_dir), "--whatif-requests", "10"]) == 0
    printed = capsys.readouterr().out
    bundled = next(name for name in DEMO_TRACES if (TRACES_DIR / name).is_file())
    assert bundled in printed
    assert "what-if" in printed
    assert f"report: {out_dir / 'report.html'}" in printed
    saved = json.loads((out_dir / "findings.json").read_text())
    assert set(saved) == {"findings", "metrics"}
    assert (out_dir / "report.html").stat().st_size > 1e6  # plotly.js is inside
    # It ends by saying what to try next.
    tail = printed.strip().splitlines()[-5:]
    assert tail[0] == "what to try next:" and any("specsim compare" in t for t in tail)
    # A second run rewrites the demo's own folder as it is (issue 24); --json with it.
    assert main(["demo", "-o", str(out_dir), "--no-whatif", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["written"] == [str(out_dir / "report.html"), str(out_dir / "findings.json")]
    assert got["next"] and "findings" in got


def test_demo_out_is_a_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["demo", "--out", str(target)]) == 2
    _one_error_line(capsys.readouterr().err, "not a folder")


def test_demo_without_bundled_traces_simulates_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("analysis.commands.TRACES_DIR", tmp_path / "no-traces")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-whatif"]) == 0
    printed = capsys.readouterr().out
    assert "a simulated run (no bundled trace found)" in printed
    assert "what-if: not run" in printed
    assert (tmp_path / "demo" / "report.html").is_file()
