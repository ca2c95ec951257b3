"""Readers and importers bound what they allocate and say what they skipped; ``trace validate``
counts cycles without a request line and salvages cut traces; ``summary`` prints no latency for
no requests. Each input here is one the issue found mishandled; the property tests at the end
push huge counts through every reader under a memory bound."""

from __future__ import annotations

import contextlib
import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.cli import main
from conftest import make_small_trace
from tracing import read_trace, write_trace

MEMORY_BOUND = 256 * 2**20  # bytes a reader may allocate for a few-line input


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def one_error(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specsim: error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def trace_lines(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "base.jsonl"
    write_trace(make_small_trace(), path)
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_lines(path: Path, recs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.mark.parametrize("tau", [4_000_000_000_000, 65_537])
def test_a_huge_tau_is_exit_2_naming_line_and_field(tmp_path: Path, tau: int) -> None:
    recs = trace_lines(tmp_path)
    first = next(i for i, r in enumerate(recs) if r["type"] == "cycle")
    recs[first]["tau"] = tau
    path = write_lines(tmp_path / "t.jsonl", recs)
    for cmd in (["trace", "validate"], ["trace", "summary"]):
        rc, _, err = run([*cmd, str(path)])
        assert rc == 2
        one_error(err, f"{path}:{first + 1}", "'tau'", "65,536")


def test_tau_at_the_limit_reads(tmp_path: Path) -> None:
    recs = trace_lines(tmp_path)
    first = next(i for i, r in enumerate(recs) if r["type"] == "cycle")
    recs[first]["tau"] = 65_536
    rc, out, err = run(["trace", "summary", str(write_lines(tmp_path / "t.jsonl", recs)),
                        "--json"])
    assert rc == 0, err
    assert len(json.loads(out)["acceptance_by_position"]) == 65_536


VLLM = {"id": "a", "usage": {"prompt_tokens": 4, "completion_tokens": 4},
        "metrics": {"speculative_decoding": {"per_step_accepted": [1, 0],
                                             "per_step_drafted": [2, 2], "num_spec_tokens": 2}}}
SGLANG = {"meta_info": {"id": "r1", "prompt_tokens": 3, "completion_tokens": 6,
                        "spec_verify_ct": 2, "spec_accept_token_num": 3,
                        "spec_draft_token_num": 6, "spec_accept_histogram": [0, 1, 1]}}
LLAMA = {"id": "c1", "timings": {"prompt_n": 3, "predicted_n": 9, "draft_n": 8,
                                 "draft_n_accepted": 4}}


def _with(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(obj))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize("fmt,obj,field", [
    ("vllm", _with(VLLM, ("metrics", "speculative_decoding", "per_step_drafted"),
                   [100_000_000, 2]), "per_step_drafted[0]"),
    ("vllm", _with(VLLM, ("metrics", "speculative_decoding", "num_spec_tokens"), 100_000_000),
     "num_spec_tokens"),
    ("sglang", _with(SGLANG, ("meta_info", "spec_draft_token_num"), 200_000_000),
     "spec_draft_token_num"),
    ("sglang", _with(_with(SGLANG, ("meta_info", "spec_accept_histogram"), None),
                     ("meta_info", "spec_draft_token_num"), 200_000_000),
     "spec_draft_token_num"),
    ("llamacpp", _with(LLAMA, ("timings", "draft_n"), 9_000_000), "draft_n"),
])
def test_importers_refuse_huge_draft_lengths(tmp_path: Path, fmt: str, obj: dict[str, Any],
                                            field: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(obj) + "\n")
    rc, _, err = run(["import", fmt, str(src), "--json"])
    assert rc == 2
    one_error(err, f"{src}:1", field)


def test_prometheus_position_past_the_limit_is_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "scrape.txt"
    src.write_text('vllm:spec_decode_num_drafts_total{model_name="m"} 10\n'
                   'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="100000000"} 1\n')
    rc, _, err = run(["import", "prometheus", str(src), "--json"])
    assert rc == 2
    one_error(err, f"{src}:2", "per_pos")
    src.write_text('vllm:spec_decode_num_accepted_tokens_per_pos_total{position="\u00b2"} 1\n')
    assert run(["import", "prometheus", str(src)])[0] == 2  # a digit, but not an ASCII one


@pytest.mark.parametrize("line,field", [
    ("Speculative metrics: Draft acceptance rate: 0.5, System efficiency: 0.5, Number of "
     "speculative tokens: 0, Number of accepted tokens: 75, Number of draft tokens: 150, "
     "Number of emitted tokens: 100.", "Number of speculative tokens"),
    ("Speculative metrics: Number of speculative tokens: 3, Number of accepted tokens: "
     f"{10**23}, Number of draft tokens: {10**23}", "Number of accepted tokens"),
    (f"SpecDecoding metrics: Accepted: {10**23} tokens, Drafted: {10**23} tokens", "Accepted"),
    ("Speculative metrics: Number of speculative tokens: 100000000, Number of accepted "
     "tokens: 1, Number of draft tokens: 300000000", "Number of speculative tokens"),
])
def test_vllm_log_refuses_impossible_counts(tmp_path: Path, line: str, field: str) -> None:
    src = tmp_path / "server.log"
    src.write_text("INFO 12-01 " + line + "\n")
    rc, _, err = run(["import", "vllm-log", str(src), "--json"])
    assert rc == 2
    one_error(err, f"{src}:1", field)


@pytest.mark.parametrize("fmt,obj", [("sglang", SGLANG), ("llamacpp", LLAMA)])
def test_sglang_and_llamacpp_say_how_many_objects_they_skipped(tmp_path: Path, fmt: str,
                                                               obj: dict[str, Any]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(obj) + "\n" + '{"hello": 1}\n{"choices": []}\n')
    rc, out, err = run(["import", fmt, str(src), "--json"])
    assert rc == 0, err
    assert json.loads(out)["missing"]["skipped"].startswith("2 JSON objects")
    src.write_text(json.dumps(obj) + "\n")
    assert "skipped" not in json.loads(run(["import", fmt, str(src), "--json"])[1])["missing"]


def test_validate_reports_cycles_without_a_request_line(tmp_path: Path) -> None:
    recs = [r for r in trace_lines(tmp_path) if r["type"] != "request"]
    path = write_lines(tmp_path / "killed.jsonl", recs)
    rc, out, _ = run(["trace", "validate", str(path)])
    assert rc == 0
    assert "5 cycles of 2 requests have no request line" in out
    rc, out, _ = run(["trace", "validate", str(path), "--json"])
    got = json.loads(out)
    assert (got["cycles_without_request"], got["requests_without_line"]) == (5, 2)
    # one request completed, the other was still running
    recs = [r for r in trace_lines(tmp_path) if not (r["type"] == "request"
                                                    and r["request_id"] == 1)]
    got = json.loads(run(["trace", "validate", str(write_lines(path, recs)), "--json"])[1])
    assert (got["requests"], got["cycles_without_request"]) == (1, 2)


def test_summary_prints_no_latency_without_requests(tmp_path: Path) -> None:
    recs = [r for r in trace_lines(tmp_path) if r["type"] != "request"]
    path = write_lines(tmp_path / "killed.jsonl", recs)
    rc, out, _ = run(["trace", "summary", str(path)])
    assert rc == 0
    latency = next(line for line in out.splitlines() if line.strip().startswith("latency"))
    assert "0.0 ms" not in latency and "n/a" in latency
    got = json.loads(run(["trace", "summary", str(path), "--json"])[1])
    assert got["latency_s"]["p50"] is None and "latency_s" in got["unavailable"]


@pytest.mark.parametrize("tail", [b'{"type":"cycle","request_id":1,"cy', b'{"x":"\xc3'])
def test_salvage_keeps_the_complete_records_of_a_cut_trace(tmp_path: Path, tail: bytes) -> None:
    src = tmp_path / "base.jsonl"
    write_trace(make_small_trace(), src)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(src.read_bytes() + tail)
    assert run(["trace", "validate", str(cut)])[0] == 2
    out = tmp_path / "saved.jsonl"
    rc, text, err = run(["trace", "validate", str(cut), "--salvage", str(out)])
    assert rc == 0, err
    assert "2 requests, 5 cycles kept" in text and "cut line 9" in text
    saved = read_trace(out)
    assert len(saved.requests) == 2 and len(saved.cycles) == 5
    rc, _, err = run(["trace", "validate", str(cut), "--salvage", str(out)])
    assert rc == 2 and "--force" in one_error(err)
    assert run(["trace", "validate", str(cut), "--salvage", str(out), "--force"])[0] == 0
    rc, _, err = run(["trace", "validate", str(cut), "--salvage", str(cut), "--force"])
    assert rc == 2  # never over the trace it reads


# -- property tests: huge counts anywhere, through every reader, in bounded memory ----------

HUGE = [65_537, 10**8, 4 * 10**12, 2**63 - 1, 10**23]
# engine output: past every limit (65,537 *tokens* is a legal, slow-to-lay-out response)
PAST = HUGE[1:]


_WARM: set[str] = set()


def _bounded(argv: list[str]) -> None:
    """Exit 0 or 2 with one line, allocating under MEMORY_BOUND (the command's lazy imports
    happen once, untraced, first: tracing them is slow and not the reader's allocation)."""
    kind = " ".join(argv[:2])
    if kind not in _WARM:
        _WARM.add(kind)
        run(argv)
    tracemalloc.start()
    try:
        rc, _, err = run(argv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc in (0, 2), err
    if rc == 2:
        one_error(err)
    assert peak < MEMORY_BOUND, (argv, peak)


_SETTINGS = settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_huge_counts_in_a_trace_are_bounded(tmp_path: Path) -> None:
    base = trace_lines(tmp_path)
    counts = ["tau", "accepted", "emitted", "cycle", "context_tokens", "output_tokens",
              "prompt_tokens", "verify_passes", "batch_size"]

    @_SETTINGS
    @given(st.lists(st.tuples(st.integers(0, len(base) - 1), st.sampled_from(counts),
                              st.sampled_from(HUGE)), min_size=1, max_size=3))
    def check(edits: list[tuple[int, str, int]]) -> None:
        recs = [dict(r) for r in base]
        for i, key, value in edits:
            if recs[i]["type"] != "run":
                recs[i][key] = value
        path = write_lines(tmp_path / "m.jsonl", recs)
        _bounded(["trace", "validate", str(path)])
        _bounded(["trace", "summary", str(path), "--json"])

    check()


def test_huge_counts_in_engine_output_are_bounded(tmp_path: Path) -> None:
    cases = [("vllm", VLLM, ("metrics", "speculative_decoding", "num_spec_tokens")),
             ("vllm", VLLM, ("metrics", "speculative_decoding", "per_step_drafted")),
             ("vllm", VLLM, ("usage", "completion_tokens")),
             ("sglang", SGLANG, ("meta_info", "spec_draft_token_num")),
             ("sglang", SGLANG, ("meta_info", "spec_verify_ct")),
             ("sglang", SGLANG, ("meta_info", "completion_tokens")),
             ("llamacpp", LLAMA, ("timings", "draft_n")),
             ("llamacpp", LLAMA, ("timings", "predicted_n"))]

    @_SETTINGS
    @given(st.sampled_from(cases), st.sampled_from(PAST), st.booleans())
    def check(case: tuple[str, dict[str, Any], tuple[str, ...]], value: int,
              as_list: bool) -> None:
        fmt, obj, path = case
        src = tmp_path / "in.jsonl"
        src.write_text(json.dumps(_with(obj, path, [value, 1] if as_list else value)) + "\n")
        _bounded(["import", fmt, str(src), "--json"])

    check()

    @_SETTINGS
    @given(st.sampled_from(HUGE), st.sampled_from(HUGE))
    def scrape(position: int, value: int) -> None:
        src = tmp_path / "scrape.txt"
        src.write_text('vllm:spec_decode_num_drafts_total{model_name="m"} 10\n'
                       f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{position="{position}"}} '
                       f"{value}\n")
        _bounded(["import", "prometheus", str(src), "--json"])

    scrape()

    @_SETTINGS
    @given(st.sampled_from(HUGE), st.sampled_from(HUGE), st.sampled_from(HUGE),
           st.integers(0, 4))
    def log(k: int, accepted: int, drafted: int, positions: int) -> None:
        src = tmp_path / "server.log"
        rates = ", ".join(["0.5"] * positions)
        src.write_text(
            f"Speculative metrics: Number of speculative tokens: {k}, Number of accepted "
            f"tokens: {accepted}, Number of draft tokens: {drafted}\n"
            f"SpecDecoding metrics: Accepted: {accepted} tokens, Drafted: {drafted} tokens"
            + (f", Per-position acceptance rate: {rates}" if positions else "") + "\n")
        _bounded(["import", "vllm-log", str(src), "--json"])

    log()
