"""A diagnosis of a llama.cpp trace names llama-server's own flags; others are untouched."""

from __future__ import annotations

import copy

from analysis.diagnose import Finding
from analysis.engine_flags import annotate, llamacpp_flags
from analysis.validate_engine import hazards
from conftest import make_small_trace


def _finding(kind: str, overrides: list[dict], best: dict | None = None) -> Finding:
    f = Finding(kind, 0.7, "t", {}, "Draft fewer tokens", overrides=overrides)
    if best is not None:
        f.predicted = {"overrides": best}
    return f


def test_overrides_become_llama_server_flags() -> None:
    assert llamacpp_flags({"policy.name": "fixed", "policy.tau": 2}) == [
        "--spec-ngram-simple-size-m 2 (n-gram; a draft model: --spec-draft-n-max 2)"]
    assert llamacpp_flags({"server.max_batch": 4}) == ["-np 4"]
    assert llamacpp_flags({"policy.name": "target_only"})[0].startswith("no --spec-type")
    assert llamacpp_flags({"workload.output_tokens": 9}) == []


def test_a_llamacpp_trace_gets_the_flags_others_do_not() -> None:
    trace = make_small_trace()
    findings = [_finding("over_speculation", [{"policy.name": "fixed", "policy.tau": 3},
                                              {"policy.name": "fixed", "policy.tau": 5}],
                         best={"policy.name": "fixed", "policy.tau": 3}),
                _finding("queueing_bound", [{"server.max_batch": 4}]),
                _finding("unstable_timing", [])]
    plain = copy.deepcopy(findings)
    annotate(trace, plain)  # a specsim trace: nothing added
    assert all(not f.engine_flags and "llama.cpp" not in f.recommendation for f in plain)
    trace.meta.extra["engine"] = "llamacpp"
    annotate(trace, findings)
    over, queue, noisy = findings
    assert "--cpu-strict 1" in noisy.engine_flags[0] and "In llama.cpp: -t N" in noisy.recommendation
    assert over.engine_flags[0].startswith("--spec-ngram-simple-size-m 3")  # the best change
    assert any("--spec-ngram-simple-size-n" in x for x in over.engine_flags)
    assert "In llama.cpp: --spec-ngram-simple-size-m 3" in over.recommendation
    assert queue.engine_flags == ["-np 4"]
    assert "engine_flags" in queue.to_dict()


def test_synthetic_rates_become_hazards() -> None:
    assert hazards([0.8, 0.4, 0.2]) == [0.8, 0.5, 0.5]
    assert hazards([0.5, 0.0, 0.0]) == [0.5, 0.0, 0.0]


def test_per_draft_acceptance_divides_by_every_draft() -> None:
    from tracing.summary import summarize

    s = summarize(make_small_trace())  # spec cycles (tau, accepted): (4,4) (4,1) (4,0) (2,2)
    assert s["acceptance_by_position_per_draft"] == [3 / 4, 2 / 4, 1 / 4, 1 / 4]
    assert s["acceptance_by_position"] == [3 / 4, 2 / 4, 1 / 3, 1 / 3]
