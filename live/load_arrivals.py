"""Arrival files for ``specsim load --arrivals``: the Azure LLM inference trace CSV and Mooncake
JSONL, read into ``(offset_s, lengths)`` pairs, offsets from the first arrival, in time order.

- Azure (``AzureLLMInferenceTrace_*.csv``): columns ``TIMESTAMP`` (``2023-11-16 18:15:46.6805900``,
  fractional seconds of any precision), ``ContextTokens``, ``GeneratedTokens``.
- Mooncake (``*.jsonl``): one object per line with ``timestamp`` (milliseconds),
  ``input_length``, ``output_length`` (other keys, e.g. ``hash_ids``, ignored).

A bad file is a SpecsimError naming the file and line.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError

Arrival = tuple[float, dict[str, int]]


def _azure_time(text: str, where: str) -> float:
    date, _, frac = text.strip().partition(".")
    try:
        whole = datetime.strptime(date, "%Y-%m-%d %H:%M:%S").timestamp()
    except ValueError:
        raise SpecsimError(f"{where}: TIMESTAMP {text!r} is not 'YYYY-MM-DD HH:MM:SS[.f]'") from None
    if frac and not frac.isdigit():
        raise SpecsimError(f"{where}: TIMESTAMP {text!r} has a bad fraction")
    return whole + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _int(value: Any, where: str, name: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise SpecsimError(f"{where}: {name} {value!r} is not an integer") from None
    if out < 0:
        raise SpecsimError(f"{where}: {name} is negative ({out})")
    return out


def read_azure(path: str | Path) -> list[Arrival]:
    """Arrivals of an Azure LLM inference trace CSV."""
    out: list[Arrival] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise SpecsimError(f"{path}: an Azure trace needs columns {', '.join(sorted(need))}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            out.append((_azure_time(row["TIMESTAMP"], where), {
                "prompt_tokens": _int(row["ContextTokens"], where, "ContextTokens"),
                "output_tokens": _int(row["GeneratedTokens"], where, "GeneratedTokens")}))
    return _relative(out, path)


def read_mooncake(path: str | Path) -> list[Arrival]:
    """Arrivals of a Mooncake JSONL trace (timestamps in milliseconds)."""
    out: list[Arrival] = []
    with open(path, encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            where = f"{path}:{line}"
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SpecsimError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or "timestamp" not in obj:
                raise SpecsimError(f"{where}: a Mooncake line needs 'timestamp'")
            ts = obj["timestamp"]
            if isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0:
                raise SpecsimError(f"{where}: timestamp {ts!r} is not a non-negative number")
            out.append((float(ts) / 1000.0, {
                "prompt_tokens": _int(obj.get("input_length", 0), where, "input_length"),
                "output_tokens": _int(obj.get("output_length", 0), where, "output_length")}))
    return _relative(out, path)


def _relative(arrivals: list[Arrival], path: str | Path) -> list[Arrival]:
    if not arrivals:
        raise SpecsimError(f"{path}: no arrivals")
    arrivals.sort(key=lambda a: a[0])
    t0 = arrivals[0][0]
    return [(t - t0, lengths) for t, lengths in arrivals]


def read_arrivals(path: str | Path) -> list[Arrival]:
    """An Azure CSV (``.csv``) or a Mooncake JSONL (``.jsonl``) arrival file."""
    p = Path(path)
    if not p.is_file():
        raise SpecsimError(f"--arrivals {path}: no such file")
    if p.suffix == ".csv":
        return read_azure(p)
    if p.suffix in (".jsonl", ".json"):
        return read_mooncake(p)
    raise SpecsimError(f"--arrivals {path}: expected an Azure .csv or a Mooncake .jsonl")
