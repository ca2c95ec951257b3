"""live.capture and ``specsim capture``: end to end on a tiny random Llama, interruption, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import live.decode
from live.capture import CaptureConfig, capture
from live.models import LoadedModel
from tracing import read_trace, summarize
from tracing.errors import SpecsimError

ROOT = Path(__file__).resolve().parents[1]


def _config(tiny_dir: Path, out: Path, **kw: Any) -> CaptureConfig:
    base: dict[str, Any] = {"draft": "ngram", "prompts": "builtin:edit", "limit": 3,
                            "max_new_tokens": 12}
    base.update(kw)
    return CaptureConfig(target=str(tiny_dir), out=str(out), **base)


def test_capture_writes_a_valid_trace(tiny_dir: Path, tiny: LoadedModel, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    res = capture(_config(tiny_dir, out, policy="fixed:tau=3", seed=7), progress=False,
                  target=tiny)
    trace = read_trace(out)  # validates every invariant
    r, c = trace.requests, trace.cycles
    assert (res.requests, res.cycles, res.interrupted) == (3, len(c), False)
    assert list(r["request_id"]) == [0, 1, 2]
    # sum of emitted == output_tokens, and every request produced its tokens
    assert (c.groupby("request_id")["emitted"].sum().to_numpy() == r["output_tokens"]).all()
    assert res.tokens == int(r["output_tokens"].sum()) > 0
    assert (r["output_tokens"] <= 12).all()
    assert (c["tau"] <= 3).all()
    # one after another: arrival = start, next starts after the previous ends
    assert (r["arrival_s"] == r["start_s"]).all()
    assert (r["start_s"].to_numpy()[1:] >= r["end_s"].to_numpy()[:-1]).all()
    assert r["prompt_text"].str.contains("following text").all()
    assert r["output_text"].notna().all()
    m = trace.meta
    assert (m.source, m.target_model, m.draft_model, m.device, m.dtype) == (
        "live", str(tiny_dir), "ngram", "cpu", "float32")
    assert (m.policy, m.policy_params, m.seed) == ("fixed", {"tau": 3}, 7)
    assert {"python", "torch", "transformers"} <= set(m.library_versions)
    assert m.extra["workload"] == "edit"
    assert m.extra["target_n_params"] == tiny.n_params
    assert m.extra["draft_n_params"] == 0
    assert m.extra["config"]["policy"] == "fixed:tau=3"
    assert m.extra["config"]["max_new_tokens"] == 12
    assert summarize(trace)["requests"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]  # written in place, nothing else


def test_greedy_output_is_the_same_for_every_draft(tiny_dir: Path, tiny: LoadedModel,
                                                   tmp_path: Path) -> None:
    texts = {}
    for draft in ("none", "ngram", "layerskip:layers=1", str(tiny_dir)):
        out = tmp_path / "t.jsonl"
        capture(_config(tiny_dir, out, draft=draft, limit=2), progress=False, target=tiny)
        trace = read_trace(out)
        texts[draft] = list(trace.requests["output_text"])
        if draft == "none":
            assert (trace.cycles["tau"] == 0).all()
            assert trace.meta.extra["draft_n_params"] == 0
        if draft == "layerskip:layers=1":
            assert 0 < trace.meta.extra["draft_n_params"] < tiny.n_params
    assert len({json.dumps(t) for t in texts.values()}) == 1, texts


def test_parquet_output(tiny_dir: Path, tiny: LoadedModel, tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    capture(_config(tiny_dir, out, limit=2), progress=False, target=tiny)
    trace = read_trace(out)
    assert len(trace.requests) == 2 and trace.meta.source == "live"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def _interrupting(at_request: int, after_cycles: int) -> Any:
    """A speculative_generate that raises KeyboardInterrupt inside ``at_request``."""
    real = live.decode.speculative_generate

    def fake(*args: Any, on_cycle: Any = None, request_id: int = 0, **kw: Any) -> Any:
        seen = 0

        def wrapped(c: Any) -> None:
            nonlocal seen
            if request_id == at_request and seen == after_cycles:
                raise KeyboardInterrupt
            seen += 1
            if on_cycle is not None:  # None: the untimed warm-up
                on_cycle(c)

        if request_id == at_request and after_cycles == 0:
            raise KeyboardInterrupt
        return real(*args, on_cycle=wrapped, request_id=request_id, **kw)

    return fake


@pytest.mark.parametrize("after_cycles", [0, 3])
def test_interrupted_capture_still_validates(tiny_dir: Path, tiny: LoadedModel, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             after_cycles: int) -> None:
    monkeypatch.setattr(live.decode, "speculative_generate", _interrupting(1, after_cycles))
    out = tmp_path / "t.jsonl"
    res = capture(_config(tiny_dir, out, draft="none"), progress=False, target=tiny)
    assert res.interrupted
    trace = read_trace(out)
    r, c = trace.requests, trace.cycles
    if after_cycles == 0:  # nothing of request 1 reached the file
        assert list(r["request_id"]) == [0]
        assert set(c["request_id"]) == {0}
    else:  # request 1 is closed with exactly the cycles written
        assert list(r["request_id"]) == [0, 1]
        assert (c["request_id"] == 1).sum() == after_cycles
        assert r["output_tokens"].iat[1] == after_cycles  # target-only: one token a cycle
        assert r["output_text"].isna().iat[1]
        assert r["stop_reason"].iat[1] == "interrupted"  # counted, out of the latency figures
        assert summarize(trace)["interrupted_requests"] == 1
    assert res.requests == len(r) and res.cycles == len(c)


def test_bad_config_is_a_specsim_error(tmp_path: Path) -> None:
    for kw, msg in (({"max_new_tokens": 0}, "--max-new-tokens"), ({"top_p": 0.0}, "--top-p"),
                    ({"temperature": -1.0}, "--temperature"), ({"limit": 0}, "--limit"),
                    ({"warmup_tokens": -1}, "--warmup-tokens")):
        with pytest.raises(SpecsimError, match=msg):
            CaptureConfig(target="x", out=str(tmp_path / "t.jsonl"), **kw)
    with pytest.raises(SpecsimError, match="unknown trace format"):
        CaptureConfig(target="x", out=str(tmp_path / "t.csv"))
    with pytest.raises(SpecsimError, match="does not exist"):
        CaptureConfig(target="x", out=str(tmp_path / "nodir" / "t.jsonl"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analysis.cli", "capture", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_cli_capture_then_bad_inputs_exit_2(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    ok = _cli("--target", str(tiny_dir), "--draft", "ngram:n=2", "--policy", "fixed:tau=2",
              "--limit", "1", "--max-new-tokens", "6", "--temperature", "0.8", "--seed", "3",
              "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "1 requests" in ok.stdout
    meta = read_trace(out).meta
    assert (meta.temperature, meta.seed, meta.draft_model) == (0.8, 3, "ngram:n=2")
    for bad in (["--policy", "nosuch"], ["--draft", "ngram:q=1"], ["--prompts", "builtin:nope"],
                ["--max-new-tokens", "0"], ["--prompts", str(tmp_path / "none.jsonl")]):
        proc = _cli("--target", str(tiny_dir), "--out", str(tmp_path / "b.jsonl"), *bad)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, (bad, proc.stderr)
        assert proc.stderr.startswith("specsim: error: ")


@pytest.mark.model
def test_capture_bundled_smollm2_with_ngram(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "Repeat exactly: the cat sat on the mat."}) + "\n"
        + json.dumps({"prompt": "What is the capital of France?"}) + "\n")
    out = tmp_path / "smol.jsonl"
    proc = _cli("--target", "smollm2", "--draft", "ngram", "--prompts", str(prompts),
                "--max-new-tokens", "16", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(out)
    assert len(trace.requests) == 2
    assert trace.meta.extra["target_n_params"] > 100_000_000
    assert "cat" in trace.requests["output_text"].iat[0].lower()
    assert "paris" in trace.requests["output_text"].iat[1].lower()


def test_capture_profiles_the_verify_pass_into_the_metadata(tiny_dir: Path, tiny: LoadedModel,
                                                           tmp_path: Path) -> None:
    from sim.calibrate.costs import fit_latency, profile_of

    out = tmp_path / "p.jsonl"
    capture(_config(tiny_dir, out, policy="fixed:tau=2", limit=2, profile_tokens=6),
            progress=False, target=tiny)
    trace = read_trace(out)
    prof = trace.meta.extra["verify_profile_s"]
    assert len(prof["seconds"]) == 6 and all(s > 0 for s in prof["seconds"])
    assert prof["context_tokens"] == int(trace.requests["prompt_tokens"].iloc[0])
    assert profile_of(trace) == prof["seconds"]
    # the fitted table covers every profiled draft length, not only the ones the run used
    assert len(fit_latency(trace).verify_table_s) >= 6
    off = tmp_path / "off.jsonl"
    capture(_config(tiny_dir, off, limit=1, profile_tokens=0), progress=False, target=tiny)
    assert "verify_profile_s" not in read_trace(off).meta.extra


def test_interleaved_runs_keep_their_own_timelines(tiny_dir: Path, tiny: LoadedModel,
                                                   tmp_path: Path) -> None:
    from live.capture import LiveRun

    runs = [LiveRun(_config(tiny_dir, tmp_path / f"{name}.jsonl", draft=draft, limit=3),
                    target=tiny, verify_profile={"seconds": [0.01, 0.02]}, pause_between=True)
            for name, draft in (("a", "ngram"), ("b", "none"))]
    for rid in range(3):
        for run in runs:
            assert run.run_request(rid)
    results = [run.close() for run in runs]
    for result in results:
        trace = read_trace(result.path)
        r = trace.requests
        busy = float((r["end_s"] - r["start_s"]).sum())
        # the clock ran only while this run decoded: requests end to end from ~0, and the
        # run's wall time is its own busy time (not the other run's)
        # (tolerances far below the other run's seconds of warm-up and decoding)
        assert r["start_s"].iloc[0] < 0.02
        assert r["start_s"].to_numpy()[1:] == pytest.approx(r["end_s"].to_numpy()[:-1], abs=0.02)
        assert result.wall_s == pytest.approx(busy, abs=0.05)
        assert trace.meta.extra["verify_profile_s"] == {"seconds": [0.01, 0.02]}
        assert "paused" in trace.meta.extra["clock"]


def test_capture_keeps_a_mean_verify_budget(tiny_dir: Path, tiny: LoadedModel,
                                            tmp_path: Path) -> None:
    # 3 requests x 12 tokens at tau <= 2 need >= 12 passes; the pool allows 3 per request
    out = tmp_path / "b.jsonl"
    capture(_config(tiny_dir, out, policy="fixed:tau=2,mean_verify=3", profile_tokens=0),
            progress=False, target=tiny)
    trace = read_trace(out)
    assert int(trace.requests["verify_passes"].sum()) <= 9
    assert len(trace.cycles) == int(trace.requests["verify_passes"].sum())


@pytest.mark.model
def test_record_tokens_writes_ids_that_replay_the_run(tmp_path: Path) -> None:
    """``--record-tokens``: TRACE.tokens.ndjson holds each request's prompt and output ids, and
    an n-gram replay over them gives back the run's own cycles (issue 26)."""
    from sim.calibrate.draftreplay import read_tokens, replay_ngram

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Repeat exactly: the cat sat on the mat."}) + "\n")
    out = tmp_path / "smol.jsonl"
    proc = _cli("--target", "smollm2", "--draft", "ngram:n=2", "--prompts", str(prompts),
                "--max-new-tokens", "16", "--record-tokens", "--seed", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(out)
    tokens = read_tokens(str(out))
    assert set(tokens) == {0}
    assert len(tokens[0][1]) == int(trace.requests["output_tokens"].iloc[0])
    replayed = replay_ngram(trace, str(out), 2)
    cols = ["tau", "emitted", "context_tokens"]
    assert (replayed.cycles[cols].to_numpy() == trace.cycles[cols].to_numpy()).all()
    # accepted too, but on a cycle an EOS cut short (the target's choices past it are unknown)
    cut = (trace.cycles["emitted"] < trace.cycles["accepted"] + 1).to_numpy()
    assert (replayed.cycles["accepted"].to_numpy()[~cut]
            == trace.cycles["accepted"].to_numpy()[~cut]).all()
