"""The OpenAI-compatible HTTP routes: thin, over an :class:`live.engine.Engine`.

``POST /v1/completions`` and ``/v1/chat/completions`` (streamed as server-sent events, one chunk
per engine step, or whole), ``GET /v1/models``, ``GET /health`` and ``GET /metrics``
(Prometheus text). A route parses the body (:mod:`live.openai_api`), tokenizes, submits an
:class:`live.engine.EngineRequest` and relays the engine's per-step events; the engine does the
scheduling. Every error is OpenAI's JSON error shape: 400 for a bad body, 404 for an unknown
model or route, 413 for a body over ``max_body_bytes``, 503 with ``Retry-After`` when the waiting
queue is full, 500 when handling the request failed (the request alone: the engine goes on; a
stream that already started gets an ``error`` chunk). Tokenizing (and the chat template) runs in
a worker thread, so a long prompt never holds up the event loop, ``/health`` or other streams.
A client that goes away (a dropped stream, or a non-streamed request whose connection closes) is
cancelled in the engine, which frees its row.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from live import openai_api as api
from live.engine import Engine, EngineRequest, Overloaded, StepEvent
from live.sampling import SamplingConfig
from live.server_metrics import request_metrics

RETRY_AFTER_S = 1
DISCONNECT_POLL_S = 0.25
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a full 8k-token context is ~50 KB of text or token ids


@dataclass
class Service:
    """What the routes need: the engine, the tokenizer, the served model's name and limits."""

    engine: Engine
    tokenizer: Any
    model_name: str
    max_model_len: int
    num_spec_tokens: int | None  # the draft length cap (None: no draft)
    chat_default_max_tokens: int = 256
    max_body_bytes: int = MAX_BODY_BYTES


def _error(status: int, message: str, kind: str = "invalid_request_error",
           param: str | None = None, code: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(api.error_body(message, kind, param, code), status_code=status,
                        headers=headers)


def create_app(service: Service) -> FastAPI:
    """The FastAPI application serving ``service``."""
    app = FastAPI(title="specsim serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind)

    @app.get("/health")
    async def health() -> Response:
        if service.engine.error is not None:
            return _error(503, f"engine failed: {service.engine.error!r}", "server_error")
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{
            "id": service.model_name, "object": "model", "created": api.now(),
            "owned_by": "specsim", "max_model_len": service.max_model_len}]})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.engine.metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _guarded(service, request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _guarded(service, request, chat=True)

    return app


class BodyTooLarge(api.BadRequest):
    """A request body over the server's limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes", None, 413,
                         code="request_too_large")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (:class:`BodyTooLarge`) as soon as it passes ``limit`` bytes: by its
    Content-Length before reading, or while reading a chunked one."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(part)
    return b"".join(parts)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise api.BadRequest("the request body is not valid JSON") from None
    except RecursionError:
        raise api.BadRequest("the request body is nested too deeply") from None


async def _guarded(service: Service, request: Request, chat: bool) -> Response:
    """:func:`_complete`, with any failure of this one request a JSON 500 (never a text
    traceback, never the engine's end)."""
    try:
        return await _complete(service, request, chat)
    except Exception as exc:
        print(f"specsim serve: {request.url.path}: request failed: {type(exc).__name__}: "
              f"{str(exc)[:200]}", file=sys.stderr, flush=True)
        return _error(500, f"the server failed on this request ({type(exc).__name__})",
                      "server_error")


def _encode(service: Service, params: api.CompletionParams) -> list[int]:
    """The prompt's token ids (run in a worker thread: a long prompt takes seconds); what the
    tokenizer or the chat template refuses is a 400."""
    try:
        return _tokenize(service, params)
    except api.BadRequest:
        raise
    except Exception as exc:
        param = "messages" if params.chat else "prompt"
        raise api.BadRequest(f"'{param}' could not be tokenized ({type(exc).__name__}: "
                             f"{str(exc)[:120]})", param) from None


def _tokenize(service: Service, params: api.CompletionParams) -> list[int]:
    tok = service.tokenizer
    if params.chat:
        assert params.messages is not None
        if getattr(tok, "chat_template", None) is None:
            raise api.BadRequest("the served model's tokenizer has no chat template; "
                                 "use /v1/completions", "messages")
        ids = tok.apply_chat_template(params.messages, add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
        ids = ids["input_ids"] if isinstance(ids, dict) else ids
        return [int(t) for t in ids]
    if params.prompt_ids is not None:
        vocab = len(tok)
        bad = [t for t in params.prompt_ids if not 0 <= t < vocab]
        if bad:
            raise api.BadRequest(f"'prompt': token id {bad[0]} is outside the vocabulary "
                                 f"(0..{vocab - 1})", "prompt")
        return params.prompt_ids
    return [int(t) for t in tok(params.prompt or "", add_special_tokens=True)["input_ids"]]


def _prompt_text(params: api.CompletionParams) -> str | None:
    """The trace's ``prompt_text``: the prompt, or a chat's last user turn."""
    if params.messages:
        users = [m["content"] for m in params.messages if m["role"] == "user"]
        return users[-1] if users else params.messages[-1]["content"]
    return params.prompt


async def _complete(service: Service, request: Request, chat: bool) -> Response:
    try:
        body = _parse_json(await _read_body(request, service.max_body_bytes))
        params = api.parse_completion(body, chat)
        if params.model is not None and params.model != service.model_name:
            raise api.BadRequest(f"the model '{params.model}' does not exist (serving "
                                 f"'{service.model_name}')", "model", 404, "not_found_error",
                                 "model_not_found")
        ids = await anyio.to_thread.run_sync(_encode, service, params)
        if not ids:
            raise api.BadRequest("the prompt is empty (no tokens)", "prompt")
        max_tokens = params.max_tokens or service.chat_default_max_tokens
        room = service.max_model_len - len(ids)
        if room < 1:
            raise api.BadRequest(f"the prompt ({len(ids)} tokens) fills the model's context "
                                 f"({service.max_model_len}): no room for a completion",
                                 "messages" if chat else "prompt")
        if params.max_tokens is None:
            max_tokens = min(max_tokens, room)
        if max_tokens > room:
            raise api.BadRequest(f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) "
                                 f"exceeds the model's context ({service.max_model_len})",
                                 "max_tokens")
        sampling = SamplingConfig(params.temperature, params.top_p, params.seed)
    except api.BadRequest as exc:
        return _error(exc.status, exc.message, exc.kind, exc.param, exc.code)
    prefix = "chatcmpl-" if chat else "cmpl-"
    loop = asyncio.get_running_loop()
    ereq = EngineRequest(
        request_id=prefix + uuid.uuid4().hex[:24], prompt_ids=ids, max_tokens=max_tokens,
        sampling=sampling, stop=api.stop_checker(service.tokenizer, params.stop), loop=loop,
        events=asyncio.Queue(), prompt_text=_prompt_text(params),
        ignore_eos=params.ignore_eos)
    try:
        service.engine.submit(ereq)
    except Overloaded as exc:
        if service.engine.error is not None:
            return _error(503, f"engine failed: {service.engine.error!r}", "server_error")
        service.engine.metrics.observe_rejected()
        return _error(503, f"server overloaded: {exc}", "server_overloaded",
                      code="overloaded", headers={"Retry-After": str(RETRY_AFTER_S)})
    if params.stream:
        return StreamingResponse(_stream(service, ereq, params, request),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    return await _whole(service, ereq, params, request)


class _Watch:
    """Whether the client is still there, asked at most every ``DISCONNECT_POLL_S``."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.checked = asyncio.get_running_loop().time()

    async def gone(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self.checked < DISCONNECT_POLL_S:
            return False
        self.checked = now
        return await self.request.is_disconnected()


async def _next_event(ereq: EngineRequest, watch: _Watch) -> StepEvent | None:
    """The request's next engine event; None when the client has gone away."""
    assert ereq.events is not None
    while True:
        if await watch.gone():
            return None
        try:
            return await asyncio.wait_for(ereq.events.get(), DISCONNECT_POLL_S)
        except TimeoutError:
            continue


def _metrics(service: Service, ereq: EngineRequest) -> dict[str, Any]:
    return request_metrics(ereq, service.num_spec_tokens)


async def _whole(service: Service, ereq: EngineRequest, params: api.CompletionParams,
                 request: Request) -> Response:
    tokens: list[int] = []
    finish: str | None = None
    watch = _Watch(request)
    while finish is None:
        event = await _next_event(ereq, watch)
        if event is None:
            service.engine.cancel(ereq)
            return Response(status_code=499)  # nobody is listening
        tokens.extend(event.tokens)
        finish = event.finish
        if finish == "error":
            return _error(500, f"the request failed in the engine: {event.error}",
                          "server_error")
    text = api.TextStream(service.tokenizer, params.stop).text(tokens, final=True)
    body = api.response(ereq.request_id, service.model_name, params.chat, api.now(), text,
                        finish, api.usage(len(ereq.prompt_ids), len(tokens)),
                        _metrics(service, ereq))
    return JSONResponse(body)


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


async def _stream(service: Service, ereq: EngineRequest, params: api.CompletionParams,
                  request: Request) -> AsyncIterator[str]:
    """One SSE chunk per engine step; then the usage chunk (``include_usage``) and [DONE]."""
    texts = api.TextStream(service.tokenizer, params.stop)
    tokens: list[int] = []
    finished = False
    watch = _Watch(request)
    try:
        async for piece in _chunks(service, ereq, params, texts, tokens, watch):
            yield piece
        finished = ereq.stop_reason is not None
    except Exception as exc:  # headers are sent: the failure goes in the stream
        print(f"specsim serve: {ereq.request_id}: stream failed: {type(exc).__name__}: "
              f"{str(exc)[:200]}", file=sys.stderr, flush=True)
        yield _sse(api.error_body(f"the server failed on this request ({type(exc).__name__})",
                                  "server_error"))
    finally:
        if not finished:  # the client went away (or the response was cancelled)
            service.engine.cancel(ereq)


async def _chunks(service: Service, ereq: EngineRequest, params: api.CompletionParams,
                  texts: api.TextStream, tokens: list[int], watch: _Watch
                  ) -> AsyncIterator[str]:
    """The stream's chunks, one per engine step, until the request ends or the client goes."""
    created, first, finished = api.now(), True, False
    while not finished:
        event = await _next_event(ereq, watch)
        if event is None:
            return
        tokens.extend(event.tokens)
        finished = event.finish is not None
        if event.finish == "error":  # the stream has started: the error goes in it
            yield _sse(api.error_body(f"the request failed in the engine: {event.error}",
                                      "server_error"))
            break
        out = api.chunk(ereq.request_id, service.model_name, params.chat, created,
                        texts.delta(tokens, finished), event.finish, first)
        first = False
        if params.continuous_usage:
            out["usage"] = api.usage(len(ereq.prompt_ids), len(tokens))
        yield _sse(out)
    if params.include_usage and not failed(ereq):
        out = api.chunk(ereq.request_id, service.model_name, params.chat, created, None,
                        None)
        out["usage"] = api.usage(len(ereq.prompt_ids), len(tokens))
        out["metrics"] = _metrics(service, ereq)
        yield _sse(out)
    yield "data: [DONE]\n\n"


def failed(ereq: EngineRequest) -> bool:
    """Whether the engine ended the request with an error."""
    return ereq.stop_reason == "error"
