"""``specsim load``: an async load generator for any OpenAI-compatible streaming endpoint.

Requests go out on a schedule -- Poisson arrivals (``rate``), a closed loop keeping
``concurrency`` in flight, or the arrival times of an Azure LLM trace CSV / Mooncake JSONL
(read by :mod:`sim.calibrate.arrivals`, the simulator's reader) -- each a streamed ``/v1/chat/completions`` (or ``/v1/completions``)
call over httpx, asking for ``stream_options: {include_usage, continuous_usage_stats}`` so every
chunk says how many tokens it brought (vLLM supports both; without them a chunk with text
counts as one token). Per request it records the send time, every chunk's arrival and token
count, the end, the server's ``usage`` and ``metrics`` (``speculative_decoding`` when present)
or the error. The records become a client trace (:mod:`live.load_trace`) and a summary
(:mod:`live.load_summary`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from live.load_reply import MalformedReply, parse_chunk
from tracing.errors import SpecsimError


@dataclass
class LoadConfig:
    """Everything ``specsim load`` resolves from its flags; recorded in the trace metadata."""

    endpoint: str
    prompts: str
    requests: int
    out: str
    rate: float | None = None
    concurrency: int | None = None
    arrivals: str | None = None
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    model: str | None = None
    api: str = "chat"
    timeout_s: float = 600.0
    rate_scale: float = 1.0
    ignore_eos: bool = False
    force: bool = False
    metrics_url: str | None = None

    def __post_init__(self) -> None:
        from live.serve import check_output
        from tracing.io import trace_format

        _check_finite(self)
        modes = [m for m in (self.rate, self.concurrency, self.arrivals) if m is not None]
        if len(modes) != 1:
            raise SpecsimError("load: give exactly one of --rate, --concurrency, --arrivals")
        if self.rate is not None and not self.rate > 0:
            raise SpecsimError(f"--rate must be > 0, got {self.rate}")
        if self.concurrency is not None and self.concurrency < 1:
            raise SpecsimError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.requests < 1:
            raise SpecsimError(f"--requests must be >= 1, got {self.requests}")
        if self.max_tokens < 1:
            raise SpecsimError(f"--max-tokens must be >= 1, got {self.max_tokens}")
        if not self.rate_scale > 0:
            raise SpecsimError(f"--rate-scale must be > 0, got {self.rate_scale}")
        if self.api not in ("chat", "completions"):
            raise SpecsimError(f"--api must be chat or completions, got {self.api!r}")
        if not self.endpoint.startswith(("http://", "https://")):
            raise SpecsimError(f"--endpoint {self.endpoint}: expected an http:// or https:// URL")
        if self.metrics_url is not None and not self.metrics_url.startswith(("http://",
                                                                              "https://")):
            raise SpecsimError(f"--metrics-url {self.metrics_url}: expected an http(s):// URL")
        trace_format(self.out)
        check_output(self.out, self.force, "--out")


@dataclass
class ClientRecord:
    """What the client saw of one request (seconds since the run started)."""

    index: int
    send_s: float
    prompt: str
    max_tokens: int
    request_id: str | None = None
    status: int | None = None
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (arrival, tokens)
    end_s: float | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    text: str = ""
    error: str | None = None
    sent: bool = False  # the request went out
    interrupted: bool = False  # cut by SIGINT before it ended
    chunk_timings: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # llama.cpp

    @property
    def first_token_s(self) -> float | None:
        """Arrival of the first chunk that carried a token."""
        return next((t for t, n in self.chunks if n > 0), None)

    @property
    def output_tokens(self) -> int:
        """Tokens received."""
        return sum(n for _, n in self.chunks)


def schedule(config: LoadConfig) -> list[float] | None:
    """Send offsets (seconds) for open-loop modes; None for a closed loop (concurrency)."""
    if config.concurrency is not None:
        return None
    if config.rate is not None:
        rng = random.Random(config.seed)
        t, out = 0.0, []
        for _ in range(config.requests):
            out.append(t)
            t += rng.expovariate(config.rate)
        return out
    from sim.calibrate.arrivals import load_arrivals

    assert config.arrivals is not None
    table = load_arrivals(config.arrivals, config.requests, rate_scale=config.rate_scale,
                          where="specsim load --arrivals")
    return [float(t) for t in table.arrival_s]


def _payload(config: LoadConfig, model: str, prompt: Any, index: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model, "max_tokens": config.max_tokens, "temperature": config.temperature,
        "top_p": config.top_p, "seed": config.seed + index, "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    if config.ignore_eos:
        body["ignore_eos"] = True
    if config.api == "chat":
        body["messages"] = prompt.as_chat()
    else:
        body["prompt"] = prompt.text
    return body


async def _send(client: Any, url: str, body: dict[str, Any], rec: ClientRecord,
                clock: Callable[[], float]) -> None:
    """One streamed request; fills ``rec`` (never raises for the server's or network's faults)."""
    import httpx

    rec.send_s = clock()
    rec.sent = True
    try:
        async with client.stream("POST", url, json=body) as resp:
            rec.status = resp.status_code
            if resp.status_code != 200:
                raw = await resp.aread()
                rec.error = f"HTTP {resp.status_code}: {_error_message(raw)}"
                rec.end_s = clock()
                return
            await _read_stream(resp, rec, clock)
    except (httpx.HTTPError, OSError, UnicodeDecodeError) as exc:
        rec.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except MalformedReply as exc:
        rec.error = f"malformed reply: {exc}"
    except asyncio.CancelledError:  # SIGINT: the request is cut, the run ends
        rec.interrupted = True
        rec.end_s = clock()
        rec.chunks = [(t, n) for t, n in rec.chunks if n > 0]
        raise
    if rec.error is None and rec.finish_reason is None:
        rec.error = "stream ended without a finish_reason"
    rec.end_s = clock()
    rec.chunks = [(t, n) for t, n in rec.chunks if n > 0]


async def _read_stream(resp: Any, rec: ClientRecord, clock: Callable[[], float]) -> None:
    """Fill ``rec`` from a 200 stream's ``data:`` chunks, each checked
    (:func:`live.load_reply.parse_chunk`; a bad one raises :class:`MalformedReply`)."""
    seen = 0  # completion tokens so far, from usage
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        now = clock()
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            raise MalformedReply(f"a chunk is not valid JSON: {data[:60]!r}") from None
        if isinstance(obj, dict) and "error" in obj:
            rec.error = f"stream error: {_error_message(json.dumps(obj).encode())}"
            return
        chunk = parse_chunk(obj)
        rec.request_id = rec.request_id or chunk.id
        if isinstance(obj.get("timings"), dict):  # llama.cpp (live.load_llamacpp)
            rec.chunk_timings.append((now, obj["timings"]))
        if chunk.metrics is not None:
            rec.metrics = chunk.metrics
        if not chunk.has_choice:
            rec.usage = chunk.usage or rec.usage
            continue
        rec.text += chunk.text
        if chunk.completion_tokens is not None:
            if chunk.completion_tokens < seen:
                raise MalformedReply(f"usage.completion_tokens went down from {seen} to "
                                     f"{chunk.completion_tokens}")
            tokens = chunk.completion_tokens - seen
            seen = chunk.completion_tokens
            rec.usage = chunk.usage
        else:
            tokens = 1 if chunk.text else 0
        if tokens > 0 or chunk.finish_reason:
            rec.chunks.append((now, tokens))
        rec.finish_reason = chunk.finish_reason or rec.finish_reason


def _check_finite(config: LoadConfig) -> None:
    """Float flags are finite numbers (``--rate inf`` is not a rate) in their ranges."""
    for flag, value in (("--rate", config.rate), ("--rate-scale", config.rate_scale),
                        ("--temperature", config.temperature), ("--top-p", config.top_p),
                        ("--timeout", config.timeout_s)):
        if value is not None and not math.isfinite(value):
            raise SpecsimError(f"{flag} must be a finite number, got {value}")
    if config.temperature < 0:
        raise SpecsimError(f"--temperature must be >= 0, got {config.temperature}")
    if not 0 < config.top_p <= 1:
        raise SpecsimError(f"--top-p must be in (0, 1], got {config.top_p}")
    if not config.timeout_s > 0:
        raise SpecsimError(f"--timeout must be > 0, got {config.timeout_s}")
    if not -(2**62) <= config.seed < 2**62:  # seed + index stays a valid request seed
        raise SpecsimError(f"--seed must be within +-2**62, got {config.seed}")


def _error_message(raw: bytes) -> str:
    try:
        obj = json.loads(raw)
        return str(obj.get("error", {}).get("message") or obj)[:200]
    except (json.JSONDecodeError, AttributeError):
        return raw.decode("utf-8", "replace")[:200]


async def list_models(client: Any, endpoint: str) -> tuple[Any, str | None]:
    """The endpoint's ``GET /v1/models`` listing, read once per run: (listing, None), or
    (None, why it could not be read)."""
    import httpx

    try:
        resp = await client.get(f"{endpoint}/v1/models")
        resp.raise_for_status()
        return resp.json(), None
    except (httpx.HTTPError, ValueError) as exc:
        return None, str(exc)


def first_model(listing: Any, problem: str | None, endpoint: str) -> str:
    """The listing's first model id (``--model`` when the endpoint does not say)."""
    try:
        return str(listing["data"][0]["id"])
    except (TypeError, KeyError, IndexError) as exc:
        raise SpecsimError(f"--endpoint {endpoint}: cannot list models ({problem or exc!r}); "
                           "pass --model") from None


def engine_fields(listing: Any) -> dict[str, Any]:
    """Request fields an engine needs to say more (llama.cpp: ``timings_per_token``)."""
    from live import load_llamacpp

    return load_llamacpp.request_fields() if load_llamacpp.is_llamacpp(listing) else {}


@dataclass
class Started:
    """What a run has begun, for whoever must write it up after a SIGINT: the model and every
    record (sent or not)."""

    model: str | None = None
    records: list[ClientRecord] = field(default_factory=list)


async def drive(config: LoadConfig, advance: Callable[[ClientRecord], None] | None = None,
                started: Started | None = None) -> tuple[list[ClientRecord], str, float]:
    """Send every request on the schedule; returns the records, the model and the wall time
    (``started`` is filled in as the run begins)."""
    import httpx

    from live.prompts import load_prompts

    prompts = load_prompts(config.prompts)
    if not prompts:
        raise SpecsimError(f"--prompts {config.prompts}: no prompts")
    endpoint = config.endpoint.rstrip("/")
    if endpoint.endswith("/v1"):
        endpoint = endpoint[:-3]
    path = "/v1/chat/completions" if config.api == "chat" else "/v1/completions"
    offsets = schedule(config)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    t0 = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - t0

    async with httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s, connect=10.0),
                                 limits=limits) as client:
        listing, problem = await list_models(client, endpoint)
        model = config.model or first_model(listing, problem, endpoint)
        extra = engine_fields(listing)
        t0 = time.perf_counter()
        records = [ClientRecord(i, 0.0, prompts[i % len(prompts)].text, config.max_tokens)
                   for i in range(config.requests)]
        if started is not None:
            started.model, started.records = model, records

        async def one(i: int) -> None:
            body = {**_payload(config, model, prompts[i % len(prompts)], i), **extra}
            await _send(client, f"{endpoint}{path}", body, records[i], clock)
            if advance is not None:
                advance(records[i])

        if offsets is None:
            assert config.concurrency is not None
            todo = iter(range(config.requests))

            async def worker() -> None:
                for i in todo:
                    await one(i)

            await asyncio.gather(*(worker() for _ in range(config.concurrency)))
        else:
            async def at(i: int, when: float) -> None:
                await asyncio.sleep(max(0.0, when - clock()))
                await one(i)

            await asyncio.gather(*(at(i, t) for i, t in enumerate(offsets)))
    return records, model, clock()


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[ClientRecord], None]]:
    if not enabled:
        yield lambda rec: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("errors {task.fields[errors]}"), TimeElapsedColumn(),
                   console=Console(stderr=True))
    with bar:
        task = bar.add_task("requests", total=total, errors=0)
        errors = 0

        def advance(rec: ClientRecord) -> None:
            nonlocal errors
            errors += rec.error is not None
            bar.update(task, advance=1, errors=errors)

        yield advance


def run_load(config: LoadConfig, *, progress: bool = False) -> dict[str, Any]:
    """Drive the endpoint, writing the client trace as requests end (:mod:`live.load_stream`);
    returns the summary. On SIGINT the trace keeps what completed, the requests in flight are
    marked ``interrupted`` and the summary says ``interrupted``. Against llama.cpp each record's
    per-token chunks are regrouped into engine steps (:mod:`live.load_llamacpp`) and, with
    ``--metrics-url``, the engine's counters are scraped before and after the run."""
    from live import load_llamacpp
    from live.load_stream import StreamedTrace
    from live.load_summary import summarize_records

    t0 = time.perf_counter()
    started = Started()
    before = load_llamacpp.scrape(config.metrics_url) if config.metrics_url else None
    engine_seen = False
    with StreamedTrace(config) as out, _progress(progress, config.requests) as advance:
        def done(rec: ClientRecord) -> None:
            nonlocal engine_seen
            engine_seen = load_llamacpp.regroup(rec) or engine_seen
            out.add(rec, started.model or "unknown")
            advance(rec)

        try:
            records, model, wall = asyncio.run(drive(config, done, started))
        except KeyboardInterrupt:
            records = [r for r in started.records if r.sent]
            for rec in records:
                if rec.end_s is None:
                    rec.interrupted = True
            model, wall = started.model or "unknown", time.perf_counter() - t0
        after = load_llamacpp.scrape(config.metrics_url) if config.metrics_url else None

        def annotate(trace: Any) -> None:
            if engine_seen or after is not None:
                load_llamacpp.annotate(trace, records, config, before, after, engine_seen)

        out.finish(records, model, annotate)

    summary = summarize_records(records, wall)
    summary["out"] = config.out
    summary["interrupted"] = sum(r.interrupted for r in records)
    return summary
