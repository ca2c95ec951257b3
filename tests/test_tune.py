"""`specsim tune`: the draft length per batch size, the decision, the schedule, the engine syntax."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.engine_config import configs, serve_policy, trtllm, vllm
from sim import Scenario
from sim.policies.library import make_policy
from sim.sweep.tune import Candidate, gain, merge, parse_batches, parse_taus, tau_at
from sim.sweep.tune_decide import decide, slo_class
from sim.sweep.tune_run import tune
from tracing.errors import SpecsimError

ROOT = Path(__file__).resolve().parents[1]
# Speculation pays at batch 1 (a cheap draft, alpha 0.8) and not at batch 32: past the ridge of 8
# scored tokens the verify pass is compute-bound, so 5 scored tokens per row cost 5x.
PLANTED = """
[workload]
requests = 24
prompt_tokens = 16
output_tokens = 32

[acceptance]
alpha = 0.8

[latency]
target_step_s = 0.02
draft_step_s = 0.0005
ridge_tokens = 8

[policy]
name = "fixed"
tau = 4
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def cand(tau: int | None, values: list[float], estimate: float, p95: float = 1.0) -> Candidate:
    draws = [{"throughput_tok_s": v, "p50_s": 1.0, "p95_s": p95 * (1 + 0.01 * i)}
             for i, v in enumerate(values)]
    return Candidate(f"tau={tau}", tau, {"throughput_tok_s": estimate, "p50_s": 1.0,
                                         "p95_s": p95}, draws)


def test_parse_lists_and_ranges() -> None:
    assert parse_batches("1,2,4") == [1, 2, 4]
    assert parse_taus("2-4") == [0, 2, 3, 4]  # target-only always tried
    assert parse_taus("0-2,4") == [0, 1, 2, 4]
    for bad in ("", "a", "3-1", "0"):
        with pytest.raises(SpecsimError, match="--batch"):
            parse_batches(bad)


def test_gain_is_positive_when_it_helps_for_every_objective() -> None:
    assert gain("throughput", 12.0, 10.0) == pytest.approx(0.2)
    assert gain("p95", 0.5, 1.0) == pytest.approx(1.0)  # half the latency: twice as fast
    assert gain("p50", 2.0, 1.0) == pytest.approx(-0.5)
    assert gain("throughput", 1.0, 0.0) is None


def test_decide_recommends_only_when_the_paired_interval_is_above_zero() -> None:
    base = [10.0, 11.0, 9.0, 10.5, 9.5]
    zero = cand(0, base, 10.0)
    sure = cand(4, [v * 1.2 for v in base], 12.0)  # +20% in every draw
    noisy = cand(2, [v * f for v, f in zip(base, (1.3, 0.8, 1.25, 0.85, 1.2), strict=True)],
                 10.5)  # +5% by the estimate, paired gains straddle 0
    assert decide([zero, sure], "throughput")["tau"] == 4
    got = decide([zero, noisy], "throughput")
    assert got["tau"] == 0 and got["best_tau"] == 2
    assert "does not surely pay" in got["reason"]
    assert decide([zero, cand(4, [v * 0.9 for v in base], 9.0)], "throughput")["tau"] == 0


def test_a_draft_length_beyond_the_traced_depth_must_surely_beat_the_best_within_it() -> None:
    base = [10.0, 11.0, 9.0, 10.5, 9.5]
    zero = cand(0, base, 10.0)
    four = cand(4, [v * 1.2 for v in base], 12.0)  # measured depth: surely +20%
    # tau 8: +2% over tau 4 by the estimate, its paired gains over tau 4 straddle 0
    eight = cand(8, [v * 1.2 * f for v, f in zip(base, (1.05, 0.97, 1.06, 0.98, 1.04),
                                                   strict=True)], 12.24)
    assert decide([zero, four, eight], "throughput")["tau"] == 8  # no depth known: the best
    got = decide([zero, four, eight], "throughput", depth=4)
    assert got["tau"] == 4 and got["best_tau"] == 8
    assert "beyond the 4 draft positions" in got["reason"]
    sure = cand(8, [v * 1.32 for v in base], 13.2)  # +10% over tau 4 in every draw
    assert decide([zero, four, sure], "throughput", depth=4)["tau"] == 8
    assert decide([zero, four, eight], "throughput", depth=8)["tau"] == 8  # all measured


def test_slo_classes_by_interval_and_the_slo_decides_first() -> None:
    fast = cand(4, [12.0] * 5, 12.0, p95=0.5)
    slow = cand(0, [10.0] * 5, 10.0, p95=2.0)
    assert slo_class(fast, 1000.0) == "yes"
    assert slo_class(slow, 1000.0) == "no"
    assert slo_class(cand(2, [1.0] * 5, 1.0, p95=0.99), 1000.0) == "within_noise"
    got = decide([slow, fast], "throughput", 1000.0)  # target-only misses the SLO
    assert got["tau"] == 4 and "does not meet the SLO" in got["reason"]


def test_merge_ranges_and_lookup() -> None:
    rows = [{"batch": b, "tau": t, "gain": g, "ci95": [g - 0.1, g + 0.1]}
            for b, t, g in ((1, 4, 0.5), (2, 4, 0.3), (4, 2, 0.1), (8, 0, 0.0), (16, 0, 0.0))]
    sched = merge(rows)
    assert [(p["batch_from"], p["batch_to"], p["tau"]) for p in sched] == [
        (1, 3, 4), (4, 7, 2), (8, 16, 0)]
    assert sched[0]["gain"] == pytest.approx(0.3) and sched[0]["gain_at_batch"] == 2
    assert [tau_at(sched, b) for b in (1, 3, 4, 7, 8, 40)] == [4, 4, 2, 2, 0, 0]


def test_engine_snippets_follow_the_schedule() -> None:
    sched = [{"batch_from": 1, "batch_to": 3, "tau": 4}, {"batch_from": 4, "batch_to": 7,
                                                          "tau": 2},
             {"batch_from": 8, "batch_to": 32, "tau": 0}]
    text, _ = vllm(sched, "ngram")
    spec = json.loads(text)
    assert spec["method"] == "ngram" and spec["num_speculative_tokens"] == 4
    assert spec["num_speculative_tokens_per_batch_size"] == [[1, 3, 4], [4, 7, 2], [8, 32, 0]]
    yaml, note = trtllm(sched)
    assert "draft_len_schedule: {3: 4, 7: 2}" in yaml and "max_draft_len: 4" in yaml
    assert "off above batch 7" in note
    config, notes = configs(sched, ["sglang", "llamacpp"], at_batch=4)
    assert config["sglang"] == ("--speculative-num-steps 2 --speculative-eagle-topk 1 "
                                "--speculative-num-draft-tokens 3")
    assert '"candidate_steps": [2, 4]' in notes["sglang"]
    assert config["llamacpp"] == "-np 4 --spec-draft-n-max 2"
    assert configs(sched, ["llamacpp"], at_batch=8)[0]["llamacpp"] == "-np 8"
    # specsim serve runs the same schedule: its policy picks the schedule's tau at every batch
    policy = make_policy(serve_policy(sched))
    assert [policy.tau_for_batch(b) for b in range(1, 33)] == [tau_at(sched, b)
                                                              for b in range(1, 33)]


def test_tune_finds_speculation_paying_only_at_small_batches() -> None:
    base = Scenario.from_dict(__import__("tomllib").loads(PLANTED), where="planted")
    result = tune(base, None, [1, 32], [0, 2, 4], draws=4)
    by_batch = {row["batch"]: row for row in result.batches}
    assert by_batch[1]["tau"] > 0 and by_batch[1]["ci95"][0] > 0
    assert by_batch[32]["tau"] == 0
    assert result.schedule[-1]["tau"] == 0 and result.schedule[0]["batch_from"] == 1
    own = by_batch[1]["vs_own"]
    assert own["policy"] == "tau=4"


def test_tune_json_cli(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(PLANTED)
    out = tmp_path / "tune.json"
    res = run("tune", str(scenario), "--batch", "1,32", "--tau", "0,2,4", "--intervals", "3",
              "--requests", "48", "--json", "-o", str(out))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    for part in got["schedule"]:
        assert set(part) >= {"batch_from", "batch_to", "tau", "gain", "ci95"}
    assert set(got["config"]) == {"vllm", "trtllm", "sglang", "llamacpp"}
    vllm_config = json.loads(got["config"]["vllm"])
    assert {"num_speculative_tokens", "num_speculative_tokens_per_batch_size"} <= set(vllm_config)
    assert got["serve_policy"] in got["serve_command"]
    assert json.loads(out.read_text())["schedule"] == got["schedule"]


def test_llamacpp_ngram_snippet_sets_the_drafters_own_draft_length() -> None:
    # in this llama.cpp --spec-draft-n-max bounds draft models only: an n-gram drafter's draft
    # length is its size-m, and ngram-simple never drafts when size-m < size-n (docs/llamacpp.md)
    sched = [{"batch_from": 1, "batch_to": 1, "tau": 2}, {"batch_from": 2, "batch_to": 4,
                                                          "tau": 8}]
    one = configs(sched, ["llamacpp"], draft="ngram", at_batch=1)[0]["llamacpp"].split()
    assert one[one.index("--spec-ngram-simple-size-m") + 1] == "2"
    assert one[one.index("--spec-ngram-simple-size-n") + 1] == "2"
    assert one[one.index("--spec-type") + 1] == "ngram-simple"
    four = configs(sched, ["llamacpp"], draft="ngram", at_batch=4)[0]["llamacpp"].split()
    assert four[four.index("--spec-ngram-simple-size-m") + 1] == "8"
    assert "--spec-ngram-simple-size-n" not in four and four[:2] == ["-np", "4"]
    # the traced server's own drafter wins over the default
    mapk = ["llama-server", "--spec-type", "ngram-map-k", "--spec-ngram-map-k-size-n", "3"]
    got = configs(sched, ["llamacpp"], draft="ngram", at_batch=4,
                  server_command=mapk)[0]["llamacpp"].split()
    assert got[got.index("--spec-ngram-map-k-size-m") + 1] == "8"
    assert "--spec-ngram-simple-size-m" not in got


@pytest.mark.skipif(not (ROOT / "traces/tune/llamacpp/ngram-nmax4-np1-r0.jsonl").exists(),
                    reason="recorded llama.cpp trace absent")
def test_tune_takes_a_llamacpp_client_trace() -> None:
    trace = ROOT / "traces/tune/llamacpp/ngram-nmax4-np1-r0.jsonl"
    res = run("tune", str(trace), "--batch", "1,2", "--tau", "2,4,8", "--engine", "llamacpp",
              "--objective", "throughput", "--intervals", "2", "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert [row["batch"] for row in got["batches"]] == [1, 2]
    assert {p["tau"] for p in got["batches"][0]["points"]} >= {0, 2, 4, 8}
    # the trace drafted at most 4 tokens, at one slot: both extrapolations are said
    said = " ".join(got["warnings"])
    assert "tau 8: beyond the 4 draft positions" in said and "no batched profile" in said
    snippet = got["config"]["llamacpp"]
    assert snippet.startswith(f"-np {got['at_batch']}")
    if "--spec-draft-n-max" in snippet:  # the recorded server drafted with ngram-simple
        assert "--spec-type ngram-simple" in snippet and "--spec-ngram-simple-size-m" in snippet
    # measured with llama-server (specsim serve cannot load the GGUF), at the tuned slots
    assert got["serve_command"].startswith("llama-server -m ") and snippet in got["serve_command"]


def test_tune_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    out = tmp_path / "tune.json"
    out.write_text("kept")
    assert main(["tune", str(tmp_path / "missing.toml"), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "kept"


@pytest.mark.parametrize("flags, message", [
    (["--batch", "0,2"], "--batch"), (["--tau", "x"], "--tau"),
    (["--intervals", "1"], "--intervals"), (["--slo-p95-ms", "-1"], "--slo-p95-ms")])
def test_tune_bad_input_is_one_line_exit_2(tmp_path: Path, flags: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    scenario = tmp_path / "s.toml"
    scenario.write_text(PLANTED)
    assert main(["tune", str(scenario), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_each_batch_size_simulates_enough_requests_to_keep_its_own_noise_small() -> None:
    import tomllib

    from sim.sweep.tune import MIN_REQUESTS, MIN_WAVES, at_batch

    base = Scenario.from_dict(tomllib.loads(PLANTED))
    assert base.workload.requests == 24 < MIN_REQUESTS
    one = at_batch(base, 1, None)
    assert one.workload.requests == MIN_REQUESTS and one.workload.concurrency == 1
    big = at_batch(base, 64, None)
    assert big.workload.requests == MIN_WAVES * 64 and big.server.max_batch == 64
    assert at_batch(base, 4, 30).workload.requests == 30  # --requests wins
