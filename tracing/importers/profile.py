"""What an importer hands back: a trace (when the input has requests) and/or an acceptance
profile (counts over verify steps), the figures ``import --json`` prints, and what was missing.

Definitions are vLLM's (docs/features/speculative_decoding/acceptance_metrics.md):

- ``draft_acceptance_rate`` = accepted / draft_tokens
- ``mean_acceptance_length`` = 1 + accepted / drafts (drafts = verify steps that drafted)
- ``acceptance_by_position[i]`` = accepted_per_pos[i] / drafts: the *unconditional* chance that
  drafted position i+1 was accepted (vLLM's per-position acceptance rate)

The simulator's ``[acceptance] model = "positional"`` takes *conditional* hazards
``h_i = P(accepted >= i | accepted >= i-1)``; :meth:`AcceptanceProfile.hazards` converts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracing.trace import Trace


@dataclass
class AcceptanceProfile:
    """Spec-decode counters over a set of verify steps (one interval, one request, a run)."""

    drafts: float = 0.0  # verify steps that drafted (vLLM's num_drafts / num_spec_steps)
    draft_tokens: float = 0.0
    accepted_tokens: float = 0.0
    accepted_per_pos: list[float] = field(default_factory=list)  # steps accepting >= i+1
    num_spec_tokens: int | None = None  # k, the configured draft length, when known

    def add(self, other: AcceptanceProfile) -> None:
        """Accumulate another profile's counts (weighting by drafts)."""
        self.drafts += other.drafts
        self.draft_tokens += other.draft_tokens
        self.accepted_tokens += other.accepted_tokens
        n = max(len(self.accepted_per_pos), len(other.accepted_per_pos))
        a = self.accepted_per_pos + [0.0] * (n - len(self.accepted_per_pos))
        b = other.accepted_per_pos + [0.0] * (n - len(other.accepted_per_pos))
        self.accepted_per_pos = [x + y for x, y in zip(a, b, strict=True)]
        if self.num_spec_tokens is None:
            self.num_spec_tokens = other.num_spec_tokens

    @property
    def draft_acceptance_rate(self) -> float | None:
        """accepted / draft_tokens (None without drafted tokens)."""
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else None

    @property
    def mean_acceptance_length(self) -> float | None:
        """1 + accepted / drafts (None without drafts)."""
        return 1.0 + self.accepted_tokens / self.drafts if self.drafts else None

    @property
    def acceptance_by_position(self) -> list[float]:
        """vLLM's unconditional per-position acceptance rates."""
        if not self.drafts:
            return []
        return [a / self.drafts for a in self.accepted_per_pos]

    def hazards(self) -> list[float]:
        """Conditional acceptance per position (what ``model = "positional"`` takes); a
        position nobody reached carries the last hazard."""
        out: list[float] = []
        prev = 1.0
        for u in self.acceptance_by_position:
            h = u / prev if prev > 0 else (out[-1] if out else 0.0)
            out.append(min(1.0, max(0.0, h)))
            prev = u
        return out

    def figures(self) -> dict[str, Any]:
        """The acceptance figures of ``import --json``."""
        return {
            "drafts": self.drafts,
            "draft_tokens": self.draft_tokens,
            "accepted_tokens": self.accepted_tokens,
            "draft_acceptance_rate": self.draft_acceptance_rate,
            "mean_acceptance_length": self.mean_acceptance_length,
            "acceptance_by_position": self.acceptance_by_position,
        }


@dataclass
class ImportResult:
    """An importer's output. ``missing`` maps what the input lacked to how it was handled."""

    format: str
    profile: AcceptanceProfile
    trace: Trace | None = None
    intervals: list[dict[str, Any]] = field(default_factory=list)  # logged intervals (logs)
    missing: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # other engine figures (gauges, ...)

    def summary(self) -> dict[str, Any]:
        """The ``specsim import --json`` object."""
        t = self.trace
        out: dict[str, Any] = {
            "format": self.format,
            "requests": len(t.requests) if t is not None else 0,
            "cycles": len(t.cycles) if t is not None else 0,
            **self.profile.figures(),
            "missing": dict(self.missing),
        }
        if self.profile.num_spec_tokens is not None:
            out["num_spec_tokens"] = self.profile.num_spec_tokens
        if self.intervals:
            out["intervals"] = self.intervals
        out.update(self.extra)
        return out
