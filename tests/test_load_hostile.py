"""``specsim load`` against hostile or broken servers: every malformed reply is an error of its
request (never a traceback) and the trace still validates; bad flags exit 2; the trace is
written as requests end and a SIGINT leaves a valid trace with the cut requests marked."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from analysis.cli import main  # noqa: E402
from live.load import ClientRecord, LoadConfig, run_load  # noqa: E402
from live.load_summary import format_summary, summarize_records  # noqa: E402
from tracing import read_trace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def chunk(text: str, tokens: int, finish: str | None = None, rid: str = "c1",
          **extra: Any) -> str:
    return json.dumps({"id": rid, "choices": [{"index": 0, "delta": {"content": text},
                                               "finish_reason": finish}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": tokens}, **extra})


def good(rid: str = "c1") -> list[str]:
    return [chunk("a", 1, rid=rid), chunk("b", 2, "stop", rid=rid), "[DONE]"]


def sse(lines: list[str]) -> bytes:
    return "".join(f"data: {line}\n\n" for line in lines).encode()


def load_with(tmp_path: Path, monkeypatch: Any, replies: list[list[str]]) -> tuple[dict[str, Any],
                                                                                Path]:
    """run_load against a mock transport answering each request (in order) with ``replies``."""
    queue = list(replies)

    def handler(request: Any) -> Any:
        if request.method == "GET":  # /v1/models: which engine (not llama.cpp here)
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m"}]})
        return httpx.Response(200, content=sse(queue.pop(0)),
                              headers={"content-type": "text/event-stream"})

    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient",
                        functools.partial(real, transport=httpx.MockTransport(handler)))
    out = tmp_path / "client.jsonl"
    config = LoadConfig(endpoint="http://server.invalid", prompts="builtin:chat",
                        requests=len(replies), out=str(out), concurrency=1, model="m",
                        force=True)
    return run_load(config), out


MALFORMED = {
    "tokens_a_word": [chunk("a", 1), chunk("b", 2).replace('"completion_tokens": 2',
                                                             '"completion_tokens": "many"')],
    "tokens_1e400": [chunk("a", 1).replace('"completion_tokens": 1', '"completion_tokens": 1e400')],
    "choices_an_object": [json.dumps({"id": "c1", "choices": {"0": {"text": "a"}}})],
    "chunk_an_array": ["[1, 2, 3]"],
    "chunk_not_json": ['{"id": "c1", "choices": ['],
    "tokens_go_down": [chunk("a", 5), chunk("b", 2, "stop"), "[DONE]"],
    "negative_cycle_ms": [chunk("a", 1), chunk("b", 2, "stop"), json.dumps({
        "id": "c1", "choices": [], "usage": {"completion_tokens": 2},
        "metrics": {"steps": {"drafted": [1, 1], "accepted": [0, 0], "emitted": [1, 1],
                              "batch_size": [1, 1], "cycle_ms": [-5.0, 1.0]}}}), "[DONE]"],
    "steps_of_other_length": [chunk("a", 1), chunk("b", 2, "stop"), json.dumps({
        "id": "c1", "choices": [], "metrics": {"steps": {"drafted": [1, 1, 1],
                                                         "accepted": [0, 0]}}}), "[DONE]"],
    "ended_without_finish_or_done": [chunk("a", 1), chunk("b", 2)],
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_reply_is_an_error_of_that_request(tmp_path: Path, monkeypatch: Any,
                                                       name: str) -> None:
    summary, out = load_with(tmp_path, monkeypatch, [good("ok-1"), MALFORMED[name],
                                                     good("ok-2")])
    assert (summary["completed"], summary["errors"]) == (2, 1), summary
    trace = read_trace(out)  # the reader accepts it
    reasons = dict(zip(trace.requests["request_id"], trace.requests["stop_reason"],
                       strict=True))
    assert reasons["ok-1"] == reasons["ok-2"] == "eos"
    assert sorted(reasons.values()).count("error") == 1


def test_two_requests_sharing_an_id_keep_their_own_lines(tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    summary, out = load_with(tmp_path, monkeypatch, [good("same"), good("same")])
    assert summary["completed"] == 2
    trace = read_trace(out)
    assert len(trace.requests) == 2 and trace.requests["request_id"].is_unique


@pytest.mark.parametrize("flags", [["--rate", "inf"], ["--rate", "nan"],
                                   ["--concurrency", "1", "--temperature", "nan"],
                                   ["--concurrency", "1", "--top-p", "2"],
                                   ["--concurrency", "1", "--timeout", "0"],
                                   ["--concurrency", "1", "--rate-scale", "inf"]])
def test_bad_flags_exit_2_before_sending(tmp_path: Path, monkeypatch: Any,
                                         flags: list[str]) -> None:
    """Against a server that answers well: the flag is refused before any request goes out
    (``--rate inf`` used to run, then traceback writing a trace with ``rate: Infinity``)."""
    sent: list[Any] = []

    def handler(request: Any) -> Any:
        sent.append(request)
        return httpx.Response(200, content=sse(good(f"r{len(sent)}")),
                              headers={"content-type": "text/event-stream"})

    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient",
                        functools.partial(real, transport=httpx.MockTransport(handler)))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["load", "--endpoint", "http://server.invalid", "--model", "m",
                   "--requests", "2", "--no-progress", *flags, "-o", str(tmp_path / "c.jsonl")])
    assert rc == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specsim: error:"), err.getvalue()
    assert not sent and not (tmp_path / "c.jsonl").exists()


def test_no_completions_print_no_latencies() -> None:
    failed = ClientRecord(0, 0.0, "p", 4, status=503, end_s=0.1, error="HTTP 503: busy")
    summary = summarize_records([failed], 1.0)
    assert summary["latency_s"]["p50"] is None and summary["ttft_s"]["mean"] is None
    text = format_summary(summary)
    assert "0.0" not in next(line for line in text.splitlines() if "latency" in line)
    assert "n/a" in text


# -- SIGINT: a real process against a real (scripted) server -------------------------------

async def _scripted_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny OpenAI-ish stream: the first three requests finish at once, later ones hang."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "GET":  # /v1/models: which engine (not llama.cpp here)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"data": [{"id": "m"}]}'})
        return
    n = _scripted_app.count  # type: ignore[attr-defined]
    _scripted_app.count += 1  # type: ignore[attr-defined]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": sse([chunk("a", 1, rid=f"r{n}")]),
                "more_body": True})
    if n >= 3:
        await asyncio.sleep(60)
    await send({"type": "http.response.body",
                "body": sse([chunk("b", 2, "stop", rid=f"r{n}"), "[DONE]"])})


def test_sigint_leaves_a_valid_trace_with_the_cut_requests_marked(tmp_path: Path) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    _scripted_app.count = 0  # type: ignore[attr-defined]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_scripted_app, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    out = tmp_path / "client.jsonl"
    # the child gets SIGINT as a terminal would deliver it, even when this suite runs in the
    # background (`cmd &` starts with SIGINT ignored, and an ignored signal survives exec)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "analysis.cli", "load", "--endpoint",
             f"http://127.0.0.1:{sock.getsockname()[1]}", "--concurrency", "2", "--requests", "8",
             "--model", "m", "--max-tokens", "4", "--no-progress", "-o", str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 60
        # written as it goes: the three finished requests are on disk before the run ends
        while time.monotonic() < deadline and (
                not out.exists() or out.read_text().count('"type":"request"') < 3):
            time.sleep(0.1)
        assert out.read_text().count('"type":"request"') == 3
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: 2" in stdout
    trace = read_trace(out)
    reasons = trace.requests["stop_reason"].value_counts().to_dict()
    assert reasons == {"eos": 3, "interrupted": 2}
    assert trace.meta.extra["load"]["requests"] == 8
