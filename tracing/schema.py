"""Trace schema version 1: the contract between live/, sim/ and analysis/.

A trace is a run: one :class:`RunMeta`, one :class:`RequestRecord` per request and one
:class:`CycleRecord` per draft/verify cycle. Times are seconds from the run start, measured with
a monotonic clock. Field names carry their units (``draft_s``, ``prompt_tokens``); nothing
outside this module spells a field name as a new string -- use the constants below.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

SCHEMA_VERSION = 1

Source = Literal["live", "sim"]


@dataclass(slots=True)
class RunMeta:
    """Metadata of a run: what was decoded, where, and how."""

    source: Source
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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMeta:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", None) or {})
        extra.update({k: v for k, v in data.items() if k not in known and k != "type"})
        return cls(**kwargs, extra=extra)


@dataclass(slots=True)
class RequestRecord:
    """One request, written when it completes."""

    request_id: int
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


@dataclass(slots=True)
class CycleRecord:
    """One draft/verify cycle of one request (``tau == 0`` is a target-only step)."""

    request_id: int
    cycle: int  # 0-based, contiguous within a request
    start_s: float
    tau: int  # tokens drafted
    accepted: int  # accepted prefix, 0..tau
    emitted: int  # tokens appended: accepted + 1, fewer at a stop
    draft_s: float
    verify_s: float
    overhead_s: float  # sampling, bookkeeping
    context_tokens: int  # tokens in the context before the cycle
    draft_prob: list[float] | None = None  # per drafted position: q(x_i)
    target_prob: list[float] | None = None  # per drafted position: p(x_i)


# Column specs drive validation and the Parquet schema: name -> (kind, required).
# kind is one of "int", "float", "str", "floatlist".
REQUEST_COLUMNS: dict[str, tuple[str, bool]] = {
    "request_id": ("int", True),
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
}

CYCLE_COLUMNS: dict[str, tuple[str, bool]] = {
    "request_id": ("int", True),
    "cycle": ("int", True),
    "start_s": ("float", True),
    "tau": ("int", True),
    "accepted": ("int", True),
    "emitted": ("int", True),
    "draft_s": ("float", True),
    "verify_s": ("float", True),
    "overhead_s": ("float", True),
    "context_tokens": ("int", True),
    "draft_prob": ("floatlist", False),
    "target_prob": ("floatlist", False),
}

# Fields that are durations (must be >= 0).
REQUEST_DURATIONS = ("prefill_s",)
CYCLE_DURATIONS = ("draft_s", "verify_s", "overhead_s")
# Fields that are counts (must be >= 0).
REQUEST_COUNTS = ("prompt_tokens", "output_tokens", "verify_passes")
CYCLE_COUNTS = ("cycle", "tau", "accepted", "emitted", "context_tokens")

# JSONL record types (the "type" field of each line).
TYPE_RUN, TYPE_REQUEST, TYPE_CYCLE = "run", "request", "cycle"
