"""vLLM server logs (``specsim import vllm-log``): the spec-decode lines, every shape printed.

vLLM v1 logs one line per logging interval (counters reset after each), in these shapes::

    SpecDecoding metrics: Draft acceptance rate: 62.5%, Accepted: 100 tokens, Drafted: 160 tokens
    SpecDecoding metrics: Draft acceptance rate: 41.2%, Mean acceptance length: 2.24,
        Accepted: 1224 tokens, Drafted: 2970 tokens, Per-position acceptance rate: 0.659, 0.381, 0.197
    SpecDecoding metrics: Mean acceptance length: 2.24, Accepted throughput: 30.1 tokens/s,
        Drafted throughput: 73.2 tokens/s, Accepted: 1224 tokens, Drafted: 2970 tokens,
        Per-position acceptance rate: 0.659, 0.381, 0.197, Avg Draft acceptance rate: 41.2%

(one line each in the log). vLLM v0 logged cumulative counters since the server started::

    Speculative metrics: Draft acceptance rate: 0.642, System efficiency: 0.598, Number of
        speculative tokens: 3, Number of accepted tokens: 8547, Number of draft tokens: 13311,
        Number of emitted tokens: 10616.

Fields are found by name wherever they sit on the line, so added fields (throughputs, draft-length
histograms) are ignored. vLLM does not log the number of drafts: it is ``Drafted / k`` with ``k``
the number of per-position rates (v1) or ``Number of speculative tokens`` (v0); without either it
is ``Accepted / (Mean acceptance length - 1)``; the per-position counts are rate x drafts. v0
intervals are differences of consecutive lines (a counter that goes down starts a new server run).
The result: one profile per logged interval and their aggregate (counts summed, i.e. rates
weighted by drafts) -- no requests.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tracing.errors import TraceError
from tracing.importers.common import read_text
from tracing.importers.profile import AcceptanceProfile, ImportResult
from tracing.schema import MAX_DRAFT_TOKENS

_NUM = r"(nan|[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
_PATTERNS = {
    "rate": re.compile(r"(?<!Avg )(?<!Total )Draft acceptance rate: " + _NUM + r"(%?)"),
    "avg_rate": re.compile(r"Avg Draft acceptance rate: " + _NUM + r"(%?)"),
    "mean_len": re.compile(r"Mean acceptance length: " + _NUM),
    "accepted": re.compile(r"(?<!Total )Accepted: ([0-9]+) tokens"),
    "drafted": re.compile(r"(?<!Total )Drafted: ([0-9]+) tokens"),
    "per_pos": re.compile(r"Per-position acceptance rate: (" + _NUM + r"(?:, " + _NUM + r")*)"
                          r"(?![0-9.])"),
    "v0_k": re.compile(r"Number of speculative tokens: ([0-9]+)"),
    "v0_accepted": re.compile(r"Number of accepted tokens: ([0-9]+)"),
    "v0_drafted": re.compile(r"Number of draft tokens: ([0-9]+)"),
    "v0_emitted": re.compile(r"Number of emitted tokens: ([0-9]+)"),
    "v0_eff": re.compile(r"System efficiency: " + _NUM),
}
_COUNT_LIMIT = 2**63  # a token counter past int64 is damage, not a server's count
_V1 = "SpecDecoding metrics:"
_V0 = "Speculative metrics:"


def _find(name: str, text: str) -> re.Match[str] | None:
    return _PATTERNS[name].search(text)


def _count(path: str, line: int, field: str, m: re.Match[str]) -> int:
    """A logged token counter, below 2**63."""
    digits = m.group(1)
    if len(digits) > 19 or int(digits) >= _COUNT_LIMIT:
        raise TraceError(path, f"{digits[:30]} tokens is past any server's counter (2**63)",
                         line=line, field=field)
    return int(digits)


def _v1_interval(path: str, line: int, text: str) -> AcceptanceProfile | None:
    acc_m, dr_m = _find("accepted", text), _find("drafted", text)
    if acc_m is None or dr_m is None:
        raise TraceError(path, "a SpecDecoding line without 'Accepted: N tokens' and "
                         "'Drafted: N tokens'", line=line,
                         field="Accepted" if acc_m is None else "Drafted")
    accepted = _count(path, line, "Accepted", acc_m)
    drafted = _count(path, line, "Drafted", dr_m)
    if accepted > drafted:
        raise TraceError(path, f"Accepted {accepted} > Drafted {drafted}", line=line,
                         field="Accepted")
    rates: list[float] = []
    if (m := _find("per_pos", text)) is not None:
        rates = [float(x) for x in m.group(1).split(", ")]  # each part matched _NUM
        if len(rates) > MAX_DRAFT_TOKENS:
            raise TraceError(path, f"{len(rates)} positions: more than {MAX_DRAFT_TOKENS:,} "
                             "draft tokens per step", line=line,
                             field="Per-position acceptance rate")
        bad = [r for r in rates if not 0.0 <= r <= 1.0]  # NaN fails too
        if bad and drafted:
            raise TraceError(path, f"per-position rate {bad[0]} outside [0, 1]", line=line,
                             field="Per-position acceptance rate")
        if any(b > a + 1e-3 for a, b in itertools.pairwise(rates)):
            raise TraceError(path, "per-position rates must not grow with the position (each "
                             "counts drafts accepting at least that many)", line=line,
                             field="Per-position acceptance rate")
    mean_len = float(m.group(1)) if (m := _find("mean_len", text)) is not None else None
    if drafted == 0:
        return AcceptanceProfile(0.0, 0.0, 0.0, [0.0] * len(rates), len(rates) or None)
    if rates:
        drafts = drafted / len(rates)
    elif mean_len is not None and mean_len > 1.0:
        drafts = accepted / (mean_len - 1.0)
    else:
        drafts = float("nan")  # this shape does not say
    per_pos = [r * drafts for r in rates] if rates else []
    return AcceptanceProfile(drafts, float(drafted), float(accepted), per_pos,
                             len(rates) or None)


def import_vllm_log(paths: list[str]) -> ImportResult:
    """Read vLLM log files into interval profiles and their aggregate (module docstring)."""
    total = AcceptanceProfile()
    intervals: list[dict[str, Any]] = []
    unknown_drafts = 0
    all_tokens = [0.0, 0.0]  # drafted, accepted over every line (also those without drafts)
    v0_prev: dict[str, int] | None = None
    shapes: set[str] = set()
    efficiency: list[float] = []
    for path in paths:
        for i, raw in enumerate(read_text(path).splitlines(), start=1):
            if _V1 in raw:
                text = raw.split(_V1, 1)[1]
                prof = _v1_interval(path, i, text)
                shapes.add("v1")
            elif _V0 in raw:
                text = raw.split(_V0, 1)[1]
                prof, v0_prev = _v0_interval(path, i, text, v0_prev)
                shapes.add("v0")
                if (m := _find("v0_eff", text)) is not None and m.group(1) != "nan":
                    efficiency.append(float(m.group(1)))
            else:
                continue
            if prof is None:
                continue
            row = {"file": path, "line": i, **prof.figures()}
            if prof.drafts != prof.drafts:  # NaN: the line gives no way to count drafts
                unknown_drafts += 1
                row["drafts"] = row["mean_acceptance_length"] = None
                row["acceptance_by_position"] = []
            else:
                total.add(prof)
            all_tokens[0] += prof.draft_tokens
            all_tokens[1] += prof.accepted_tokens
            intervals.append(row)
    if not intervals:
        raise TraceError(paths[0], f"no '{_V1}' or '{_V0}' lines found")
    result = ImportResult("vllm-log", total, None, intervals)
    result.missing["requests"] = "a server log has counters per interval, no requests"
    result.missing["num_drafts"] = ("not logged: Drafted / k (k = positions logged), or "
                                    "Accepted / (Mean acceptance length - 1)")
    if unknown_drafts:
        result.missing["mean_acceptance_length"] = (
            f"{unknown_drafts} of {len(intervals)} lines log neither per-position rates nor "
            "a mean acceptance length: their drafts are unknown, left out of the length and "
            "per-position figures (their tokens count in the acceptance rate)")
        result.extra.update(draft_tokens=all_tokens[0], accepted_tokens=all_tokens[1],
                            draft_acceptance_rate=(all_tokens[1] / all_tokens[0]
                                                   if all_tokens[0] else None))
    if "v0" in shapes:
        result.missing["acceptance_by_position"] = "v0 logs no per-position rates"
        if efficiency:
            result.extra["system_efficiency"] = efficiency[-1]
    result.extra["log_shapes"] = sorted(shapes)
    return result


def _v0_interval(path: str, line: int, text: str, prev: dict[str, int] | None
                 ) -> tuple[AcceptanceProfile | None, dict[str, int]]:
    cur: dict[str, int] = {}
    for key, name in (("k", "v0_k"), ("accepted", "v0_accepted"), ("drafted", "v0_drafted"),
                      ("emitted", "v0_emitted")):
        m = _find(name, text)
        field = {"k": "Number of speculative tokens", "accepted": "Number of accepted tokens",
                 "drafted": "Number of draft tokens"}.get(key, "Number of emitted tokens")
        if m is None:
            if key == "emitted":
                continue
            raise TraceError(path, "a Speculative metrics line without it", line=line, field=field)
        cur[key] = _count(path, line, field, m)
    if cur["accepted"] > cur["drafted"]:
        raise TraceError(path, f"accepted {cur['accepted']} > draft tokens {cur['drafted']}",
                         line=line, field="Number of accepted tokens")
    base = prev if prev is not None and all(cur[k] >= prev[k] for k in ("accepted", "drafted")) \
        else {"accepted": 0, "drafted": 0}  # counters went down: a new server run
    accepted, drafted = cur["accepted"] - base["accepted"], cur["drafted"] - base["drafted"]
    k = cur["k"]
    if k > MAX_DRAFT_TOKENS:
        raise TraceError(path, f"{k} speculative tokens per step (more than "
                         f"{MAX_DRAFT_TOKENS:,})", line=line, field="Number of speculative tokens")
    if k == 0 and cur["drafted"]:
        raise TraceError(path, f"0 speculative tokens per step but {cur['drafted']} draft "
                         "tokens", line=line, field="Number of speculative tokens")
    if drafted == 0 and prev is not None:
        return None, cur  # no new drafts since the last line
    drafts = drafted / k if k else 0.0
    return AcceptanceProfile(drafts, float(drafted), float(accepted), [], k or None), cur
