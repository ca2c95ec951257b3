"""Shared reading helpers for the importers: JSON-lines / JSON files of engine responses, and
checked field access that names ``file:line:field`` on bad input."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracing.errors import TraceError
from tracing.schema import MAX_DRAFT_TOKENS

# No real response holds more tokens than this; a bigger count is damage, not a request (and
# would be laid out as that many cycles).
MAX_TOKENS = 10_000_000


def read_text(path: str) -> str:
    """A file's text; a missing or non-UTF-8 file is a TraceError."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(path, "no such file") from None
    except IsADirectoryError:
        raise TraceError(path, "is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise TraceError(path, f"not UTF-8 text ({exc.reason})") from None


def json_objects(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) of a JSONL file -- or of a JSON array / one (pretty-printed) object (line 1).

    Blank lines are skipped; ``data: {...}`` lines of a saved server-sent-event stream are read
    as their JSON (``data: [DONE]`` skipped).
    """
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n" in stripped.rstrip():  # one pretty-printed object?
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # JSON lines
        if isinstance(whole, dict):
            yield 1, whole
            return
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            for i, obj in enumerate(data):
                if not isinstance(obj, dict):
                    raise TraceError(path, f"item {i} of the JSON array is not an object", line=1)
                yield 1, obj
            return
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("data:"):
            line = line[5:].strip()
            if line == "[DONE]":
                continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(path, f"not valid JSON ({exc.msg})", line=i) from None
        if not isinstance(obj, dict):
            raise TraceError(path, "a line must be a JSON object", line=i)
        yield i, obj


class Fields:
    """Checked access to one object's fields; errors name the file, line and dotted field."""

    def __init__(self, path: str, line: int, obj: dict[str, Any], prefix: str = "") -> None:
        self.path, self.line, self.obj, self.prefix = path, line, obj, prefix

    def error(self, name: str, message: str) -> TraceError:
        """A TraceError at this object's ``name``."""
        return TraceError(self.path, message, line=self.line, field=self.prefix + name)

    def has(self, name: str) -> bool:
        """Present and not null."""
        return self.obj.get(name) is not None

    def sub(self, name: str) -> Fields | None:
        """A nested object (None when absent or null)."""
        value = self.obj.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(name, f"expected an object, got {type(value).__name__}")
        return Fields(self.path, self.line, value, f"{self.prefix}{name}.")

    def number(self, name: str, *, minimum: float = 0.0) -> float | None:
        """A finite number >= minimum, or None when absent/null."""
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"expected a number, got {type(value).__name__} {value!r:.40}")
        if not math.isfinite(value) or value < minimum:
            raise self.error(name, f"must be a finite number >= {minimum:g}, got {value!r}")
        return float(value)

    def count(self, name: str) -> int | None:
        """A non-negative integer (int64 range), or None when absent/null."""
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer, got {type(value).__name__} {value!r:.40}")
        if not 0 <= value < 2**63:
            raise self.error(name, f"must be an integer >= 0, got {value!r:.40}")
        return value

    def tokens(self, name: str) -> int | None:
        """A token (or step) count of one response: an integer in 0..MAX_TOKENS, or None."""
        value = self.count(name)
        if value is not None and value > MAX_TOKENS:
            raise self.error(name, f"{value} is more than {MAX_TOKENS:,} in one response")
        return value

    def draft_length(self, name: str) -> int | None:
        """Tokens drafted in one step (or the configured draft length): an integer in
        0..MAX_DRAFT_TOKENS, or None."""
        value = self.count(name)
        if value is not None and value > MAX_DRAFT_TOKENS:
            raise self.error(name, f"{value} draft tokens in one step (more than "
                             f"{MAX_DRAFT_TOKENS:,})")
        return value

    def draft_lengths(self, name: str) -> list[int] | None:
        """:meth:`counts` of per-step draft lengths, each at most MAX_DRAFT_TOKENS."""
        values = self.counts(name)
        for i, v in enumerate(values or []):
            if v > MAX_DRAFT_TOKENS:
                raise self.error(f"{name}[{i}]", f"{v} draft tokens in one step (more than "
                                 f"{MAX_DRAFT_TOKENS:,})")
        return values

    def required_tokens(self, name: str) -> int:
        """:meth:`tokens` of a field the record cannot do without (absent: an error)."""
        value = self.tokens(name)
        if value is None:
            raise self.error(name, "missing")
        return value

    def claim_id(self, rid: str | int, seen: dict[Any, str]) -> None:
        """Record that this object is request ``rid``; an id seen before is an error naming
        where it was first."""
        if rid in seen:
            raise self.error("id", f"request {rid!r} appears twice (first at {seen[rid]})")
        seen[rid] = f"{self.path}:{self.line}"

    def counts(self, name: str) -> list[int] | None:
        """A list of non-negative integers, or None when absent/null."""
        value = self.obj.get(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(name, f"expected a list of integers, got {type(value).__name__}")
        out = []
        for i, v in enumerate(value):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                raise self.error(f"{name}[{i}]", f"expected an integer >= 0, got {v!r:.40}")
            out.append(v)
        return out

    def text(self, name: str) -> str | None:
        """A string, or None when absent/null."""
        value = self.obj.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {type(value).__name__}")
        return value
