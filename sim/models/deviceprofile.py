"""Device profiles: measured forward-pass costs of one model on one device, and their fit.

A profile is what ``specsim profile`` writes (:mod:`live.profile`): the device's exact name, the
dtype, the model (name, size, shape), the software stack, and the median seconds of target
passes over a grid of batch sizes, tokens scored per sequence and context lengths (and of draft
steps, with ``--draft``). Its fit splits each role's cost into fixed and variable parts by least
squares (non-negative)::

    seconds ~ fixed_1 * [one token per sequence] + fixed_multi * [more than one]
              + per_token_s * tokens scored + per_context_token_s * tokens cached

Two more sources read as profiles at batch 1 (:func:`from_verify_profile`,
:func:`from_target_only`): a capture's ``extra.verify_profile_s`` (the pass for 1..N tokens at
one context) and a target-only trace of the device (its 1-token passes, every one a measurement).
Where a profile is silent -- a batch it did not measure, a draft it did not run -- the cost
model (:mod:`sim.models.costmodel`) fills in, anchored to the profile's measured 1-token pass.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tracing.errors import SpecsimError

PROFILE_FORMAT = "specsim-profile/1"
ROLES = ("target", "draft")


@dataclass(frozen=True)
class Fit:
    """Fixed and variable parts of one role's pass cost (seconds)."""

    fixed_1_s: float
    fixed_multi_s: float
    per_token_s: float
    per_context_token_s: float

    def seconds(self, tokens: int, batch: int = 1, context: int = 0) -> float:
        """A pass scoring ``tokens`` in all over ``batch`` sequences, ``context`` cached."""
        fixed = self.fixed_multi_s if tokens > batch else self.fixed_1_s
        return fixed + self.per_token_s * tokens + self.per_context_token_s * context

    def to_dict(self) -> dict[str, float]:
        """Rounded fields."""
        return {k: round(v, 9) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class DeviceProfile:
    """A measured profile (see the module docstring). ``points``: dicts with ``role``, ``batch``,
    ``tokens`` (per sequence), ``context`` (per sequence) and ``seconds`` (median)."""

    device: str
    dtype: str
    target: str
    points: tuple[dict[str, Any], ...]
    target_params: float = 0.0
    target_config: dict[str, Any] = field(default_factory=dict)
    draft: str = ""
    software: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where it came from: a profile file, a trace's verify profile, ...
    # the measuring process's dispatch speed, microseconds per eager op (live.hostprobe); 0:
    # not recorded (profiles written before specsim measured it)
    host_probe_us: float = 0.0

    def role_points(self, role: str) -> list[dict[str, Any]]:
        """The points of ``role`` ("target" or "draft")."""
        return [p for p in self.points if p["role"] == role]

    def fit(self, role: str = "target") -> Fit | None:
        """Least-squares split of ``role``'s costs (None without points)."""
        pts = self.role_points(role)
        if not pts:
            return None
        batch = np.array([p["batch"] for p in pts], dtype=float)
        tokens = np.array([p["tokens"] for p in pts], dtype=float) * batch
        context = np.array([p["context"] for p in pts], dtype=float) * batch
        y = np.array([p["seconds"] for p in pts], dtype=float)
        multi = tokens > batch
        cols = [(~multi).astype(float), multi.astype(float), tokens, context]
        usable = [j for j, c in enumerate(cols) if np.ptp(c) > 0 or (j < 2 and c.any())]
        coef = _nonneg_lstsq([cols[j] for j in usable], y)
        out = [0.0, 0.0, 0.0, 0.0]
        for j, c in zip(usable, coef, strict=True):
            out[j] = c
        if not multi.any():
            out[1] = out[0]  # never measured: a multi-token pass costs at least a 1-token one
        if multi.all():
            out[0] = out[1]
        return Fit(*out)

    def one_token_s(self, role: str = "target") -> float | None:
        """Median measured seconds of a batch-1, 1-token pass (the shortest context's), or
        None when none was measured."""
        pts = [p for p in self.role_points(role) if p["batch"] == 1 and p["tokens"] == 1]
        if not pts:
            return None
        shortest = min(p["context"] for p in pts)
        return float(np.median([p["seconds"] for p in pts if p["context"] == shortest]))

    def batch1_table(self, max_tokens: int = 17) -> list[float]:
        """Seconds of a batch-1 target pass scoring 1..max_tokens tokens at the profile's
        shortest measured context (0 where not measured)."""
        pts = [p for p in self.role_points("target") if p["batch"] == 1]
        if not pts:
            return []
        shortest = min(p["context"] for p in pts)
        table = [0.0] * max_tokens
        for p in pts:
            if p["context"] == shortest and 1 <= p["tokens"] <= max_tokens:
                table[p["tokens"] - 1] = float(p["seconds"])
        while table and table[-1] == 0.0:
            table.pop()
        return table

    def to_dict(self) -> dict[str, Any]:
        """The profile file's JSON object (fits included)."""
        fits = {r: f.to_dict() for r in ROLES if (f := self.fit(r)) is not None}
        out = {"format": PROFILE_FORMAT, "device": self.device, "dtype": self.dtype,
               "target": self.target, "target_params": self.target_params,
               "target_config": self.target_config, "draft": self.draft,
               "software": self.software, "points": list(self.points), "fit": fits}
        if self.host_probe_us > 0:
            out["host_probe"] = {"us_per_op": self.host_probe_us}
        return out


def _nonneg_lstsq(cols: list[np.ndarray], y: np.ndarray) -> list[float]:
    """Least squares with every coefficient >= 0 (columns coming out negative are dropped)."""
    keep = list(range(len(cols)))
    while keep:
        x = np.column_stack([cols[j] for j in keep])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        bad = [j for j, c in zip(keep, coef, strict=True) if c < 0]
        if not bad:
            out = [0.0] * len(cols)
            for j, c in zip(keep, coef, strict=True):
                out[j] = float(c)
            return out
        keep.remove(bad[-1])
    return [0.0] * len(cols)


def from_dict(data: Any, where: str) -> DeviceProfile:
    """Validate a profile file's object; every problem names ``where`` and the field."""
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise SpecsimError(f'{where}: not a specsim profile (expected "format": '
                           f'"{PROFILE_FORMAT}")')
    for key in ("device", "dtype", "target"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise SpecsimError(f"{where}: {key} must be a non-empty string")
    raw = data.get("points")
    if not isinstance(raw, list) or not raw:
        raise SpecsimError(f"{where}: points must be a non-empty list")
    points = []
    for i, p in enumerate(raw):
        points.append(_check_point(p, f"{where}: points[{i}]"))
    return DeviceProfile(
        device=data["device"], dtype=data["dtype"], target=data["target"],
        points=tuple(points), target_params=float(data.get("target_params") or 0.0),
        target_config=dict(data.get("target_config") or {}), draft=str(data.get("draft") or ""),
        software=dict(data.get("software") or {}), source=where,
        host_probe_us=host_probe_of(data.get("host_probe"), f"{where}: host_probe"))


def host_probe_of(entry: Any, where: str) -> float:
    """A ``host_probe`` object's ``us_per_op`` (a profile's, or a trace's ``extra.host_probe``;
    :mod:`live.hostprobe`); 0.0 when there is none."""
    if entry is None:
        return 0.0
    us = entry.get("us_per_op") if isinstance(entry, dict) else None
    if isinstance(us, bool) or not isinstance(us, int | float) or not math.isfinite(us) \
            or us <= 0:
        raise SpecsimError(f"{where}.us_per_op: must be a positive number (microseconds per "
                           "eager op)")
    return float(us)


def _check_point(p: Any, where: str) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise SpecsimError(f"{where}: must be an object")
    if p.get("role") not in ROLES:
        raise SpecsimError(f"{where}.role: must be one of {', '.join(ROLES)}")
    out: dict[str, Any] = {"role": p["role"]}
    for key, lo in (("batch", 1), ("tokens", 1), ("context", 0)):
        v = p.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise SpecsimError(f"{where}.{key}: must be an integer >= {lo}")
        out[key] = v
    s = p.get("seconds")
    if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or s <= 0:
        raise SpecsimError(f"{where}.seconds: must be a positive number")
    out["seconds"] = float(s)
    return out


def read_profile_file(path: str | Path) -> DeviceProfile:
    """Read a ``specsim profile`` JSON file."""
    where = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SpecsimError(f"{where}: profile file not found") from None
    except (OSError, ValueError) as exc:
        raise SpecsimError(f"{where}: not a readable JSON profile: {exc}") from None
    return from_dict(data, where)


def from_verify_profile(entry: Any, *, device: str, dtype: str, target: str,
                        target_params: float, where: str) -> DeviceProfile:
    """A capture's ``extra.verify_profile_s`` (``seconds[n - 1]``: an n-token pass after
    ``context_tokens``) as a batch-1 profile of the capture's device."""
    seconds = entry.get("seconds") if isinstance(entry, dict) else None
    context = entry.get("context_tokens", 0) if isinstance(entry, dict) else 0
    if not isinstance(seconds, list) or not seconds:
        raise SpecsimError(f"{where}: verify_profile_s.seconds must be a non-empty list")
    points = []
    for n, s in enumerate(seconds, start=1):
        point = {"role": "target", "batch": 1, "tokens": n, "context": int(context or 0),
                 "seconds": s}
        points.append(_check_point(point, f"{where}: verify_profile_s.seconds[{n - 1}]"))
    return DeviceProfile(device=device, dtype=dtype, target=target, points=tuple(points),
                         target_params=target_params, source=f"{where} (verify profile)")


def from_target_only(verify_s: np.ndarray, context: np.ndarray, *, device: str, dtype: str,
                     target: str, target_params: float, where: str) -> DeviceProfile:
    """A target-only run's 1-token passes (``verify_s`` at ``context``) as a batch-1 profile:
    one point, the median pass at the median context (a run's passes are too noisy, context by
    context, to fit a context slope from; the cost model's KV term supplies that)."""
    ok = verify_s > 0
    if not ok.any():
        raise SpecsimError(f"{where}: a target-only trace with no timed cycles is no profile")
    points = [{"role": "target", "batch": 1, "tokens": 1,
               "context": int(np.median(context[ok])), "seconds": float(np.median(verify_s[ok]))}]
    return DeviceProfile(device=device, dtype=dtype, target=target, points=tuple(points),
                         target_params=target_params, source=f"{where} (target-only trace)")
