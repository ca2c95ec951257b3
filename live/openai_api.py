"""The OpenAI API's shapes: request bodies parsed and checked, response and chunk objects built.

Plain functions, no HTTP and no engine: :func:`parse_completion` turns a JSON body of
``/v1/completions`` or ``/v1/chat/completions`` into :class:`CompletionParams` or raises
:class:`BadRequest` (HTTP 400 with OpenAI's error shape, :func:`error_body`). Unknown fields are
ignored, as OpenAI-compatible servers do; fields we cannot honour (``n > 1``, ``logprobs``,
``best_of``, ``echo``) are refused rather than silently dropped; vLLM's ``ignore_eos`` is
honoured (benchmarks use it for fixed output lengths). Every field is typed and bounded here,
before anything reaches the tokenizer or the engine: numbers finite and in range (``seed`` an
integer below 2**63), strings valid Unicode (no lone surrogates, which the tokenizer cannot
encode), a prompt of token ids a flat list (or one list in a list). :class:`TextStream` turns a
growing token list into text deltas that never show a stop sequence or half a UTF-8 character.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from tracing.errors import SpecsimError

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
MAX_STOP_SEQUENCES = 4
SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes [-2**63, 2**64); we take [-2**63, 2**63)


class BadRequest(SpecsimError):
    """A request the API refuses: ``status`` (4xx), a message naming the field (``param``)."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.kind, self.code = (
            message, param, status, kind, code)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class CompletionParams:
    """A parsed request: a prompt (text, token ids or chat messages) and how to sample."""

    chat: bool
    model: str | None
    prompt: str | None = None
    prompt_ids: list[int] | None = None
    messages: list[dict[str, str]] | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    continuous_usage: bool = False
    ignore_eos: bool = False  # vLLM's extension: generate max_tokens whatever the model says


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float,
            lo_open: bool = False) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"'{key}' must be a number, got {value!r:.40}", key)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"'{key}' must be a finite number, got {value}", key)
    if value < lo or value > hi or (lo_open and value == lo):
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise BadRequest(f"'{key}' must be in {bound}, got {value}", key)
    return float(value)


def _integer(body: dict[str, Any], key: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{key}' must be an integer, got {value!r:.40}", key)
    if value < lo:
        raise BadRequest(f"'{key}' must be >= {lo}, got {value!r:.40}", key)
    if hi is not None and value >= hi:
        raise BadRequest(f"'{key}' must be < {hi}, got {value!r:.40}", key)
    return int(value)


def _text(value: str, where: str, param: str) -> str:
    """``value`` when it is valid Unicode (a lone surrogate such as "\\ud800" is not: JSON can
    carry it, UTF-8 and the tokenizer cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(f"{where} is not valid Unicode (character {exc.start} is a lone "
                         "surrogate)", param) from None
    return value


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", "messages")
        content = msg.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            texts: list[str] = [p["text"] for p in content if isinstance(p, dict)
                                and p.get("type") == "text" and isinstance(p.get("text"), str)]
            if len(texts) != len(content):
                raise BadRequest(f"messages[{i}].content: only text parts are supported",
                                 "messages")
            content = "".join(texts)
        if not isinstance(content, str):
            raise BadRequest(f"messages[{i}].content must be a string", "messages")
        out.append({"role": _text(msg["role"], f"messages[{i}].role", "messages"),
                    "content": _text(content, f"messages[{i}].content", "messages")})
    return out


def _prompt(value: Any) -> tuple[str | None, list[int] | None]:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str | list):
        value = value[0]  # one prompt in a list (a batch of one); one level only
    if isinstance(value, str):
        return _text(value, "'prompt'", "prompt"), None
    if (isinstance(value, list) and value
            and all(isinstance(t, int) and not isinstance(t, bool) for t in value)):
        return None, [int(t) for t in value]
    raise BadRequest("'prompt' must be a string or a list of token ids (one prompt)", "prompt")


def parse_completion(body: Any, chat: bool) -> CompletionParams:
    """Check a request body; raises :class:`BadRequest` naming the offending field."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", "model")
    if model is not None:
        _text(model, "'model'", "model")
    params = CompletionParams(chat=chat, model=model)
    if chat:
        if "messages" not in body:
            raise BadRequest("'messages' is required", "messages")
        params.messages = _messages(body["messages"])
        params.max_tokens = _integer(body, "max_completion_tokens", 1)
        if params.max_tokens is None:
            params.max_tokens = _integer(body, "max_tokens", 1)
    else:
        if "prompt" not in body:
            raise BadRequest("'prompt' is required", "prompt")
        params.prompt, params.prompt_ids = _prompt(body["prompt"])
        params.max_tokens = _integer(body, "max_tokens", 1)
        if params.max_tokens is None:
            params.max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS
    params.temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    params.top_p = _number(body, "top_p", 1.0, 0.0, 1.0, lo_open=True)
    params.seed = _integer(body, "seed", -SEED_LIMIT, SEED_LIMIT)
    if params.seed is not None and params.seed < 0:
        params.seed &= 2**63 - 1
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list)
                             or not all(isinstance(s, str) and s for s in stop)):
        raise BadRequest("'stop' must be a non-empty string or a list of them", "stop")
    if stop and len(stop) > MAX_STOP_SEQUENCES:
        raise BadRequest(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences", "stop")
    params.stop = [_text(s, "'stop'", "stop") for s in stop or []]
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", "stream")
    params.stream = stream
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise BadRequest("'stream_options' must be an object", "stream_options")
        params.include_usage = bool(options.get("include_usage", False))
        params.continuous_usage = bool(options.get("continuous_usage_stats", False))
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise BadRequest("'ignore_eos' must be a boolean", "ignore_eos")
    params.ignore_eos = ignore_eos
    for key, allowed in (("n", 1), ("best_of", 1)):
        if body.get(key) not in (None, allowed):
            raise BadRequest(f"'{key}' > 1 is not supported", key)
    if body.get("logprobs") not in (None, False, 0) or body.get("echo"):
        key = "logprobs" if body.get("logprobs") else "echo"
        raise BadRequest(f"'{key}' is not supported", key)
    return params


class TextStream:
    """Text of a growing token list, released as deltas: up to the first stop sequence (which
    is never shown), holding back what could still turn into one and a trailing partial
    UTF-8 character."""

    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.sent = 0  # characters already released

    def text(self, tokens: list[int], final: bool) -> str:
        """All the text that may be shown for ``tokens``."""
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            return text[:cut]
        if final:
            return text
        text = text.rstrip("\ufffd")
        return text[: max(self.sent, len(text) - self.hold)]

    def delta(self, tokens: list[int], final: bool) -> str:
        """The text not released yet."""
        text = self.text(tokens, final)
        out = text[self.sent:]
        self.sent = max(self.sent, len(text))
        return out


def stop_checker(tokenizer: Any, stop: list[str]) -> Any:
    """``tokens -> bool``: has a stop sequence just appeared in the decoded text's tail?"""
    if not stop:
        return None
    window = max(len(s) for s in stop) + 8  # a token is at least one character

    def hit(tokens: list[int]) -> bool:
        tail = tokenizer.decode(tokens[-window:], skip_special_tokens=True)
        return any(s in tail for s in stop)

    return hit


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chunk(rid: str, model: str, chat: bool, created: int, text: str | None,
          finish: str | None, first: bool = False) -> dict[str, Any]:
    """One streamed chunk carrying ``text`` (``None``: a chunk with no choices)."""
    obj = "chat.completion.chunk" if chat else "text_completion"
    out: dict[str, Any] = {"id": rid, "object": obj, "created": created, "model": model}
    if text is None:
        out["choices"] = []
    elif chat:
        delta: dict[str, Any] = {"content": text}
        if first:
            delta = {"role": "assistant", "content": text}
        out["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                           "finish_reason": finish}]
    else:
        out["choices"] = [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]
    return out


def response(rid: str, model: str, chat: bool, created: int, text: str, finish: str,
             use: dict[str, int], metrics: dict[str, Any]) -> dict[str, Any]:
    """The whole (non-streamed) response object, with vLLM's ``metrics``."""
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "logprobs": None, "finish_reason": finish}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice],
            "usage": use, "metrics": metrics}


def now() -> int:
    """The ``created`` timestamp (Unix seconds)."""
    return int(time.time())
