"""specsim import: each engine's documented output in, a valid trace or profile out, the engine's
own acceptance figures reproduced, malformed input named by file:line:field."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main
from tracing import TraceError, read_trace, summarize, validate_trace
from tracing.importers import run_import


def _jsonl(path: Path, objs: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return str(path)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


# -- vLLM responses (docs/features/per_request_metrics.md, .../acceptance_metrics.md) ----------

def _vllm_response(rid: str, created: int, acc: list[int], drafted: list[int], out: int,
                   detailed: bool = True) -> dict[str, Any]:
    k = max(drafted)
    hist = [0] * (k + 1)
    for a in acc:
        hist[a] += 1
    spec: dict[str, Any] = {
        "mean_acceptance_length": 1 + sum(acc) / len(acc),
        "draft_acceptance_rate": sum(acc) / sum(drafted),
        "acceptance_histogram": hist,
        "acceptance_histogram_by_draft_length": {str(k): hist},
        "num_spec_steps": len(acc), "num_accepted_draft_tokens": sum(acc),
        "num_draft_tokens": sum(drafted), "num_spec_tokens": k,
    }
    if detailed:
        spec["per_step_accepted"], spec["per_step_drafted"] = acc, drafted
    return {"id": rid, "object": "chat.completion", "created": created, "model": "llama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 42, "completion_tokens": out, "total_tokens": 42 + out},
            "metrics": {"time_to_first_token_ms": 80.0, "generation_time_ms": 100.0,
                        "queue_time_ms": 10.0, "mean_itl_ms": 9.0, "tokens_per_second": 50.0,
                        "speculative_decoding": spec}}


def test_vllm_detailed_one_cycle_per_step(tmp_path: Path) -> None:
    acc, drafted = [3, 0, 1, 2, 0], [3, 3, 3, 3, 3]
    resp = _vllm_response("chatcmpl-abc123", 1733000000, acc, drafted, 1 + sum(acc) + len(acc))
    src = _jsonl(tmp_path / "r.jsonl", [resp, {"id": "chatcmpl-abc123", "choices": [
        {"delta": {"content": "x"}}]}])  # a stream content chunk: skipped
    res = run_import("vllm", [src])
    t = res.trace
    assert t is not None
    validate_trace(t)
    c = t.cycles
    assert c["request_id"].tolist() == ["chatcmpl-abc123"] * 6
    assert c["tau"].tolist() == [0, *drafted] and c["accepted"].tolist() == [0, *acc]
    assert c["cycle_s"].tolist()[1:] == pytest.approx([0.02] * 5)  # 100 ms over 5 steps
    r = t.requests.iloc[0]
    assert (r["start_s"], r["first_token_s"], r["end_s"]) == pytest.approx((0.01, 0.09, 0.19))
    assert r["stop_reason"] == "eos"
    spec = resp["metrics"]["speculative_decoding"]
    s = res.summary()
    assert s["mean_acceptance_length"] == pytest.approx(spec["mean_acceptance_length"])
    assert s["draft_acceptance_rate"] == pytest.approx(spec["draft_acceptance_rate"])
    assert s["acceptance_by_position"] == pytest.approx([3 / 5, 2 / 5, 1 / 5])
    ts = summarize(t)
    assert ts["mean_acceptance_length"] == pytest.approx(spec["mean_acceptance_length"])
    assert ts["acceptance_by_position"] == pytest.approx(s["acceptance_by_position"])


def test_vllm_summary_histograms_become_a_per_request_profile(tmp_path: Path) -> None:
    a = _vllm_response("cmpl-1", 100, [3, 0, 1], [3, 3, 3], 8, detailed=False)
    b = _vllm_response("cmpl-2", 102, [2, 2], [3, 3], 7, detailed=False)
    res = run_import("vllm", [_jsonl(tmp_path / "r.jsonl", [a, b])])
    assert res.trace is not None
    validate_trace(res.trace)
    c = res.trace.cycles[res.trace.cycles["tau"] > 0]
    assert sorted(c[c["request_id"] == "cmpl-1"]["accepted"]) == [0, 1, 3]
    assert res.trace.requests["arrival_s"].tolist() == [0.0, 2.0]
    assert "cycle_order" in res.missing
    assert res.summary()["mean_acceptance_length"] == pytest.approx(1 + 8 / 5)


def test_vllm_tokens_of_undrafted_steps_and_stops(tmp_path: Path) -> None:
    # first token + 2 steps (0+1 and 3+1 tokens) = 6 of 10 tokens: 4 undrafted steps
    more = _vllm_response("a", 0, [0, 3], [3, 3], 10)
    # 4 tokens but the steps would give 1 + 4 + 4: the last steps were cut by the stop
    cut = _vllm_response("b", 0, [3, 3], [3, 3], 4)
    res = run_import("vllm", [_jsonl(tmp_path / "r.jsonl", [more, cut])])
    assert res.trace is not None
    validate_trace(res.trace)
    c = res.trace.cycles
    assert c[c["request_id"] == "a"]["tau"].tolist() == [0, 3, 3, 0, 0, 0, 0]
    assert c[c["request_id"] == "b"]["emitted"].tolist() == [1, 3, 0]


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda s: s.update(per_step_accepted=[4, 0, 1, 2, 0]), "per_step_accepted[0]"),
    (lambda s: s.update(num_draft_tokens=99), "num_draft_tokens"),
    (lambda s: s.update(per_step_drafted=[3, 3]), "per_step_accepted"),
    (lambda s: s.update(per_step_accepted="x"), "per_step_accepted"),
])
def test_vllm_malformed_names_file_line_field(tmp_path: Path, mutate: Any, field: str) -> None:
    good = _vllm_response("a", 0, [3, 0, 1, 2, 0], [3] * 5, 12)
    bad = _vllm_response("b", 0, [3, 0, 1, 2, 0], [3] * 5, 12)
    mutate(bad["metrics"]["speculative_decoding"])
    src = _jsonl(tmp_path / "r.jsonl", [good, bad])
    rc, out, err = _cli("import", "vllm", src)
    assert rc == 2 and out == ""
    assert f"{src}:2 field 'metrics.speculative_decoding.{field}'" in err
    assert len(err.strip().splitlines()) == 1


def test_import_json_and_scenario_that_simulate_runs(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "r.jsonl", [_vllm_response("a", 0, [3, 0, 1, 2, 0], [3] * 5, 12)])
    rc, out, _ = _cli("import", "vllm", src, "--json", "-o", str(tmp_path / "t.parquet"))
    assert rc == 0
    s = json.loads(out)
    assert set(s) >= {"format", "requests", "cycles", "draft_acceptance_rate",
                      "mean_acceptance_length", "acceptance_by_position", "missing"}
    assert (s["format"], s["requests"], s["cycles"]) == ("vllm", 1, 6)
    assert read_trace(tmp_path / "t.parquet").requests["request_id"].tolist() == ["a"]
    rc, _, err = _cli("import", "vllm", src, "-o", str(tmp_path / "t.parquet"))
    assert rc == 2 and "--force" in err
    toml = tmp_path / "s.toml"
    assert _cli("import", "vllm", src, "-o", str(toml))[0] == 0
    text = toml.read_text()
    assert 'model = "positional"' in text and "alpha = [0.6, 0.666667, 0.5]" in text
    rc, out, err = _cli("simulate", str(toml), "--json")
    assert rc == 0, err
    assert json.loads(out)["requests"] == 200


# -- vLLM logs -------------------------------------------------------------------------------

LOG = """\
INFO 04-01 10:00:00 [loggers.py:116] Engine 000: Avg prompt throughput: 10.0 tokens/s
INFO 04-01 10:00:10 [metrics.py:82] SpecDecoding metrics: Draft acceptance rate: 50.0%, Accepted: 60 tokens, Drafted: 120 tokens
INFO 04-01 10:00:20 [metrics.py:86] SpecDecoding metrics: Draft acceptance rate: 50.0%, Mean acceptance length: 2.50, Accepted: 150 tokens, Drafted: 300 tokens, Per-position acceptance rate: 0.800, 0.500, 0.200
INFO 04-01 10:00:30 [metrics.py:96] SpecDecoding metrics: Mean acceptance length: 2.00, Accepted throughput: 5.00 tokens/s, Drafted throughput: 15.00 tokens/s, Accepted: 50 tokens, Drafted: 150 tokens, Per-position acceptance rate: 0.600, 0.300, 0.100, Avg Draft acceptance rate: 33.3%
"""


def test_vllm_log_every_v1_shape(tmp_path: Path) -> None:
    src = tmp_path / "server.log"
    src.write_text(LOG)
    res = run_import("vllm-log", [str(src)])
    assert res.trace is None and len(res.intervals) == 3
    assert [i["line"] for i in res.intervals] == [2, 3, 4]
    assert res.intervals[0]["mean_acceptance_length"] is None  # shape 1 cannot say
    assert res.intervals[1]["drafts"] == 100 and res.intervals[2]["drafts"] == 50
    assert res.intervals[1]["mean_acceptance_length"] == pytest.approx(2.5)
    p = res.profile
    # aggregate: counts summed (rates weighted by drafts); shape 1's tokens count in the rate
    assert res.summary()["draft_acceptance_rate"] == pytest.approx(260 / 570)
    assert p.draft_acceptance_rate == pytest.approx(200 / 450)  # lines that count drafts
    assert p.mean_acceptance_length == pytest.approx(1 + 200 / 150)
    assert p.acceptance_by_position == pytest.approx([(80 + 30) / 150, (50 + 15) / 150,
                                                      (20 + 5) / 150])
    assert "mean_acceptance_length" in res.missing


def test_vllm_log_v0_cumulative_lines(tmp_path: Path) -> None:
    src = tmp_path / "v0.log"
    src.write_text(
        "INFO 10-16 19:05:47 metrics.py:367] Speculative metrics: Draft acceptance rate: 0.600, "
        "System efficiency: 0.500, Number of speculative tokens: 3, Number of accepted tokens: 60, "
        "Number of draft tokens: 100, Number of emitted tokens: 80.\n"
        "INFO 10-16 19:05:52 metrics.py:367] Speculative metrics: Draft acceptance rate: 0.700, "
        "System efficiency: 0.600, Number of speculative tokens: 3, Number of accepted tokens: 90, "
        "Number of draft tokens: 150, Number of emitted tokens: 120.\n")
    res = run_import("vllm-log", [str(src)])
    assert [i["accepted_tokens"] for i in res.intervals] == [60, 30]
    assert res.profile.draft_acceptance_rate == pytest.approx(90 / 150)
    assert res.profile.mean_acceptance_length == pytest.approx(1 + 90 / 50)


def test_vllm_log_malformed(tmp_path: Path) -> None:
    src = tmp_path / "bad.log"
    src.write_text(LOG.replace("Accepted: 50 tokens", "Accepted: 500 tokens"))
    with pytest.raises(TraceError, match=rf"{src}:4 field 'Accepted'"):
        run_import("vllm-log", [str(src)])
    toml = tmp_path / "s.toml"
    src.write_text(LOG)
    assert _cli("import", "vllm-log", str(src), "-o", str(toml))[0] == 0
    rc, _, err = _cli("import", "vllm-log", str(src), "-o", str(tmp_path / "t.jsonl"))
    assert rc == 2 and "scenario (.toml)" in err


# -- Prometheus scrapes ------------------------------------------------------------------------

def _scrape(drafts: float, tokens: float, acc: float, per_pos: list[float], suffix: str) -> str:
    lab = 'engine="0",model_name="llama"'
    lines = ["# HELP vllm:spec_decode_num_drafts Number of spec decoding drafts.",
             f"# TYPE vllm:spec_decode_num_drafts{suffix} counter",
             f"vllm:spec_decode_num_drafts{suffix}{{{lab}}} {drafts}",
             f"vllm:spec_decode_num_draft_tokens{suffix}{{{lab}}} {tokens}",
             f"vllm:spec_decode_num_accepted_tokens{suffix}{{{lab}}} {acc}"]
    lines += [f'vllm:spec_decode_num_accepted_tokens_per_pos{suffix}{{{lab},position="{i}"}} {v}'
              for i, v in enumerate(per_pos)]
    lines.append("sglang:spec_accept_length 2.5")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("suffix", ["_total", ""])
def test_prometheus_deltas(tmp_path: Path, suffix: str) -> None:
    before, after = tmp_path / "before.prom", tmp_path / "after.prom"
    before.write_text(_scrape(100, 300, 120, [60, 40, 20], suffix))
    after.write_text(_scrape(300, 900, 420, [220, 140, 60], suffix))
    res = run_import("prometheus", [str(before), str(after)])
    s = res.summary()
    assert s["drafts"] == 200 and s["draft_tokens"] == 600 and s["accepted_tokens"] == 300
    assert s["mean_acceptance_length"] == pytest.approx(2.5)
    assert s["acceptance_by_position"] == pytest.approx([0.8, 0.5, 0.2])
    assert s["sglang_spec_accept_length"] == 2.5
    rc, _, err = _cli("import", "prometheus", str(after), str(before))
    assert rc == 2 and f"{before}:3 field 'vllm:spec_decode_num_drafts" in err
    assert "went down" in err


# -- SGLang and llama.cpp ----------------------------------------------------------------------

def test_sglang_meta_info(tmp_path: Path) -> None:
    meta = {"id": "5799660f79fd4dc481ac2226d5b97102", "prompt_tokens": 120,
            "completion_tokens": 10, "e2e_latency": 0.08, "finish_reason": {"type": "stop"},
            "spec_verify_ct": 4, "spec_accept_length": 2.5, "spec_accept_rate": 0.5,
            "spec_accept_token_num": 6, "spec_draft_token_num": 12,
            "spec_accept_histogram": [1, 1, 1, 1]}
    src = _jsonl(tmp_path / "s.jsonl", [{"text": "x", "meta_info": meta}])
    res = run_import("sglang", [src])
    assert res.trace is not None
    validate_trace(res.trace)
    s = res.summary()
    assert s["draft_acceptance_rate"] == pytest.approx(meta["spec_accept_rate"])
    assert s["mean_acceptance_length"] == pytest.approx(1 + 6 / 4)
    assert s["acceptance_by_position"] == pytest.approx([0.75, 0.5, 0.25])
    assert res.trace.requests["request_id"].tolist() == [meta["id"]]
    meta["spec_accept_token_num"] = 7
    bad = _jsonl(tmp_path / "b.jsonl", [{"meta_info": meta}])
    with pytest.raises(TraceError, match=r":1 field 'meta_info.spec_accept_token_num'"):
        run_import("sglang", [bad])


def test_llamacpp_timings(tmp_path: Path) -> None:
    resp = {"id": "chatcmpl-x", "content": "...", "stop_type": "eos", "tokens_predicted": 21,
            "timings": {"prompt_n": 20, "prompt_ms": 300.0, "predicted_n": 21,
                        "predicted_ms": 400.0, "draft_n": 32, "draft_n_accepted": 12}}
    res = run_import("llamacpp", [_jsonl(tmp_path / "l.jsonl", [resp])])
    assert res.trace is not None
    validate_trace(res.trace)
    s = res.summary()
    assert s["draft_acceptance_rate"] == pytest.approx(12 / 32)
    assert s["cycles"] == 1 + 8  # 21 - 1 - 12 decode steps after the prefill's token
    assert s["mean_acceptance_length"] == pytest.approx(1 + 12 / 8)
    assert "num_drafts" in s["missing"]
    resp["timings"]["draft_n_accepted"] = 40
    bad = _jsonl(tmp_path / "b.jsonl", [resp])
    with pytest.raises(TraceError, match=r":1 field 'timings.draft_n_accepted'"):
        run_import("llamacpp", [bad])
