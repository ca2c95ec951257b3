"""The run line: every field's type checked before a :class:`RunMeta` is built.

JSONL's first line, Parquet's ``specsim.run`` metadata and in-memory metadata all pass through
:func:`check_run_fields`, so a wrong type (a ``policy`` that is an object, ``policy_params`` that
is a list, a NaN temperature) is one error naming the file, line and field -- never a crash later.
"""

from __future__ import annotations

import math
from typing import Any

from tracing.errors import TraceError
from tracing.schema import RUN_FIELD_TYPES, RunMeta

_TYPE_WORDS = {str: "string", int: "integer", float: "number", dict: "object",
               type(None): "null"}


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.40}"


def check_run_fields(path: str, rec: dict[str, Any], *, line: int | None = None) -> None:
    """Raise :class:`TraceError` on the first run-line field that is missing or mistyped."""
    for name, (types, required) in RUN_FIELD_TYPES.items():
        if name not in rec:
            if required:
                raise TraceError(path, "missing required field of the run line", line=line,
                                 field=name)
            continue
        value = rec[name]
        ok = type(value) in types  # exact: True is not an integer, a subclass is not a dict
        if ok and type(value) is float and not math.isfinite(value):
            ok = False
        if ok and type(value) is int and name in ("device_count", "schema_version"):
            ok = 0 <= value < 2**31
        if not ok:
            expected = " or ".join(_TYPE_WORDS[t] for t in types)
            raise TraceError(path, f"expected {expected}, got {_describe(value)}", line=line,
                             field=name)
    for name in ("policy_params", "library_versions", "extra"):
        value = rec.get(name)
        if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
            raise TraceError(path, "keys must be strings", line=line, field=name)


def parse_run_meta(path: str, rec: dict[str, Any], *, line: int | None = None) -> RunMeta:
    """Check a run line's fields and build its :class:`RunMeta`."""
    check_run_fields(path, rec, line=line)
    return RunMeta.from_dict(rec)
