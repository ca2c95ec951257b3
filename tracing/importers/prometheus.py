"""Prometheus scrapes of a server's ``/metrics`` (``specsim import prometheus BEFORE AFTER``).

The counters are differenced between the two scrapes (one scrape alone: the server's lifetime
totals, and ``missing`` says so)::

    vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 120.0
    vllm:spec_decode_num_draft_tokens_total{...} 480.0
    vllm:spec_decode_num_accepted_tokens_total{...} 300.0
    vllm:spec_decode_num_accepted_tokens_per_pos_total{...,position="0"} 100.0

with or without the ``_total`` suffix and with any labels (series are summed over every label but
``position``). llama.cpp's ``llama-server --metrics`` exposes the same four counters under the
``llamacpp:`` prefix (``llamacpp:spec_decode_num_drafts_total`` ...); they are read alike and
``extra.engine`` says which engine's names were found. SGLang's ``sglang:spec_accept_length`` gauge (its recent mean acceptance length) is
read from the last scrape. A counter that goes down between the scrapes (a restart, or the files
in the wrong order) is an error naming the file, line and metric.
"""

from __future__ import annotations

import math
import re

from tracing.errors import TraceError
from tracing.importers.common import read_text
from tracing.importers.profile import AcceptanceProfile, ImportResult
from tracing.schema import MAX_DRAFT_TOKENS

DRAFTS = "vllm:spec_decode_num_drafts"
DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens"
ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"
SGLANG_LEN = "sglang:spec_accept_length"
_COUNTERS = (DRAFTS, DRAFT_TOKENS, ACCEPTED, PER_POS)

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

_ENGINES = {"vllm:": "vllm", "llamacpp:": "llamacpp"}

Series = dict[tuple[str, str], tuple[float, int]]  # (metric, position) -> (value, line)


def _canonical(name: str) -> tuple[str, str | None]:
    """(vLLM's name, engine) of a counter name in vLLM's or llama.cpp's spelling."""
    for prefix, engine in _ENGINES.items():
        if name.startswith(prefix):
            return "vllm:" + name[len(prefix):], engine
    return name, None


def parse_scrape(path: str) -> tuple[Series, float | None]:
    """The spec-decode counters of one scrape file, summed over labels, and SGLang's gauge."""
    return parse_text(read_text(path), path)


def parse_text(text: str, path: str, engines: set[str] | None = None
               ) -> tuple[Series, float | None]:
    """:func:`parse_scrape` of a scrape's text (``path`` names it in errors); the engines whose
    counter names were seen are added to ``engines``."""
    series: Series = {}
    gauge: float | None = None
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue  # not a sample line we read
        name = m.group(1)
        base, engine = _canonical(name[:-6] if name.endswith("_total") else name)
        if base not in _COUNTERS and base != SGLANG_LEN:
            continue
        if engine is not None and engines is not None:
            engines.add(engine)
        try:
            value = float(m.group(4))
        except ValueError:
            raise TraceError(path, f"value {m.group(4)!r} is not a number", line=i,
                             field=name) from None
        if not math.isfinite(value) or value < 0:
            raise TraceError(path, f"value {value} must be a finite number >= 0", line=i,
                             field=name)
        if base == SGLANG_LEN:
            gauge = value
            continue
        labels = dict(_LABEL.findall(m.group(3) or ""))
        pos = labels.get("position", "") if base == PER_POS else ""
        if base == PER_POS and not (pos.isascii() and pos.isdigit()):
            raise TraceError(path, "a per-position counter needs position=\"N\"", line=i,
                             field=name)
        if base == PER_POS and int(pos) >= MAX_DRAFT_TOKENS:
            raise TraceError(path, f"position {pos} is past {MAX_DRAFT_TOKENS:,} draft tokens "
                             "per step", line=i, field=name)
        if base == PER_POS:
            pos = str(int(pos))
        old, _ = series.get((base, pos), (0.0, i))
        series[(base, pos)] = (old + value, i)
    return series, gauge


def profile_between(before: str, after: str, where: str) -> AcceptanceProfile:
    """The acceptance counters of a run from the texts of the scrapes before and after it."""
    return _difference(parse_text(before, f"{where} before")[0],
                       parse_text(after, f"{where} after")[0],
                       [f"{where} before", f"{where} after"])


def import_prometheus(paths: list[str]) -> ImportResult:
    """Difference two scrapes (or read one) into an acceptance profile."""
    if len(paths) > 2:
        raise TraceError(paths[2], "prometheus takes one or two scrapes (before, after)")
    engines: set[str] = set()
    after, gauge = parse_text(read_text(paths[-1]), paths[-1], engines)
    before: Series = (parse_text(read_text(paths[0]), paths[0], engines)[0]
                      if len(paths) == 2 else {})
    prof = _difference(before, after, paths)
    result = ImportResult("prometheus", prof)
    if engines:
        result.extra["engine"] = ",".join(sorted(engines))
    return _describe(result, prof, paths, gauge, after)


def _difference(before: Series, after: Series, paths: list[str]) -> AcceptanceProfile:
    """``after - before`` as an acceptance profile, checked (counters never go down)."""
    after_path = paths[-1]
    delta: dict[tuple[str, str], float] = {}
    for key, (value, line) in after.items():
        old = before.get(key, (0.0, 0))[0]
        if value < old:
            name = key[0] + (f'{{position="{key[1]}"}}' if key[1] else "")
            raise TraceError(after_path, f"counter went down from {old:g} (in {paths[0]}) to "
                             f"{value:g}: a server restart between the scrapes, or the files "
                             "in the wrong order (before, then after)", line=line, field=name)
        delta[key] = value - old
    for key, (_, line) in before.items():
        if key not in after:
            raise TraceError(paths[0], "counter missing from the later scrape", line=line,
                             field=key[0])
    n_pos = 1 + max((int(p) for (n, p) in delta if n == PER_POS), default=-1)
    per_pos = [delta.get((PER_POS, str(i)), 0.0) for i in range(n_pos)]
    prof = AcceptanceProfile(delta.get((DRAFTS, ""), 0.0), delta.get((DRAFT_TOKENS, ""), 0.0),
                             delta.get((ACCEPTED, ""), 0.0), per_pos, n_pos or None)
    if prof.accepted_tokens > prof.draft_tokens:
        at: int | None = after[(ACCEPTED, "")][1] if (ACCEPTED, "") in after else None
        raise TraceError(after_path, f"accepted {prof.accepted_tokens:g} > drafted "
                         f"{prof.draft_tokens:g}", line=at, field=ACCEPTED)
    for i, a in enumerate(per_pos):
        if a > prof.drafts + 1e-9 and prof.drafts:
            raise TraceError(after_path, f"position {i} accepted {a:g} times in {prof.drafts:g} "
                             "drafts", line=after[(PER_POS, str(i))][1], field=PER_POS)
    return prof


def _describe(result: ImportResult, prof: AcceptanceProfile, paths: list[str],
              gauge: float | None, after: Series) -> ImportResult:
    """What the scrapes could not say (``missing``) and SGLang's gauge."""
    per_pos = prof.accepted_per_pos
    result.missing["requests"] = "a scrape has server counters, no requests"
    if len(paths) == 1:
        result.missing["before"] = ("one scrape: the server's lifetime totals (give the scrape "
                                    "before and after a run for that run's counts)")
    if not any(k[0] in (DRAFTS, ACCEPTED) for k in after):
        result.missing["vllm counters"] = ("no vllm:spec_decode_* (or llamacpp:spec_decode_*) "
                                           "counters in the scrape")
    if not per_pos and prof.drafts:
        result.missing["acceptance_by_position"] = "no ..._num_accepted_tokens_per_pos counters"
    if gauge is not None:
        result.extra["sglang_spec_accept_length"] = gauge
        if not prof.drafts:
            result.extra["mean_acceptance_length"] = gauge
            result.missing["mean_acceptance_length"] = (
                "SGLang's sglang:spec_accept_length gauge (the server's recent mean), not counts")
    return result
