"""What ``specsim load`` accepts from a server's stream: each chunk checked before it is used.

A server (or anything in between) may send anything: a chunk that is a JSON array, ``choices``
as an object, ``completion_tokens: "many"`` or ``1e400``, a count that goes backwards, per-step
arrays of different lengths, a negative step time. :func:`parse_chunk` turns one decoded chunk
into a :class:`Chunk` or raises :class:`MalformedReply` naming the field; the load generator
records that as an error of the request that got it (never a traceback, never a trace its own
reader refuses). The server's ``metrics`` object is checked as far as the client trace uses it
(:func:`check_metrics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tracing.schema import MAX_DRAFT_TOKENS

MAX_COUNT = 2**31  # tokens in one response: more is damage


class MalformedReply(Exception):
    """A chunk the client cannot use; the message names the field."""


@dataclass
class Chunk:
    """One streamed chunk, checked: its id, text, finish reason, usage and metrics."""

    id: str | None
    has_choice: bool
    text: str
    finish_reason: str | None
    completion_tokens: int | None
    usage: dict[str, Any] | None
    metrics: dict[str, Any] | None


def _count(value: Any, where: str, hi: int = MAX_COUNT, lo: int = 0) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedReply(f"{where} must be an integer in {lo}..{hi}, got {value!r:.40}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0):
        raise MalformedReply(f"{where} must be a finite number >= 0, got {value!r:.40}")
    return float(value)


def _object(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedReply(f"{where} must be an object, got {type(value).__name__}")
    return value


def parse_chunk(obj: Any) -> Chunk:
    """Check one decoded ``data:`` chunk (the ``error`` chunk is the caller's business)."""
    if not isinstance(obj, dict):
        raise MalformedReply(f"a chunk must be a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if rid is not None and not isinstance(rid, str):
        raise MalformedReply(f"'id' must be a string, got {type(rid).__name__}")
    usage = _object(obj.get("usage"), "'usage'")
    tokens = None
    if usage is not None:
        if usage.get("completion_tokens") is not None:
            tokens = _count(usage["completion_tokens"], "'usage.completion_tokens'")
        if usage.get("prompt_tokens") is not None:
            _count(usage["prompt_tokens"], "'usage.prompt_tokens'")
    metrics = check_metrics(obj.get("metrics"))
    choices = obj.get("choices")
    if choices is None:
        choices = []
    if not isinstance(choices, list):
        raise MalformedReply(f"'choices' must be a list, got {type(choices).__name__}")
    if not choices:
        return Chunk(rid, False, "", None, tokens, usage, metrics)
    choice = choices[0]
    if not isinstance(choice, dict):
        raise MalformedReply(f"'choices[0]' must be an object, got {type(choice).__name__}")
    text = choice.get("text")
    if text is None:
        delta = _object(choice.get("delta"), "'choices[0].delta'") or {}
        text = delta.get("content")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise MalformedReply(f"the chunk's text must be a string, got {type(text).__name__}")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise MalformedReply(f"'choices[0].finish_reason' must be a string, got {finish!r:.40}")
    return Chunk(rid, True, text, finish or None, tokens, usage, metrics)


def check_metrics(value: Any) -> dict[str, Any] | None:
    """The server's ``metrics`` object, checked where the client trace reads it."""
    metrics = _object(value, "'metrics'")
    if metrics is None:
        return None
    if metrics.get("queue_time_ms") is not None:
        _seconds(metrics["queue_time_ms"], "'metrics.queue_time_ms'")
    steps = _object(metrics.get("steps"), "'metrics.steps'")
    if steps is not None:
        _check_steps(steps)
    spec = _object(metrics.get("speculative_decoding"), "'metrics.speculative_decoding'")
    if spec is not None:
        drafted = _list(spec.get("per_step_drafted"), "per_step_drafted", MAX_DRAFT_TOKENS)
        accepted = _list(spec.get("per_step_accepted"), "per_step_accepted", MAX_DRAFT_TOKENS)
        if drafted is not None and (accepted is None or len(accepted) != len(drafted)):
            raise MalformedReply("'metrics.speculative_decoding': per_step_accepted and "
                                 "per_step_drafted differ in length")
    return metrics


def _list(value: Any, name: str, hi: int, lo: int = 0) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise MalformedReply(f"'{name}' must be a list, got {type(value).__name__}")
    return [_count(v, f"'{name}[{i}]'", hi, lo) for i, v in enumerate(value)]


def _check_steps(steps: dict[str, Any]) -> None:
    """specsim's ``metrics.steps``: equal-length arrays, accepted <= drafted, times >= 0."""
    drafted = _list(steps.get("drafted"), "steps.drafted", MAX_DRAFT_TOKENS)
    if drafted is None:
        return
    accepted = _list(steps.get("accepted"), "steps.accepted", MAX_DRAFT_TOKENS) or []
    lists: dict[str, list[Any]] = {"accepted": accepted}
    if steps.get("batch_size") is not None:
        lists["batch_size"] = _list(steps["batch_size"], "steps.batch_size", MAX_COUNT, 1) or []
    cycle_ms = steps.get("cycle_ms")
    if cycle_ms is not None:
        if not isinstance(cycle_ms, list):
            raise MalformedReply("'steps.cycle_ms' must be a list")
        lists["cycle_ms"] = [_seconds(v, f"'steps.cycle_ms[{i}]'")
                             for i, v in enumerate(cycle_ms)]
    for name, values in lists.items():
        if len(values) != len(drafted):
            raise MalformedReply(f"'steps.{name}' has {len(values)} entries for "
                                 f"{len(drafted)} steps")
    for i, (a, d) in enumerate(zip(accepted, drafted, strict=True)):
        if a > d:
            raise MalformedReply(f"'steps.accepted[{i}]' {a} > drafted {d}")
