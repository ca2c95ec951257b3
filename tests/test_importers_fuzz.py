"""No importer input ends in a traceback: damaged engine output (wrong types, missing fields,
NaN, 2**70, nested damage, dropped and duplicated lines) through ``specsim import`` exits 0 or 2
with one error line."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.cli import main

BAD: list[Any] = [None, float("nan"), float("inf"), -1, 2**70, 10**15, 1.5, "x", "", True, [],
                  [1, "a"], [10**15], {"a": 1}, {"3": [10**15]}, {"-1": []}, 0]

VLLM = {"id": "chatcmpl-a", "created": 1, "choices": [{"finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 7},
        "metrics": {"time_to_first_token_ms": 5.0, "generation_time_ms": 9.0, "queue_time_ms": 1.0,
                    "speculative_decoding": {
                        "num_spec_steps": 2, "num_draft_tokens": 6,
                        "num_accepted_draft_tokens": 4, "num_spec_tokens": 3,
                        "acceptance_histogram": [0, 1, 0, 1],
                        "acceptance_histogram_by_draft_length": {"3": [0, 1, 0, 1]},
                        "per_step_accepted": [1, 3], "per_step_drafted": [3, 3]}}}
SGLANG = {"meta_info": {"id": "r1", "prompt_tokens": 3, "completion_tokens": 6,
                        "e2e_latency": 0.1, "finish_reason": {"type": "stop"},
                        "spec_verify_ct": 2, "spec_accept_token_num": 3,
                        "spec_draft_token_num": 6, "spec_accept_histogram": [0, 1, 1]}}
LLAMA = {"id": "c1", "stop_type": "eos",
         "timings": {"prompt_n": 3, "prompt_ms": 2.0, "predicted_n": 9, "predicted_ms": 8.0,
                     "draft_n": 8, "draft_n_accepted": 4}}
FIXTURES = {"vllm": VLLM, "sglang": SGLANG, "llamacpp": LLAMA}


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def damaged(draw: st.DrawFn, fixture: dict[str, Any]) -> str:
    lines = [copy.deepcopy(fixture) for _ in range(2)]
    if "id" in fixture:  # a second request of its own
        lines[1]["id"] = "other"
    else:
        lines[1]["meta_info"]["id"] = "r2"
    for _ in range(draw(st.integers(1, 3))):
        rec = lines[draw(st.integers(0, len(lines) - 1))]
        paths = _paths(rec)
        if not paths:  # everything already deleted
            continue
        path = draw(st.sampled_from(paths))
        parent: Any = rec
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["set", "delete", "dup", "drop"]))
        if op == "set":
            parent[path[-1]] = draw(st.sampled_from(BAD))
        elif op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "dup":
            lines.append(copy.deepcopy(rec))
        elif op == "drop" and len(lines) > 1:
            lines.remove(rec)
    return "".join(json.dumps(r) + "\n" for r in lines)


LOG = ("INFO SpecDecoding metrics: Mean acceptance length: 2.00, Accepted: 50 tokens, "
       "Drafted: 150 tokens, Per-position acceptance rate: 0.600, 0.300, 0.100, "
       "Avg Draft acceptance rate: 33.3%\n")
WORDS = ["Accepted: 99999999999999999999 tokens", "Drafted: 0 tokens", "nan", "1e309",
         "Per-position acceptance rate: 1.5, 0.2", "Mean acceptance length: 0.5", "", "Drafted:"]


def _check(tmp: Path, fmt: str, text: str) -> None:
    src = tmp / "in.txt"
    src.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["import", fmt, str(src), "--json"])
    assert rc in (0, 2), err.getvalue()
    if rc == 2:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("specsim: error:"), err.getvalue()
    else:
        json.loads(out.getvalue())


_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("fmt", list(FIXTURES))
def test_response_importers_never_crash(tmp_path: Path, fmt: str) -> None:
    @_SETTINGS
    @given(damaged(FIXTURES[fmt]))
    def run(text: str) -> None:
        _check(tmp_path, fmt, text)

    run()


def test_log_and_scrape_importers_never_crash(tmp_path: Path) -> None:
    @_SETTINGS
    @given(st.lists(st.tuples(st.sampled_from(WORDS), st.integers(0, len(LOG))), max_size=3))
    def run(edits: list[tuple[str, int]]) -> None:
        text = LOG
        for word, at in edits:
            text = text[:at] + word + text[at:]
        _check(tmp_path, "vllm-log", text)
        _check(tmp_path, "prometheus", text.replace("INFO SpecDecoding metrics: ",
                                                    "vllm:spec_decode_num_drafts_total "))

    run()
