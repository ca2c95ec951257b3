"""llama.cpp's real outputs, recorded from llama-server by ``tests/bench/record_llamacpp.py``
(``tests/data/llamacpp/``): its responses, streams, scrapes and log, read by the importers and
by the load generator's stream reader. The four requests of the recording are counted by each
source alike: the responses' ``timings``, the log's per-task lines, and the ``/metrics``
counters scraped before and after them."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from analysis.cli import main
from live.load import ClientRecord
from live.load_llamacpp import is_llamacpp, regroup, steps_of
from tracing.errors import TraceError
from tracing.importers.llamacpp import import_llamacpp
from tracing.importers.llamacpp_log import import_llamacpp_log
from tracing.importers.prometheus import import_prometheus

DATA = Path(__file__).parent / "data" / "llamacpp"
RESPONSES = [str(DATA / n) for n in ("chat.json", "completion.json", "stream_chat.sse",
                                     "stream_plain.sse")]


def _chunks(name: str) -> list[dict]:
    return [json.loads(line[5:]) for line in (DATA / name).read_text().splitlines()
            if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def _final_timings() -> list[dict]:
    out = [json.loads((DATA / n).read_text())["timings"] for n in ("chat.json",
                                                                    "completion.json")]
    for name in ("stream_chat.sse", "stream_plain.sse"):
        out.append([c for c in _chunks(name) if "timings" in c][-1]["timings"])
    return out


def test_the_three_sources_count_the_same_drafts() -> None:
    timings = _final_timings()
    drafted = sum(t.get("draft_n", 0) for t in timings)
    accepted = sum(t.get("draft_n_accepted", 0) for t in timings)
    assert drafted > 0, "the recording never drafted: re-record with a copy-heavy prompt"
    responses = import_llamacpp(RESPONSES).summary()
    log = import_llamacpp_log([str(DATA / "server.log")]).summary()
    prom = import_prometheus([str(DATA / "metrics_before.prom"),
                              str(DATA / "metrics_after.prom")])
    assert responses["requests"] == log["requests"] == 4
    for got in (responses, log, prom.summary()):
        assert got["draft_acceptance_rate"] == pytest.approx(accepted / drafted)
    assert prom.profile.draft_tokens == drafted and prom.profile.accepted_tokens == accepted
    assert prom.extra["engine"] == "llamacpp"
    assert sum(prom.profile.accepted_per_pos) == accepted  # the per-position counters add up


def test_a_stream_is_read_from_its_final_chunk() -> None:
    chunks = _chunks("stream_chat.sse")
    with_timings = [c for c in chunks if "timings" in c]
    assert len(with_timings) > 1  # timings_per_token: every token's chunk
    got = import_llamacpp([str(DATA / "stream_chat.sse")])
    assert len(got.trace.requests) == 1
    assert int(got.trace.requests["output_tokens"].iloc[0]) == \
        with_timings[-1]["timings"]["predicted_n"]


def test_llamacpp_streams_one_chunk_per_token_and_steps_are_rebuilt() -> None:
    chunks = [c for c in _chunks("stream_chat.sse") if "timings" in c]
    preds = [c["timings"]["predicted_n"] for c in chunks]
    assert all(b - a <= 1 for a, b in pairwise(preds))  # one token a chunk
    steps = steps_of([(float(i), c["timings"]) for i, c in enumerate(chunks)])
    final = chunks[-1]["timings"]
    assert sum(s.emitted for s in steps) == final["predicted_n"]
    assert sum(s.drafted for s in steps) == final.get("draft_n", 0)
    assert sum(s.accepted for s in steps) == final.get("draft_n_accepted", 0)
    assert all(s.emitted <= s.accepted + 1 for s in steps)
    assert any(s.emitted > 1 for s in steps)  # a step that emitted accepted drafts
    rec = ClientRecord(0, 0.0, "p", 32)
    rec.chunk_timings = [(float(i), c["timings"]) for i, c in enumerate(chunks)]
    assert regroup(rec) and len(rec.chunks) == len(steps)
    assert rec.metrics["steps"]["drafted"] == [s.drafted for s in steps]


def test_the_models_reply_names_llamacpp() -> None:
    props = json.loads((DATA / "props.json").read_text())
    assert isinstance(props.get("total_slots"), int)
    assert is_llamacpp({"data": [{"id": "m", "owned_by": "llamacpp"}]})
    assert not is_llamacpp({"data": [{"id": "m", "owned_by": "vllm"}]})
    assert not is_llamacpp({"data": []}) and not is_llamacpp(None)


def test_a_cut_log_names_the_task_and_line(tmp_path: Path) -> None:
    lines = (DATA / "server.log").read_text().splitlines()
    cut = [i for i, line in enumerate(lines) if "| prompt eval time =" in line][-1]
    (tmp_path / "cut.log").write_text("\n".join(lines[:cut + 1]) + "\n")
    with pytest.raises(TraceError, match=r"cut\.log:\d+.*eval time"):
        import_llamacpp_log([str(tmp_path / "cut.log")])


def test_cli_imports_the_log_and_the_scrapes(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "log.jsonl"
    assert main(["import", "llamacpp-log", str(DATA / "server.log"), "-o", str(out)]) == 0
    assert main(["trace", "validate", str(out)]) == 0
    capsys.readouterr()
    assert main(["import", "prometheus", str(DATA / "metrics_before.prom"),
                 str(DATA / "metrics_after.prom"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["engine"] == "llamacpp" and got["drafts"] > 0
