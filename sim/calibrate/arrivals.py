"""Real workload arrivals: ``[workload] arrival = "file"`` with ``arrivals_file = "PATH"``.

The formats, told apart by extension and first line:

- the Azure LLM inference trace CSV (Azure/AzurePublicDataset): a header
  ``TIMESTAMP,ContextTokens,GeneratedTokens``, TIMESTAMP a date-time
  (``2023-11-16 18:15:46.6805900``) or seconds;
- Mooncake's JSONL: one object per line, ``timestamp`` in milliseconds, ``input_length``,
  ``output_length`` (other keys, e.g. ``hash_ids``, ignored);
- any specsim trace (``.jsonl`` with a run line, or ``.parquet``): its requests' ``arrival_s``,
  ``prompt_tokens``, ``output_tokens``.

Requests are taken in time order: the first ``requests`` at or after ``start_s`` seconds into the
file, their gaps divided by ``rate_scale`` (2 = twice the load), shifted so the first arrives at
0; lengths capped by ``max_prompt_tokens`` / ``max_output_tokens`` (0 = no cap) and at least 1.
A bad row is a SpecsimError naming the file, line and column.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tracing.errors import SpecsimError
from tracing.jsonl import json_lines

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


@dataclass(frozen=True)
class ArrivalTable:
    """Arrival times (seconds, first = 0) and lengths of the requests a file supplies."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    format: str

    def __len__(self) -> int:
        return len(self.arrival_s)


def read_arrivals(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(seconds from the file's start, prompt, output lengths, format), in file order."""
    p = Path(path)
    if not p.is_file():
        raise SpecsimError(f"{path}: arrivals file not found")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return (*_azure(path), "azure")
    if suffix == ".parquet":
        return (*_trace(path), "specsim")
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        raise SpecsimError(f"{path}:1: not a CSV (.csv), a Mooncake JSONL or a specsim "
                           "trace") from None
    if isinstance(head, dict) and head.get("type") == "run":
        return (*_trace(path), "specsim")
    return (*_mooncake(path), "mooncake")


def _azure(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise SpecsimError(f"{path}: not a readable CSV ({exc})") from None
    frame.columns = [c.strip() for c in frame.columns]
    for col in AZURE_COLUMNS:
        if col not in frame.columns:
            raise SpecsimError(f"{path}:1: no {col} column (Azure trace: "
                               f"{','.join(AZURE_COLUMNS)})")
    raw = frame["TIMESTAMP"].str.strip()
    t = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    if np.isnan(t).any():  # date-times
        stamps = pd.to_datetime(raw, errors="coerce", format="mixed")
        bad = stamps.isna().to_numpy()
        if bad.any():
            row = int(bad.argmax())
            raise SpecsimError(f"{path}:{row + 2}: TIMESTAMP {raw.iat[row]!r} is not a date-time "
                               "or a number of seconds")
        t = (stamps - stamps.min()).dt.total_seconds().to_numpy(dtype=float)
    return t, _counts(path, frame, "ContextTokens"), _counts(path, frame, "GeneratedTokens")


def _counts(path: str, frame: pd.DataFrame, col: str, line_offset: int = 2) -> np.ndarray:
    values = pd.to_numeric(frame[col].astype(str).str.strip(), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        row = int(bad.argmax())
        raise SpecsimError(f"{path}:{row + line_offset}: {col} {frame[col].iat[row]!r} is not a "
                           "token count")
    return values.astype(np.int64)


def _mooncake(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t: list[float] = []
    prompt: list[float] = []
    output: list[float] = []
    with open(path, encoding="utf-8") as fh:
        for i, rec in json_lines(fh, path):
            if not isinstance(rec, dict):
                raise SpecsimError(f"{path}:{i}: a line must be a JSON object")
            for key, out in zip(MOONCAKE_KEYS, (t, prompt, output), strict=True):
                v = rec.get(key)
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                        or v < 0 or (key != "timestamp" and v != int(v)) or abs(v) >= 2**53:
                    raise SpecsimError(f"{path}:{i}: {key} {v!r:.40} must be a number >= 0 "
                                       "(Mooncake: timestamp in ms, input_length, output_length)")
                out.append(v)
    if not t:
        raise SpecsimError(f"{path}: no requests in the arrivals file")
    return (np.asarray(t, dtype=np.float64) / 1e3, np.asarray(prompt, np.int64),
            np.asarray(output, np.int64))


def _trace(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from tracing.io import read_trace

    r = read_trace(path).requests
    return (r["arrival_s"].to_numpy(float), r["prompt_tokens"].to_numpy(np.int64),
            r["output_tokens"].to_numpy(np.int64))


def load_arrivals(
    path: str,
    requests: int,
    *,
    start_s: float = 0.0,
    rate_scale: float = 1.0,
    max_prompt_tokens: int = 0,
    max_output_tokens: int = 0,
    where: str = "<scenario>",
) -> ArrivalTable:
    """The first ``requests`` arrivals at or after ``start_s`` (module docstring); ``requests``
    0: every one of them."""
    t, prompt, output, fmt = read_arrivals(path)
    if len(t) == 0:
        raise SpecsimError(f"{path}: no requests in the arrivals file")
    order = np.argsort(t, kind="stable")
    t, prompt, output = t[order] - t[order][0], prompt[order], output[order]
    keep = np.flatnonzero(t >= start_s)
    if requests:
        keep = keep[:requests]
    if len(keep) < max(requests, 1):
        raise SpecsimError(
            f"{where}: [workload] requests = {requests}: {path} has {len(keep)} requests from "
            f"start_s = {start_s:g} s (it spans {float(t[-1]):g} s, {len(t)} requests)")
    arrival = (t[keep] - t[keep][0]) / rate_scale
    p, o = prompt[keep], output[keep]
    if max_prompt_tokens:
        p = np.minimum(p, max_prompt_tokens)
    if max_output_tokens:
        o = np.minimum(o, max_output_tokens)
    return ArrivalTable(arrival, np.maximum(p, 1), np.maximum(o, 1), fmt)
