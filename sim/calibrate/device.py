"""The run's device and models, and the ``[latency] profile``, read for the cost model.

From a trace's run metadata: its device (the exact ``torch.cuda.get_device_name()`` string a live
capture writes, or ``cpu``), its dtype, the target's shape (its recorded config, else a known
model by name and size) and the draft's kind (an n-gram lookup is host code; a layer-skip draft
is the target's first layers; another model is known by its parameter count).

``[latency] profile`` names a profile of the target device, read by :func:`load_profile`: a
``specsim profile`` JSON file, a trace that carries one (``extra.device_profile``, or a capture's
``extra.verify_profile_s``: a batch-1 profile), or a target-only trace of the device (its 1-token
passes). Anything else is an error that says what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from sim.calibrate.costs import PROFILE_KEY
from sim.models.costmodel import ModelShape, shape_of
from sim.models.deviceprofile import (
    DeviceProfile,
    from_dict,
    from_target_only,
    from_verify_profile,
    host_probe_of,
    read_profile_file,
)
from sim.models.hardware import DeviceSetup, draft_kind_of
from tracing.errors import SpecsimError
from tracing.trace import Trace

DEVICE_PROFILE_KEY = "device_profile"  # a full `specsim profile` object kept in run metadata


def target_params_of(trace: Trace) -> float:
    """The target's parameter count from the run metadata (0 when not recorded)."""
    extra = trace.meta.extra or {}
    return float(extra.get("target_params") or extra.get("target_n_params")
                 or extra.get("n_params") or 0.0)


def draft_params_of(trace: Trace) -> float:
    """The draft's parameter count from the run metadata (0 when not recorded or model-free)."""
    extra = trace.meta.extra or {}
    return float(extra.get("draft_params") or extra.get("draft_n_params") or 0.0)


def setup_of(trace: Trace | None, profile: DeviceProfile | None = None) -> DeviceSetup:
    """What the cost model needs of ``trace``'s run (an empty setup without a trace)."""
    if trace is None:
        return DeviceSetup(profile=profile)
    meta, extra = trace.meta, trace.meta.extra or {}
    n_target = target_params_of(trace)
    target = shape_of(str(meta.target_model or ""), n_target, extra.get("target_config"))
    n_draft = draft_params_of(trace)
    kind, skip = draft_kind_of(str(meta.draft_model or ""), n_draft)
    draft: ModelShape | None = None
    if kind == "model" and target is not None:
        if skip is not None:
            draft = target.first_layers(min(skip, target.layers))
        elif extra.get("draft_config"):
            draft = ModelShape.from_config(extra["draft_config"], n_draft, str(meta.draft_model))
        elif n_draft:
            draft = target.with_geometry(params=n_draft)
    return DeviceSetup(device=str(meta.device or ""), dtype=str(meta.dtype or ""),
                       target=target, draft_kind=kind, draft=draft, profile=profile)


def load_profile(path: str) -> DeviceProfile:
    """The profile ``[latency] profile`` names (see the module docstring); cached per file."""
    p = Path(path)
    try:
        stamp = p.stat().st_mtime_ns
    except OSError:
        raise SpecsimError(f"[latency] profile = \"{path}\": file not found") from None
    return _load(str(p), stamp)


@functools.lru_cache(maxsize=16)
def _load(path: str, _stamp: int) -> DeviceProfile:
    if path.endswith(".json"):
        return read_profile_file(path)
    from tracing.io import read_trace

    trace = read_trace(path)
    meta, extra = trace.meta, trace.meta.extra or {}
    common = {"device": str(meta.device or ""), "dtype": str(meta.dtype or ""),
              "target": str(meta.target_model or ""), "target_params": target_params_of(trace),
              "where": path}
    if not common["device"]:
        raise SpecsimError(f"{path}: the run names no device, so it profiles none")
    if isinstance(extra.get(DEVICE_PROFILE_KEY), dict):
        return from_dict(extra[DEVICE_PROFILE_KEY], f"{path}: {DEVICE_PROFILE_KEY}")
    cycles = trace.cycles
    if extra.get(PROFILE_KEY):
        prof = from_verify_profile(extra[PROFILE_KEY], **common)  # type: ignore[arg-type]
    elif len(cycles) and int(cycles["tau"].max()) == 0:
        prof = from_target_only(cycles["verify_s"].to_numpy(dtype=float),
                                cycles["context_tokens"].to_numpy(dtype=np.int64),
                                **common)  # type: ignore[arg-type]
    else:
        raise SpecsimError(f"{path}: not a profile -- expected a specsim profile (.json), a "
                           f"capture with {PROFILE_KEY}, or a target-only trace")
    # the capture's own host probe goes with a profile read from it
    probe = host_probe_of(extra.get("host_probe"), f"{path}: extra.host_probe")
    return dataclasses.replace(prof, host_probe_us=probe)
