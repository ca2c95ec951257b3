"""Real workload arrivals: [workload] arrival = "file" with an Azure CSV, a Mooncake JSONL or a
specsim trace; requests from start_s, rate_scale, length caps, bad rows named by line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_small_trace
from sim import Scenario, simulate
from sim.calibrate.arrivals import load_arrivals
from tracing import write_trace
from tracing.errors import SpecsimError

AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:51.2000000,879,55
2023-11-16 18:15:53.1000000,91,16
2023-11-16 18:15:58.0000000,381,84
"""


def _scenario(tmp_path: Path, **workload: object) -> Scenario:
    d = {"workload": {"arrival": "file", **workload},
         "latency": {"target_step_s": 0.01, "draft_step_s": 0.001}, "acceptance": {"alpha": 0.7}}
    return Scenario.from_dict(d, where=str(tmp_path / "s.toml"))


def test_azure_csv_drives_simulate(tmp_path: Path) -> None:
    (tmp_path / "azure.csv").write_text(AZURE)
    sc = _scenario(tmp_path, requests=5, arrivals_file=str(tmp_path / "azure.csv"))
    r = simulate(sc, seed=1).trace.requests
    gaps = [4.314579, 0.204831, 1.9, 4.9]
    assert r["arrival_s"].to_numpy() == pytest.approx(np.cumsum([0.0, *gaps]), abs=1e-6)
    assert r["prompt_tokens"].tolist() == [374, 396, 879, 91, 381]
    assert r["output_tokens"].tolist() == [44, 109, 55, 16, 84]


def test_start_rate_scale_caps_and_given_lengths(tmp_path: Path) -> None:
    (tmp_path / "azure.csv").write_text(AZURE)
    t = load_arrivals(str(tmp_path / "azure.csv"), 3, start_s=1.0, rate_scale=2.0,
                      max_prompt_tokens=800, max_output_tokens=100)
    assert t.arrival_s == pytest.approx([0.0, 0.204831 / 2, (0.204831 + 1.9) / 2], abs=1e-6)
    assert t.prompt_tokens.tolist() == [396, 800, 91]
    assert t.output_tokens.tolist() == [100, 55, 16]
    # lengths given in the scenario win over the file's; a relative path is from the scenario
    sc = _scenario(tmp_path, requests=2, arrivals_file="azure.csv", output_tokens=7)
    r = simulate(sc, seed=1).trace.requests
    assert r["output_tokens"].tolist() == [7, 7] and r["prompt_tokens"].tolist() == [374, 396]
    with pytest.raises(SpecsimError, match=r"requests = 9: .*azure.csv has 4 requests from "
                                           r"start_s = 1"):
        load_arrivals(str(tmp_path / "azure.csv"), 9, start_s=1.0)


def test_mooncake_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "mooncake.jsonl"
    rows = [{"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [1, 2]},
            {"timestamp": 27482, "input_length": 6472, "output_length": 26, "hash_ids": [3]},
            {"timestamp": 30535, "input_length": 6593, "output_length": 0, "hash_ids": []}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = load_arrivals(str(path), 3)
    assert t.format == "mooncake"
    assert t.arrival_s == pytest.approx([0.0, 27.482, 30.535])
    assert t.prompt_tokens.tolist() == [6955, 6472, 6593]
    assert t.output_tokens.tolist() == [52, 26, 1]  # at least one token
    rows[1]["input_length"] = "many"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SpecsimError, match=r"mooncake.jsonl:2: input_length"):
        load_arrivals(str(path), 3)


def test_specsim_trace_as_arrivals(tmp_path: Path) -> None:
    trace = make_small_trace()
    write_trace(trace, tmp_path / "t.parquet")
    t = load_arrivals(str(tmp_path / "t.parquet"), 2)
    assert t.format == "specsim"
    assert t.arrival_s.tolist() == [0.0, 0.05]
    assert t.output_tokens.tolist() == trace.requests["output_tokens"].tolist()


def test_bad_files_and_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(AZURE.replace("879", "lots"))
    with pytest.raises(SpecsimError, match=r"bad.csv:4: ContextTokens 'lots'"):
        load_arrivals(str(bad), 2)
    bad.write_text(AZURE.replace("2023-11-16 18:15:53.1000000", "yesterday"))
    with pytest.raises(SpecsimError, match=r"bad.csv:5: TIMESTAMP 'yesterday'"):
        load_arrivals(str(bad), 2)
    bad.write_text("time,in,out\n1,2,3\n")
    with pytest.raises(SpecsimError, match="no TIMESTAMP column"):
        load_arrivals(str(bad), 1)
    with pytest.raises(SpecsimError, match='arrival = "file" needs arrivals_file'):
        _scenario(tmp_path)
    with pytest.raises(SpecsimError, match="rate_scale = 0: must be > 0"):
        _scenario(tmp_path, arrivals_file="x.csv", rate_scale=0.0)
    with pytest.raises(SpecsimError, match='only with arrival = "file"'):
        Scenario.from_dict({"workload": {"arrivals_file": "x.csv"}})
    with pytest.raises(SpecsimError, match="arrivals file not found"):
        simulate(_scenario(tmp_path, arrivals_file="nope.csv"), seed=1)
