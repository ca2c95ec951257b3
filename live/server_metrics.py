"""Server metrics, named once: vLLM's Prometheus names, and vLLM's per-request ``metrics``.

``/metrics`` (Prometheus text exposition format, version 0.0.4) carries vLLM's spec-decode
counters -- ``vllm:spec_decode_num_drafts``, ``vllm:spec_decode_num_draft_tokens``,
``vllm:spec_decode_num_accepted_tokens`` and ``vllm:spec_decode_num_accepted_tokens_per_pos``
(label ``position``, 0-based) -- exposed with the ``_total`` suffix as counters are (on their HELP and TYPE lines too, as
prometheus_client writes them), plus
vLLM's request and token counters and the queue and batch gauges (``vllm:num_requests_running``,
``vllm:num_requests_waiting``, ``specsim:batch_size`` = rows in the last engine step). A step
with ``tau == 0`` is no draft (vLLM counts only steps that verified drafted tokens).

:func:`request_metrics` builds the response's ``metrics`` object as vLLM documents it
(``docs/features/per_request_metrics.md`` and ``speculative_decoding/acceptance_metrics.md``):
timing fields in ms, and ``speculative_decoding`` in the ``summary`` shape plus the
``detailed`` per-step arrays; specsim adds ``steps`` (every step, drafting or not: drafted,
accepted, emitted, batch size and step time), which the load generator merges into its trace.
"""

from __future__ import annotations

import threading
from typing import Any

from tracing.schema import CycleRecord

SPEC_COUNTERS = {
    "vllm:spec_decode_num_drafts": "Number of spec decoding drafts.",
    "vllm:spec_decode_num_draft_tokens": "Number of draft tokens.",
    "vllm:spec_decode_num_accepted_tokens": "Number of accepted tokens.",
}
PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"
# the trace's stop reason -> vLLM's ``finished_reason`` label value (vLLM's FinishReason words)
FINISHED_REASON = {"eos": "stop", "length": "length", "budget": "length",
                   "interrupted": "abort", "error": "error"}


class ServerMetrics:
    """Counters and gauges, updated by the engine thread and read by ``/metrics``."""

    def __init__(self, model_name: str = "") -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.drafts = 0
        self.draft_tokens = 0
        self.accepted_tokens = 0
        self.accepted_per_pos: list[int] = []
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.finished: dict[str, int] = {}
        self.rejected = 0  # 503s
        self.running = 0
        self.waiting = 0
        self.batch_size = 0

    def observe_cycle(self, cycle: CycleRecord) -> None:
        """Count one row's cycle of an engine step."""
        with self._lock:
            self.generation_tokens += cycle.emitted
            self.batch_size = int(cycle.batch_size or 1)
            if cycle.tau <= 0:
                return
            self.drafts += 1
            self.draft_tokens += cycle.tau
            self.accepted_tokens += cycle.accepted
            if len(self.accepted_per_pos) < cycle.tau:
                self.accepted_per_pos.extend([0] * (cycle.tau - len(self.accepted_per_pos)))
            for i in range(cycle.accepted):
                self.accepted_per_pos[i] += 1

    def observe_request(self, request: Any, reason: str) -> None:
        """Count a finished request (``reason``: the trace's stop reason, counted under vLLM's
        ``finished_reason`` word: ``stop``, ``length``, ``abort``, ``error``)."""
        word = FINISHED_REASON.get(reason, "abort")
        with self._lock:
            self.prompt_tokens += len(request.prompt_ids)
            self.finished[word] = self.finished.get(word, 0) + 1

    def observe_rejected(self) -> None:
        """Count a request turned away (overload)."""
        with self._lock:
            self.rejected += 1

    def set_load(self, running: int, waiting: int) -> None:
        """The queue and batch gauges after an engine loop turn."""
        with self._lock:
            self.running, self.waiting = running, waiting
            if not running:
                self.batch_size = 0

    def render(self) -> str:
        """The Prometheus text exposition."""
        label = f'model_name="{_escape(self.model_name)}"'
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            # A counter's samples, HELP and TYPE lines all carry ``_total`` (what vLLM, through
            # prometheus_client, writes; a parser files the family under the bare name).
            full = f"{name}_total" if kind == "counter" else name
            lines.append(f"# HELP {full} {help_text}")
            lines.append(f"# TYPE {full} {kind}")
            for labels, value in samples:
                lines.append(f"{full}{{{labels}}} {value}")

        with self._lock:
            values = {"vllm:spec_decode_num_drafts": self.drafts,
                      "vllm:spec_decode_num_draft_tokens": self.draft_tokens,
                      "vllm:spec_decode_num_accepted_tokens": self.accepted_tokens}
            for name, help_text in SPEC_COUNTERS.items():
                metric(name, "counter", help_text, [(label, values[name])])
            metric(PER_POS, "counter", "Accepted tokens per draft position.",
                   [(f'{label},position="{i}"', n) for i, n in enumerate(self.accepted_per_pos)])
            metric("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.",
                   [(label, self.prompt_tokens)])
            metric("vllm:generation_tokens", "counter", "Number of generation tokens processed.",
                   [(label, self.generation_tokens)])
            metric("vllm:request_success", "counter", "Count of finished requests by reason.",
                   [(f'{label},finished_reason="{r}"', n)
                    for r, n in sorted(self.finished.items())])  # vLLM's words: stop, ...
            metric("specsim:requests_rejected", "counter", "Requests refused with 503 (overload).",
                   [(label, self.rejected)])
            metric("vllm:num_requests_running", "gauge", "Number of requests in the batch.",
                   [(label, self.running)])
            metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting.",
                   [(label, self.waiting)])
            metric("specsim:batch_size", "gauge", "Rows in the last engine step.",
                   [(label, self.batch_size)])
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def request_metrics(request: Any, num_spec_tokens: int | None) -> dict[str, Any]:
    """vLLM's per-request ``metrics`` object for a finished request (``num_spec_tokens``:
    the configured maximum draft length; ``None`` when there is no draft, and then
    ``speculative_decoding`` is null, as in vLLM without speculation)."""
    start, first, end = request.start_s, request.first_token_s, request.end_s
    n = len(request.tokens)
    ttft = None if first is None or start is None else first - start
    gen = None if first is None or end is None else end - first
    total = None if start is None or end is None else end - start
    out: dict[str, Any] = {
        "time_to_first_token_ms": _ms(ttft),
        "generation_time_ms": _ms(gen),
        "queue_time_ms": _ms(None if start is None else start - request.arrival_s),
        "mean_itl_ms": _ms(gen / (n - 1)) if gen is not None and n > 1 else None,
        "tokens_per_second": round(n / total, 3) if total else None,
    }
    cycles: list[CycleRecord] = request.cycles
    out["steps"] = {
        "drafted": [c.tau for c in cycles], "accepted": [c.accepted for c in cycles],
        "emitted": [c.emitted for c in cycles],
        "batch_size": [int(c.batch_size or 1) for c in cycles],
        "cycle_ms": [_ms(_cycle_seconds(c)) for c in cycles]}
    out["speculative_decoding"] = (None if num_spec_tokens is None
                                   else spec_decode_summary(cycles, num_spec_tokens))
    return out


def _cycle_seconds(c: CycleRecord) -> float:
    if c.cycle_s is not None:
        return float(c.cycle_s)
    return float((c.draft_s or 0.0) + (c.verify_s or 0.0) + (c.overhead_s or 0.0))


def spec_decode_summary(cycles: list[CycleRecord], num_spec_tokens: int) -> dict[str, Any]:
    """``metrics.speculative_decoding``: vLLM's ``summary`` fields and ``detailed`` arrays
    (steps that drafted nothing are omitted, as vLLM omits them)."""
    spec = [c for c in cycles if c.tau > 0]
    k = max([num_spec_tokens, *(c.tau for c in spec)])
    hist = [0] * (k + 1)
    by_len: dict[str, list[int]] = {}
    for c in spec:
        hist[c.accepted] += 1
        by_len.setdefault(str(c.tau), [0] * (c.tau + 1))[c.accepted] += 1
    drafted = sum(c.tau for c in spec)
    accepted = sum(c.accepted for c in spec)
    return {
        "mean_acceptance_length": 1.0 + accepted / len(spec) if spec else 1.0,
        "draft_acceptance_rate": accepted / drafted if drafted else 0.0,
        "acceptance_histogram": hist,
        "acceptance_histogram_by_draft_length": dict(sorted(by_len.items(),
                                                            key=lambda kv: int(kv[0]))),
        "num_spec_steps": len(spec),
        "num_accepted_draft_tokens": accepted,
        "num_draft_tokens": drafted,
        "num_spec_tokens": num_spec_tokens,
        "per_step_accepted": [c.accepted for c in spec],
        "per_step_drafted": [c.tau for c in spec],
    }
