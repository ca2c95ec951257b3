"""``specsim serve`` in-process on a tiny random Llama: the official openai client streaming
concurrently gets exactly target-only greedy text; overload (503), disconnects, bad requests,
stop sequences, vLLM's metrics and the Prometheus page; the trace written under load."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from live.capture import eos_ids  # noqa: E402
from live.decode import target_only_generate  # noqa: E402
from live.models import LoadedModel  # noqa: E402
from live.sampling import SamplingConfig  # noqa: E402
from live.serve import ServeConfig, make_server, start_service  # noqa: E402
from tracing import read_trace  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Running:
    """A server started by a test: its base URL, its service and its trace."""

    url: str
    served: Any
    trace: Path
    server: Any  # the uvicorn server


@contextmanager
def running(tiny: LoadedModel, trace: Path, **kw: Any) -> Iterator[Running]:
    """``specsim serve`` in a thread on a free 127.0.0.1 port; stopped (and its trace closed)
    on exit."""
    base: dict[str, Any] = {"draft": "ngram", "policy": "fixed:tau=3", "max_batch": 4,
                            "profile_rounds": 1, "warmup_tokens": 2}
    base.update(kw)
    served = start_service(ServeConfig(target=tiny.name, trace_out=str(trace), **base),
                           target=tiny)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(served)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        yield Running(f"http://127.0.0.1:{port}", served, trace, server)
    finally:
        served.engine.stop()
        server.should_exit = True
        thread.join(30)
        served.engine.shutdown()
        sock.close()


def greedy_text(tiny: LoadedModel, ids: list[int], max_tokens: int) -> tuple[str, int]:
    """What target-only greedy decoding gives (text, tokens), stopping at the model's EOS."""
    out = target_only_generate(tiny, torch.tensor([ids]), max_new_tokens=max_tokens,
                               sampling=SamplingConfig(),
                               eos_token_ids=eos_ids(tiny.tokenizer, tiny.model))
    return tiny.tokenizer.decode(out, skip_special_tokens=True), len(out)


def chat_ids(tiny: LoadedModel, content: str) -> list[int]:
    ids = tiny.tokenizer.apply_chat_template([{"role": "user", "content": content}],
                                             add_generation_prompt=True, tokenize=True,
                                             return_dict=False)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


QUESTIONS = ["the cat sat on the mat", "a b c a b c a b", "hello", "one two three four five",
             "the quick brown fox jumps over the lazy dog the quick brown", "x"]


def test_openai_client_streams_concurrently_exact_greedy(tiny: LoadedModel,
                                                          tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    max_tokens = 24
    with running(tiny, tmp_path / "server.jsonl") as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="none", max_retries=0)

        def ask(q: str) -> tuple[str, list[str], Any, Any]:
            stream = client.chat.completions.create(
                model=tiny.name, messages=[{"role": "user", "content": q}], temperature=0,
                max_tokens=max_tokens, stream=True, stream_options={"include_usage": True})
            pieces, usage, metrics = [], None, None
            for chunk in stream:
                if chunk.choices:
                    pieces.append(chunk.choices[0].delta.content or "")
                if chunk.usage is not None:
                    usage, metrics = chunk.usage, (chunk.model_extra or {}).get("metrics")
            return "".join(pieces), pieces, usage, metrics

        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            answers = list(pool.map(ask, QUESTIONS))
        for q, (text, pieces, usage, metrics) in zip(QUESTIONS, answers, strict=True):
            want, n = greedy_text(tiny, chat_ids(tiny, q), max_tokens)
            assert text == want
            assert usage.completion_tokens == n
            steps = metrics["steps"]
            assert len(pieces) == len(steps["emitted"])  # one chunk per engine step
            assert sum(steps["emitted"]) == n
            spec = metrics["speculative_decoding"]
            assert spec["num_spec_steps"] == len(spec["per_step_drafted"]) == sum(
                1 for t in steps["drafted"] if t > 0)
            assert spec["num_accepted_draft_tokens"] == sum(spec["per_step_accepted"])
            assert spec["num_draft_tokens"] == sum(spec["per_step_drafted"])
            assert sum(spec["acceptance_histogram"]) == spec["num_spec_steps"]
            assert metrics["time_to_first_token_ms"] >= 0 and metrics["queue_time_ms"] >= 0
        # completions, streamed concurrently and whole: the same text for raw prompts
        def complete(prompt: str) -> str:
            stream = client.completions.create(model=tiny.name, prompt=prompt, temperature=0,
                                               max_tokens=12, stream=True)
            return "".join(c.choices[0].text for c in stream if c.choices)

        raw = QUESTIONS[:4]
        with ThreadPoolExecutor(len(raw)) as pool:
            texts = list(pool.map(complete, raw))
        for prompt, text in zip(raw, texts, strict=True):
            assert text == greedy_text(tiny, tiny.tokenizer(prompt)["input_ids"], 12)[0]
        ids = tiny.tokenizer("the cat sat")["input_ids"]
        whole = client.completions.create(model=tiny.name, prompt="the cat sat",
                                          temperature=0, max_tokens=12)
        assert whole.choices[0].text == greedy_text(tiny, ids, 12)[0]
        assert (whole.model_extra or {})["metrics"]["speculative_decoding"] is not None
    trace = read_trace(srv.trace)  # validated on read
    assert len(trace.requests) == len(QUESTIONS) + 4 + 1
    # under load: cycles of different requests ran in the same engine step
    shared = trace.cycles.groupby("start_s")["request_id"].nunique()
    assert shared.max() > 1
    assert trace.cycles["batch_size"].max() > 1
    profile = trace.meta.extra["batch_verify_profile_s"]
    assert profile["batch"] == [1, 2, 3, 4] and profile["tokens"] == [1, 2, 3, 4]
    assert len(profile["seconds"]) == 4 and all(len(r) == 4 for r in profile["seconds"])


def _stream_first_chunk(url: str, body: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Open a streamed request and read its first chunk; returns (client, response, lines)."""
    client = httpx.Client(timeout=30)
    resp = client.send(client.build_request("POST", f"{url}/v1/completions", json=body),
                       stream=True)
    lines = resp.iter_lines()
    first = next(line for line in lines if line.startswith("data:"))
    assert json.loads(first[5:])["choices"]
    return client, resp, lines


def _admitted_soon(url: str) -> bool:
    """A short request gets the (only) row within 20 s: the previous one freed it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ok = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 2},
                        timeout=30)
        if ok.status_code == 200:
            return True
        time.sleep(0.1)
    return False


def test_overload_503_and_disconnect_frees_the_slot(tiny: LoadedModel, tmp_path: Path) -> None:
    body = {"prompt": "the cat", "max_tokens": 1000, "temperature": 0, "stream": True,
            "ignore_eos": True}
    with running(tiny, tmp_path / "server.jsonl", max_batch=1, max_queue=0) as srv:
        client, resp, _ = _stream_first_chunk(srv.url, body)
        busy = httpx.post(f"{srv.url}/v1/completions",
                          json={"prompt": "hi", "max_tokens": 2}, timeout=30)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["type"] == "server_overloaded"
        resp.close()  # the client goes away mid-stream
        client.close()
        assert _admitted_soon(srv.url)
        with pytest.raises(httpx.ReadTimeout):  # a non-streamed request whose client gives up
            httpx.post(f"{srv.url}/v1/completions", timeout=0.3, json={
                "prompt": "the cat", "max_tokens": 1000, "temperature": 0, "ignore_eos": True})
        assert _admitted_soon(srv.url)
        page = httpx.get(f"{srv.url}/metrics").text
        assert 'specsim:requests_rejected_total{model_name="' in page
    trace = read_trace(srv.trace)
    long = trace.requests[trace.requests["prompt_tokens"] > 2]  # the two 1000-token asks
    assert len(long) == 2 and (long["output_tokens"] < 1000).all()  # cut off when they left
    assert (long["stop_reason"] == "interrupted").all()
    assert (trace.requests["stop_reason"] != "interrupted").sum() == 2


def test_bad_requests_get_openai_error_bodies(tiny: LoadedModel, tmp_path: Path) -> None:
    with running(tiny, tmp_path / "server.jsonl") as srv:
        post = lambda path, body: httpx.post(f"{srv.url}{path}", timeout=30, **body)  # noqa: E731
        cases = [
            ("/v1/completions", {"content": b"{not json", "headers": {
                "content-type": "application/json"}}, 400, None),
            ("/v1/completions", {"json": {"max_tokens": 3}}, 400, "prompt"),
            ("/v1/completions", {"json": {"prompt": "a", "temperature": 5}}, 400, "temperature"),
            ("/v1/completions", {"json": {"prompt": "a", "top_p": 0}}, 400, "top_p"),
            ("/v1/completions", {"json": {"prompt": "a", "n": 2}}, 400, "n"),
            ("/v1/completions", {"json": {"prompt": "a", "max_tokens": 10**6}}, 400,
             "max_tokens"),
            ("/v1/completions", {"json": {"prompt": [10**7]}}, 400, "prompt"),
            ("/v1/completions", {"json": {"prompt": "a", "model": "nope"}}, 404, "model"),
            ("/v1/chat/completions", {"json": {"messages": "hi"}}, 400, "messages"),
            ("/v1/chat/completions", {"json": {"messages": [{"role": "user"}]}}, 400,
             "messages"),
            ("/v1/nowhere", {"json": {}}, 404, None),
        ]
        for path, body, status, param in cases:
            resp = post(path, body)
            assert resp.status_code == status, (path, body)
            err = resp.json()["error"]
            assert set(err) == {"message", "type", "param", "code"} and err["message"]
            assert err["param"] == param
        assert httpx.get(f"{srv.url}/health").json() == {"status": "ok"}
        models = httpx.get(f"{srv.url}/v1/models").json()
        assert models["data"][0]["id"] == tiny.name


def test_stop_sequence_cuts_the_text_and_metrics_add_up(tiny: LoadedModel,
                                                        tmp_path: Path) -> None:
    ids = tiny.tokenizer("a b c a b c a b")["input_ids"]
    full, _ = greedy_text(tiny, ids, 30)
    at = next(i for i in range(3, len(full) - 2) if full[i:i + 2].strip() == full[i:i + 2]
              and full.find(full[i:i + 2]) == i)
    stop = full[at:at + 2]
    with running(tiny, tmp_path / "server.jsonl") as srv:
        resp = httpx.post(f"{srv.url}/v1/completions", timeout=60, json={
            "prompt": "a b c a b c a b", "max_tokens": 30, "temperature": 0, "stop": [stop]})
        choice = resp.json()["choices"][0]
        assert (choice["text"], choice["finish_reason"]) == (full[:at], "stop")
        streamed = []
        with httpx.stream("POST", f"{srv.url}/v1/completions", timeout=60, json={
                "prompt": "a b c a b c a b", "max_tokens": 30, "temperature": 0,
                "stop": stop, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data:") and line != "data: [DONE]":
                    streamed.append(json.loads(line[5:])["choices"][0]["text"])
        assert "".join(streamed) == full[:at]
        seeded = [httpx.post(f"{srv.url}/v1/completions", timeout=60, json={
            "prompt": "a b c", "max_tokens": 12, "temperature": 1.0, "seed": 7}).json()
            ["choices"][0]["text"] for _ in range(2)]
        assert seeded[0] == seeded[1]
        page = httpx.get(f"{srv.url}/metrics").text
    trace = read_trace(srv.trace)
    spec = trace.cycles[trace.cycles["tau"] > 0]
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
              if line.startswith("vllm:spec_decode") and "per_pos" not in line}
    assert values["vllm:spec_decode_num_drafts_total"] == len(spec)
    assert values["vllm:spec_decode_num_draft_tokens_total"] == spec["tau"].sum()
    assert values["vllm:spec_decode_num_accepted_tokens_total"] == spec["accepted"].sum()
    per_pos = [float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith("vllm:spec_decode_num_accepted_tokens_per_pos_total")]
    assert per_pos == [(spec["accepted"] > i).sum() for i in range(int(spec["tau"].max()))]
    assert len(spec) > 0


def test_sigint_ends_streams_in_flight_as_interrupted(tiny: LoadedModel, tmp_path: Path) -> None:
    """The server's SIGINT handler (called as the signal would call it; the CLI test sends a
    real SIGTERM): the stream in flight ends with finish_reason "abort", the server exits and
    the trace is valid with the request marked."""
    body = {"prompt": "the cat sat", "max_tokens": 900, "temperature": 0, "stream": True}
    with running(tiny, tmp_path / "server.jsonl", max_batch=2) as srv:
        client, resp, lines = _stream_first_chunk(srv.url, body)
        srv.server.handle_exit(signal.SIGINT, None)
        rest = [json.loads(line[5:]) for line in lines
                if line.startswith("data:") and line != "data: [DONE]"]
        resp.close()
        client.close()
        assert rest[-1]["choices"][0]["finish_reason"] == "abort"
        deadline = time.monotonic() + 30
        while not srv.server.should_exit and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.server.should_exit
    trace = read_trace(srv.trace)
    assert len(trace.requests) == 1 and 0 < trace.requests["output_tokens"].iloc[0] < 900
    assert trace.requests["stop_reason"].iloc[0] == "interrupted"


def test_start_up_says_each_step_on_stderr(tiny: LoadedModel, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # piped (pytest's stderr is no terminal): one plain line per start-up step, in order
    with running(tiny, tmp_path / "server.jsonl"):
        pass
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("specsim: serve")]
    assert [ln.split(":")[2].split()[0] for ln in lines] == [
        "loading", "loading", "warming", "profiling", "opening"]
    assert "batch 1..4 x tokens 1..4" in lines[3]
