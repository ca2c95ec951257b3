"""A newcomer's first hour: a light `specsim --help`, progress when piped, a demo that can be
re-run, file arrivals that say how many requests they run (issue 24, part 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "tests" / "data" / "sample_synthetic.jsonl")
HEAVY = ("pandas", "numpy", "torch", "plotly", "scipy", "simpy", "pyarrow", "transformers")


def test_building_the_parser_imports_nothing_heavy() -> None:
    # the exact check of the "Done when", in a fresh interpreter (pytest's own process
    # has pandas loaded already), plus the other heavy packages of the project
    code = ("import sys; from analysis.cli import build_parser; build_parser(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout
    version = subprocess.run([sys.executable, "-m", "analysis.cli", "--version"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
    assert version.stdout.startswith("specsim ")


def test_flag_defaults_written_out_match_their_source() -> None:
    # the parser's copies of defaults whose modules it no longer imports
    from analysis import commands
    from analysis.report import ReportConfig, WhatIfConfig
    from sim import cli as sim_cli
    from sim.sweep.intervals import DRAWS

    assert WhatIfConfig.requests == commands.WHATIF_REQUESTS
    assert ReportConfig.timeline_requests == commands.TIMELINE_REQUESTS
    assert sim_cli.DRAWS == DRAWS


def test_progress_is_plain_lines_when_piped(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tracing import progress
    from tracing.progress import Bar, steps

    monkeypatch.delenv("SPECSIM_PROGRESS", raising=False)
    with Bar("what-if", 20) as bar:
        for _ in range(20):
            bar.advance()
    lines = capsys.readouterr().err.splitlines()
    # a quick job: the line it starts with and the one it ends with
    assert lines == ["specsim: what-if: 0/20 (0%), 0 s", "specsim: what-if: 20/20 (100%), 0 s"]
    monkeypatch.setattr(progress, "PLAIN_MIN_GAP_S", 0.0)  # as if each point took seconds
    with Bar("what-if", 20) as bar:
        for _ in range(20):
            bar.advance()
    lines = capsys.readouterr().err.splitlines()
    # the start, then one line per 10% (every 2 of 20 points)
    assert lines[0].startswith("specsim: what-if: 0/20 (0%)")
    assert lines[-1].startswith("specsim: what-if: 20/20 (100%)")
    assert len(lines) == 11 and "\x1b" not in "".join(lines)  # no terminal codes
    with steps(3) as step:
        for name in ("loading trace", "diagnosing", "writing report"):
            step(name)
    assert [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()] == [
        "specsim: loading trace", "specsim: diagnosing", "specsim: writing report"]
    monkeypatch.setenv("SPECSIM_PROGRESS", "off")
    with Bar("quiet", 5) as bar:
        bar.advance(5)
    assert capsys.readouterr().err == ""


def test_piped_whatif_and_simulate_report_progress(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[workload]\nrequests = 10\noutput_tokens = 16\n')
    assert main(["whatif", str(scenario), "--vary", "policy.tau=1,2,3", "--jobs", "1",
                 "--intervals", "0"]) == 0
    err = capsys.readouterr().err
    assert "specsim: what-if: 3/3 (100%)" in err
    assert main(["simulate", str(scenario)]) == 0
    assert "specsim: simulating: 10/10 (100%)" in capsys.readouterr().err
    assert main(["whatif", str(scenario), "--vary", "policy.tau=1,2", "--jobs", "1",
                 "--json"]) == 0
    assert capsys.readouterr().err == ""  # --json: stdout is one object, stderr quiet


def test_demo_runs_twice_in_a_row(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    flags = ["demo", "--out", str(out_dir), "--no-whatif", "--timeline-requests", "2"]
    assert main(flags) == 0
    first = capsys.readouterr()
    assert "specsim: diagnosing" in first.err  # piped: its steps as plain lines
    assert main(flags) == 0  # the folder is the demo's own: re-run as it is
    capsys.readouterr()
    assert main([*flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"][0] == str(out_dir / "report.html")
    # a folder the demo did not make is someone else's: refused without --force
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert main(["demo", "--out", str(other), "--no-whatif"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not make" in err[0] and "--force" in err[0]
    assert not (other / "report.html").exists()
    assert main(["demo", "--out", str(other), "--no-whatif", "--force"]) == 0
    assert (other / "notes.txt").read_text() == "keep"


# 30 requests 10 ms apart: far more than one stream serves (overloaded at the file's rate)
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
    f"2023-11-16 18:15:46.{i:02d}0000,{100 + i},{40 + i}\n" for i in range(30))


def test_file_arrivals_run_the_files_requests_and_name_its_rate(tmp_path: Path) -> None:
    from sim import Scenario, simulate
    from tracing.errors import SpecsimError

    (tmp_path / "azure.csv").write_text(AZURE)
    where = str(tmp_path / "s.toml")
    d = {"workload": {"arrival": "file", "arrivals_file": "azure.csv"},
         "latency": {"target_step_s": 0.05, "draft_step_s": 0.005}}
    scenario = Scenario.from_dict(d, where=where)
    assert scenario.workload.requests == 0  # "every request of the file"
    result = simulate(scenario, seed=0)
    assert len(result.trace.requests) == 30  # the file's count, not the default 200
    overload = [w for w in result.warnings if w.startswith("overloaded")]
    assert overload and "rate_per_s" not in overload[0] and "azure.csv" in overload[0]
    d["workload"]["requests"] = 3
    assert len(simulate(Scenario.from_dict(d, where=where), seed=0).trace.requests) == 3
    with pytest.raises(SpecsimError, match="requests = 0: must be >= 1"):
        Scenario.from_dict({"workload": {"requests": 0}})


def test_whatif_takes_the_trace_of_a_scenarios_trace_keys(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # README's walkthrough: production arrivals, costs and acceptance fitted on your run
    (tmp_path / "azure.csv").write_text(AZURE)
    scenario = tmp_path / "azure.toml"
    scenario.write_text('[workload]\narrival = "file"\narrivals_file = "azure.csv"\n'
                        'requests = 12\n[acceptance]\nmodel = "trace"\n[latency]\nmodel = "trace"\n')
    assert main(["whatif", str(scenario), "--vary", "policy.tau=1,2"]) == 2  # no trace given
    assert "--trace" in capsys.readouterr().err
    assert main(["whatif", str(scenario), "--trace", SAMPLE, "--vary", "policy.tau=1,2",
                 "--intervals", "0", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["vary"] for p in points] == [{"policy.tau": 1}, {"policy.tau": 2}]
    assert all(p["requests"] == 12 for p in points)
