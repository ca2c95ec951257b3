"""llama.cpp's real server in the loop (marked ``engine``): started on 127.0.0.1 on a free port
(``live.llamacpp_server``), driven by ``specsim load``, its outputs imported, then stopped.

Bounded: one server for the module, a handful of requests of at most 24 tokens. Skipped where
``llama-server`` is not built, except under ``SPECSIM_REQUIRE_ENGINE=1`` (CI), where that fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from analysis.cli import main
from live.llamacpp_server import RunningServer, running_server

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    from live.engines import llama_server

    if llama_server() is None:
        reason = "llama-server not built (specsim engines install llamacpp)"
        if os.environ.get("SPECSIM_REQUIRE_ENGINE"):  # CI builds it: never skip there
            pytest.fail(reason)
        pytest.skip(reason)
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    with running_server(log, startup_s=120.0) as srv:
        yield srv


@pytest.fixture(scope="module")
def load_trace(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("load") / "T.jsonl"
    rc = main(["load", "--endpoint", f"{server.url}/v1", "--prompts", "builtin:edit",
               "--concurrency", "1", "--requests", "4", "--max-tokens", "24",
               "--metrics-url", f"{server.url}/metrics", "--timeout", "120",
               "--no-progress", "--out", str(out)])
    assert rc == 0
    return out


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_summary_acceptance_equals_the_engines_counters(
        load_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tracing.io import read_trace

    meta = read_trace(str(load_trace)).meta
    counters = meta.extra["engine_counters"]
    assert meta.extra["engine"] == "llamacpp"
    assert counters["num_draft_tokens"] > 0, "the n-gram drafter never drafted on builtin:edit"
    s = _json(capsys, ["trace", "summary", str(load_trace), "--json"])
    assert s["drafted_tokens"] == counters["num_draft_tokens"]
    assert s["accepted_tokens"] == counters["num_accepted_tokens"]
    assert s["spec_cycles"] == counters["num_drafts"]
    assert s["draft_acceptance_rate"] == pytest.approx(counters["draft_acceptance_rate"],
                                                       abs=1e-12)
    # the engine's per-position rates divide its per-position counts by all drafts
    n = len(counters["acceptance_by_position"])
    assert s["acceptance_by_position_per_draft"][:n] == pytest.approx(
        counters["acceptance_by_position"], abs=1e-12)
    assert all(x == 0 for x in s["acceptance_by_position_per_draft"][n:])
    # acceptance_by_position divides the same counts by the drafts that reached each position
    trace = read_trace(str(load_trace))
    spec = trace.cycles[trace.cycles["tau"] > 0]
    per_pos = counters["num_accepted_tokens_per_pos"]
    reached = [int((spec["tau"] >= i + 1).sum()) for i in range(len(s["acceptance_by_position"]))]
    engine = [per_pos[i] / reached[i] if i < len(per_pos) and reached[i] else 0.0
              for i in range(len(reached))]
    assert s["acceptance_by_position"] == pytest.approx(engine, abs=1e-12)


def test_the_trace_says_what_was_measured_and_inferred(load_trace: Path) -> None:
    from tracing.io import read_trace

    trace = read_trace(str(load_trace))
    extra = trace.meta.extra
    assert "step boundaries" in extra["missing"]
    assert extra["engine_config"]["total_slots"] == 1
    assert trace.meta.policy_params == {"tau": 4}
    timings = extra["engine_requests"]
    # each request's own counters (llama.cpp's final timings) equal its cycles' sums
    for rid, tm in timings.items():
        mine = trace.cycles[trace.cycles["request_id"] == rid]
        assert int(mine["tau"].sum()) == int(tm.get("draft_n") or 0)
        assert int(mine["accepted"].sum()) == int(tm.get("draft_n_accepted") or 0)
        assert int(mine["emitted"].sum()) == int(tm["predicted_n"])


def test_every_command_accepts_the_trace(load_trace: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "validate", str(load_trace)]) == 0
    d = _json(capsys, ["diagnose", str(load_trace), "--json"])
    assert isinstance(d["findings"], list)
    w = _json(capsys, ["whatif", str(load_trace), "--vary", "policy.tau=2,4", "--json"])
    assert [p["vary"]["policy.tau"] for p in w["points"]] == [2, 4]
    page = tmp_path / "r.html"
    assert main(["report", str(load_trace), "-o", str(page)]) == 0
    assert "llama" in page.read_text(encoding="utf-8").lower()


def test_import_of_the_servers_own_outputs(server: RunningServer, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Repeat: a b c a b c a b c"}],
            "max_tokens": 16, "temperature": 0.0}
    before = httpx.get(f"{server.url}/metrics", timeout=10).text
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120).json()
    after = httpx.get(f"{server.url}/metrics", timeout=10).text
    (tmp_path / "r.json").write_text(json.dumps(reply))
    (tmp_path / "b.prom").write_text(before)
    (tmp_path / "a.prom").write_text(after)
    got = _json(capsys, ["import", "llamacpp", str(tmp_path / "r.json"), "--json"])
    prom = _json(capsys, ["import", "prometheus", str(tmp_path / "b.prom"),
                          str(tmp_path / "a.prom"), "--json"])
    tm = reply["timings"]
    assert got["requests"] == 1
    assert prom["drafts"] == got["drafts"] or "num_drafts" in got["missing"]
    if tm.get("draft_n"):
        assert got["draft_acceptance_rate"] == pytest.approx(
            tm["draft_n_accepted"] / tm["draft_n"])
        assert prom["draft_acceptance_rate"] == pytest.approx(
            tm["draft_n_accepted"] / tm["draft_n"])
