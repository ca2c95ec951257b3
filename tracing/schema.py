"""Trace schema version 2: the contract between live/, sim/, analysis/ and the importers.

A trace is a run: one :class:`RunMeta`, one :class:`RequestRecord` per request and one
:class:`CycleRecord` per draft/verify cycle. Times are seconds from the run start, measured with
a monotonic clock. Field names carry their units (``draft_s``, ``prompt_tokens``); nothing
outside this module spells a field name as a new string -- use the constants below.

Version 2 over version 1 (v1 files read unchanged):

- ``request_id`` is a string or an integer (engines' ids are strings: ``chatcmpl-...``), kept
  exactly; one trace uses one kind.
- cycle ``batch_size`` (requests in the engine step this cycle ran in; 1 single-stream) and
  ``cycle_s`` (wall time of the whole step). ``draft_s``/``verify_s``/``overhead_s`` may be null
  together when the split is unknown (a streaming client, an engine log); readers fill ``cycle_s``
  from the split when it is absent.
- request ``stop_reason``: one of :data:`STOP_REASONS`.
- run ``source`` may name an engine (``vllm``, ``sglang``, ``llamacpp``, ``client``, ...); every
  run-line field has a checked type (:data:`RUN_FIELD_TYPES`).
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)

# What a run's ``source`` usually is; v2 accepts any non-empty name, v1 only "live" | "sim".
KNOWN_SOURCES = ("live", "sim", "vllm", "sglang", "llamacpp", "trtllm", "client")
V1_SOURCES = ("live", "sim")

# Why a request stopped. "interrupted" (Ctrl-C, a dropped connection) is left out of latency
# figures by default and counted on its own.
STOP_REASONS = ("eos", "length", "budget", "interrupted", "error")
STOP_INTERRUPTED = "interrupted"
# The most tokens one step may draft. Readers refuse more (a damaged file, not a run): the
# per-position tables a summary and the importers build are this long.
MAX_DRAFT_TOKENS = 65_536

RequestId = int | str


@dataclass(slots=True)
class RunMeta:
    """Metadata of a run: what was decoded, where, and how."""

    source: str
    target_model: str
    draft_model: str
    device: str = "cpu"
    device_count: int = 1
    dtype: str = "float32"
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    policy: str = "fixed"
    policy_params: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    schema_version: int = SCHEMA_VERSION
    # Free-form facts about the run: workload name, "synthetic" label, the scenario of a
    # simulation, model sizes for roofline rescaling, notes.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.created_at:
            self.created_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if not self.library_versions:
            self.library_versions = {"python": platform.python_version()}

    def to_dict(self) -> dict[str, Any]:
        """The run line's fields (``extra`` nested)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMeta:
        """Build from a run line; unknown keys go to ``extra``. Types are checked by
        :func:`tracing.runmeta.parse_run_meta`, not here."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", None) or {})
        extra.update({k: v for k, v in data.items() if k not in known and k != "type"})
        return cls(**kwargs, extra=extra)


# The run line's fields: name -> (accepted Python types, required). bool is never an int here.
RUN_FIELD_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "source": ((str,), True),
    "target_model": ((str,), True),
    "draft_model": ((str,), True),
    "schema_version": ((int,), True),
    "device": ((str,), False),
    "device_count": ((int,), False),
    "dtype": ((str,), False),
    "temperature": ((float, int), False),
    "top_p": ((float, int), False),
    "seed": ((int, type(None)), False),
    "policy": ((str,), False),
    "policy_params": ((dict,), False),
    "library_versions": ((dict,), False),
    "created_at": ((str,), False),
    "extra": ((dict,), False),
}


@dataclass(slots=True)
class RequestRecord:
    """One request, written when it completes."""

    request_id: RequestId
    arrival_s: float
    start_s: float
    first_token_s: float
    end_s: float
    prompt_tokens: int
    output_tokens: int
    prefill_s: float
    verify_passes: int  # target forward passes after prefill
    prompt_text: str | None = None
    output_text: str | None = None
    stop_reason: str | None = None  # one of STOP_REASONS


@dataclass(slots=True)
class CycleRecord:
    """One draft/verify cycle of one request (``tau == 0`` is a target-only step)."""

    request_id: RequestId
    cycle: int  # 0-based, contiguous within a request
    start_s: float
    tau: int  # tokens drafted
    accepted: int  # accepted prefix, 0..tau
    emitted: int  # tokens appended: accepted + 1, fewer at a stop
    draft_s: float | None  # the split: all three, or none when only cycle_s is known
    verify_s: float | None
    overhead_s: float | None  # sampling, bookkeeping
    context_tokens: int  # tokens in the context before the cycle
    draft_prob: list[float] | None = None  # per drafted position: q(x_i)
    target_prob: list[float] | None = None  # per drafted position: p(x_i)
    batch_size: int | None = None  # requests in the engine step; 1 single-stream
    cycle_s: float | None = None  # wall time of the whole step; filled from the split if None


# Column specs drive validation and the Parquet schema: name -> (kind, required).
# kind is one of "id" (int or str, one kind per trace), "int", "float", "str", "floatlist".
REQUEST_COLUMNS: dict[str, tuple[str, bool]] = {
    "request_id": ("id", True),
    "arrival_s": ("float", True),
    "start_s": ("float", True),
    "first_token_s": ("float", True),
    "end_s": ("float", True),
    "prompt_tokens": ("int", True),
    "output_tokens": ("int", True),
    "prefill_s": ("float", True),
    "verify_passes": ("int", True),
    "prompt_text": ("str", False),
    "output_text": ("str", False),
    "stop_reason": ("str", False),
}

CYCLE_COLUMNS: dict[str, tuple[str, bool]] = {
    "request_id": ("id", True),
    "cycle": ("int", True),
    "start_s": ("float", True),
    "tau": ("int", True),
    "accepted": ("int", True),
    "emitted": ("int", True),
    "draft_s": ("float", False),
    "verify_s": ("float", False),
    "overhead_s": ("float", False),
    "context_tokens": ("int", True),
    "draft_prob": ("floatlist", False),
    "target_prob": ("floatlist", False),
    "batch_size": ("int", False),
    "cycle_s": ("float", False),
}

# The draft/verify split of a cycle: all three present, or all three null (then cycle_s is).
CYCLE_SPLIT = ("draft_s", "verify_s", "overhead_s")
# Fields that are durations (must be >= 0).
REQUEST_DURATIONS = ("prefill_s",)
CYCLE_DURATIONS = (*CYCLE_SPLIT, "cycle_s")
# Fields that are counts (must be >= 0).
REQUEST_COUNTS = ("prompt_tokens", "output_tokens", "verify_passes")
CYCLE_COUNTS = ("cycle", "tau", "accepted", "emitted", "context_tokens")
REQUEST_TIMES = ("arrival_s", "start_s", "first_token_s", "end_s")

# JSONL record types (the "type" field of each line).
TYPE_RUN, TYPE_REQUEST, TYPE_CYCLE = "run", "request", "cycle"
