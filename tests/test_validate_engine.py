"""``specsim validate`` of llama.cpp runs: each recorded run's configuration read from its trace,
the base chosen, and bad flags of ``load --metrics-url`` refused (the predictions themselves are
the README's table, ``tests/bench/record_llamacpp_runs.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.cli import main
from analysis.validate_engine import EngineRun, engine_run, is_engine_trace, kind
from tracing.io import read_trace

RUNS = Path(__file__).resolve().parents[1] / "traces" / "llamacpp"


def _run(name: str) -> EngineRun:
    path = str(RUNS / f"{name}.jsonl")
    return engine_run(path, read_trace(path))


def test_each_runs_configuration_comes_from_its_trace() -> None:
    base, np4, synth, nmax8 = (_run(n) for n in ("base-r1", "np4c4-r1", "synth-low-r1",
                                                 "nmax8-r1"))
    assert is_engine_trace(base.trace)
    assert (base.slots, base.concurrency, base.tau, base.synth_rates) == (1, 1, 4, None)
    assert (np4.slots, np4.concurrency) == (4, 4)
    assert synth.synth_rates == [0.5, 0.25, 0.125, 0.0625]
    assert nmax8.tau == 8 and base.spec_type == "ngram-simple"
    assert [kind(base, r) for r in (base, np4, synth, nmax8)] == [
        "replay", "slots x concurrency", "synthetic acceptance (cost model only)",
        "other draft length"]


def test_validate_needs_a_base_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(RUNS / "np2c2-r1.jsonl"), "--json"]) == 2
    assert "no base llama.cpp run" in capsys.readouterr().err


def test_load_refuses_a_bad_metrics_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    argv = ["load", "--endpoint", "http://127.0.0.1:9/v1", "--concurrency", "1", "--requests",
            "1", "--no-progress", "--out", str(out)]
    assert main([*argv, "--metrics-url", "ftp://127.0.0.1/metrics"]) == 2
    assert "--metrics-url ftp://127.0.0.1/metrics: expected an http(s):// URL" in \
        capsys.readouterr().err
    assert main([*argv, "--metrics-url", "http://127.0.0.1:9/metrics"]) == 2
    err = capsys.readouterr().err
    assert "cannot scrape" in err and "Traceback" not in err
    assert not out.exists()
