"""``specsim validate`` kind load: points paired, predicted from the lowest load, crossovers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from analysis.validate import validate
from analysis.validate_load import crossovers, pair_points, validate_load
from sim import Scenario, simulate
from sim.calibrate.batching import BATCH_PROFILE_KEY
from tracing import write_trace
from tracing.errors import SpecsimError
from tracing.trace import Trace

# a CPU-like batched pass: cost grows with rows x tokens
TABLE = [[0.02 + 0.006 * b * n for n in range(1, 6)] for b in range(1, 5)]
OFFSET = 0.004  # what the client sees beyond the server, each side of a request


def _server_run(policy: dict, load: dict, seed: int = 0) -> Trace:
    """A 'measured' server run: the simulator with a batched table, as a server trace."""
    s = Scenario.from_dict({
        "workload": {"requests": 12, "prompt_tokens": {"dist": "uniform", "low": 40, "high": 90},
                     "output_tokens": 24, "seed": seed, **load},
        "acceptance": {"alpha": 0.75},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.0002, "prefill_s_per_token": 2e-4,
                    "batch_verify_table_s": TABLE},
        "policy": policy, "server": {"max_batch": 4}, "sim": {"baseline": False},
    })
    trace = simulate(s, seed=seed).trace
    extra = {"workload": "server", "server": {"max_batch": 4},
             BATCH_PROFILE_KEY: {"seconds": TABLE}}
    meta = dataclasses.replace(trace.meta, source="live", extra=extra, draft_model=(
        "none" if policy["name"] == "target_only" else "ngram"))
    return Trace(meta, trace.requests, trace.cycles)


def _client_of(server: Trace, load: dict) -> Trace:
    """The client's view of a server run: same ids, ending a little later (HTTP, SSE)."""
    r = server.requests.copy()
    r["end_s"] = r["end_s"] + 2 * OFFSET
    key = "concurrency" if "concurrency" in load else "rate"
    value = load.get("concurrency", load.get("rate_per_s"))
    meta = dataclasses.replace(server.meta, extra={"workload": "edit",
                                                   "load": {key: value, "requests": 12}})
    return Trace(meta, r, server.cycles)


def _write(tmp: Path, name: str, policy: dict, load: dict) -> list[str]:
    server = _server_run(policy, load)
    paths = [str(tmp / f"{name}.server.jsonl"), str(tmp / f"{name}.client.jsonl")]
    write_trace(server, paths[0])
    write_trace(_client_of(server, load), paths[1])
    return paths


@pytest.fixture(scope="module")
def load_set(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("load")
    paths: list[str] = []
    for name, policy in (("ngram", {"name": "fixed", "tau": 4}), ("none", {"name": "target_only"})):
        for c in (1, 2, 4):
            paths += _write(tmp, f"{name}-c{c}", policy, {"concurrency": c})
        paths += _write(tmp, f"{name}-rate2", policy, {"arrival": "poisson", "rate_per_s": 2.0})
    return paths


def test_points_are_paired_and_predicted_from_the_lowest_load(load_set: list[str]) -> None:
    result = validate(load_set)
    assert result["kind"] == "load"
    rows = result["points"]
    assert len(rows) == 8
    for row in rows:
        assert Path(row["a"]).name.endswith("-c1.client.jsonl")  # A: concurrency 1
        assert Path(row["b"]).name.split(".")[0].split("-")[0] == row["config"].split()[0]
    replay = [r for r in rows if r["load"] == 1 and r["axis"] == "concurrency"]
    for r in replay:  # A predicting itself: the simulator's own run, replayed
        assert r["predicted"]["client_offset_s"] == pytest.approx(2 * OFFSET)
        assert abs(r["error"]["p50_s"]) < 0.05
    # the same simulator made every point: other loads are predicted closely too
    assert all(abs(r["error"]["p50_s"]) < 0.2 for r in rows)
    assert {r["axis"] for r in rows} == {"concurrency", "rate_per_s"}
    summary = result["summary"]
    assert sum(s["points"] for s in summary.values()) == 8


def test_crossover_is_the_first_load_where_speculation_stops_paying() -> None:
    def row(config: str, load: int, meas: float, pred: float, base: bool = False) -> dict:
        return {"config": config, "workload": "w", "axis": "concurrency", "load": load,
                "target_only": base, "measured": {"p50_s": meas}, "predicted": {"p50_s": pred}}

    rows = [row("none", c, 1.0 * c, 1.0 * c, base=True) for c in (1, 2, 4, 8)]
    rows += [row("ngram", 1, 0.6, 0.6), row("ngram", 2, 1.5, 1.9), row("ngram", 4, 4.2, 3.9),
             row("ngram", 8, 9.0, 8.8)]
    (c,) = crossovers(rows)
    assert (c["measured"], c["predicted"], c["within_one_step"]) == (4, 8, True)
    rows[-1]["predicted"]["p50_s"] = 7.0  # never crosses in the prediction: 2 steps off
    rows[-2]["predicted"]["p50_s"] = 3.0
    (c,) = crossovers(rows)
    assert (c["measured"], c["predicted"], c["within_one_step"]) == (4, None, False)


def test_a_client_trace_without_its_server_trace_is_an_error(load_set: list[str],
                                                              tmp_path: Path) -> None:
    from tracing import read_trace

    client = next(p for p in load_set if p.endswith("c2.client.jsonl"))
    with pytest.raises(SpecsimError, match="server traces of this run"):
        pair_points({client: read_trace(client)})
    bad = tmp_path / "x.client.jsonl"
    lines = Path(client).read_text().splitlines()
    run = json.loads(lines[0])
    run["extra"]["load"] = {"requests": 12}
    bad.write_text("\n".join([json.dumps(run), *lines[1:]]) + "\n")
    server = client.replace(".client.", ".server.")
    with pytest.raises(SpecsimError, match="neither a concurrency nor a rate"):
        validate_load({str(bad): read_trace(str(bad)), server: read_trace(server)})


def test_server_trace_report_section_latency_by_batch_and_load_curve() -> None:
    from analysis.load_figures import step_table
    from analysis.load_report import is_server_trace, load_figures, with_batch_sizes

    trace = _server_run({"name": "fixed", "tau": 4}, {"concurrency": 3})
    assert is_server_trace(trace)
    table = step_table(with_batch_sizes(trace))
    assert 3 in set(table["batch_size"])  # three users: steps of three rows
    assert table["steps"].sum() == trace.cycles["start_s"].nunique()
    (_, by_batch), (_, curve) = load_figures(trace)
    assert len(by_batch.data) == 3  # step time, tokens per step, requests
    names = [t.name for t in curve.data]
    assert any("target-only" in n for n in names) and any("fixed" in n for n in names)
    p50 = next(t for t in curve.data if t.name.endswith("p50") and "fixed" in t.name)
    assert list(p50.x) == [1, 2, 4, 8]
    assert all(b > a for a, b in zip(p50.y, p50.y[1:], strict=False))  # more users, slower


def test_a_single_stream_trace_has_no_load_section() -> None:
    from analysis.load_report import is_server_trace, load_figures

    s = Scenario.from_dict({"workload": {"requests": 5, "output_tokens": 16}})
    trace = simulate(s, seed=0).trace
    assert not is_server_trace(trace)
    assert load_figures(trace) == []
