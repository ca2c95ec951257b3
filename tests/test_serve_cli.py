"""``specsim serve`` and ``specsim load`` as commands: a load run against a served tiny model, then
SIGTERM with a stream in flight leaves a valid trace with the request marked (SIGINT takes the
same handler, tested in-process in test_serve.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("torch")

from tracing import read_trace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _specsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "analysis.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


def _start(tiny_dir: Path, trace: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        _specsim("serve", "--target", str(tiny_dir), "--draft", "ngram", "--policy",
                 "fixed:tau=3", "--max-batch", "3", "--threads", "1", "--port", str(port),
                 "--profile-rounds", "1", "--trace-out", str(trace)),
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("serve did not come up")


def test_load_then_sigterm_leaves_valid_traces(tiny_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    server_trace, client_trace = tmp_path / "server.jsonl", tmp_path / "client.jsonl"
    proc = _start(tiny_dir, server_trace, port)
    try:
        url = f"http://127.0.0.1:{port}"
        load = subprocess.run(
            _specsim("load", "--endpoint", url, "--prompts", "builtin:edit",
                     "--concurrency", "3", "--requests", "5", "--max-tokens", "10",
                     "--out", str(client_trace), "--json"),
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
        assert load.returncode == 0, load.stderr
        summary = json.loads(load.stdout)
        assert (summary["requests"], summary["completed"], summary["errors"]) == (5, 5, 0)
        assert summary["latency_s"]["p50"] >= summary["ttft_s"]["p50"] > 0
        client = read_trace(client_trace)
        assert len(client.requests) == 5
        assert client.cycles["emitted"].sum() == client.requests["output_tokens"].sum()
        assert client.meta.extra["tau_basis"] == {"server steps": 5}
        again = subprocess.run(
            _specsim("load", "--endpoint", url, "--concurrency", "1", "--requests", "1",
                     "--out", str(client_trace)),
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
        assert again.returncode == 2 and "--force" in again.stderr
        with httpx.stream("POST", f"{url}/v1/completions", timeout=60, json={
                "prompt": "the cat", "max_tokens": 900, "temperature": 0,
                "stream": True}) as resp:
            lines = resp.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            proc.send_signal(signal.SIGTERM)
            rest = [json.loads(line[5:]) for line in lines
                    if line.startswith("data:") and line != "data: [DONE]"]
        assert rest[-1]["choices"][0]["finish_reason"] == "abort"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    trace = read_trace(server_trace)  # valid: every line complete, totals add up
    last = trace.requests.iloc[-1]
    assert 0 < last["output_tokens"] < 900
    assert last["stop_reason"] == "interrupted"
    refused = subprocess.run(
        _specsim("serve", "--target", str(tiny_dir), "--trace-out", str(server_trace)),
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--force" in refused.stderr
