"""The cost model's answer over a grid of passes, set against a measured profile, and the fit of
a stack's host constants on one profile.

* :func:`grid_points`: seconds of a target pass for every batch x tokens (per sequence) x
  context (per sequence), as ``specsim profile`` writes its points;
* :func:`against`: each point beside the profile's measured seconds, and a summary (median
  ratio, share within 1.5x, worst) -- the check the README's table reports;
* :func:`fit_host`: least squares (on log ratios) of a stack's ``per_pass_s``, ``per_layer_s``
  and ``multi_token`` on a profile's target points, the device-side terms held at the
  datasheet's -- how the H200's eager stack in :mod:`sim.models.catalog` was set
  (``tests/bench/fit_eager.py``);
* :func:`anchor`: the stack's host constants scaled so that the model's batch-1 1-token pass is
  one measured pass (a profile's, at its shortest context): one point used, the rest checked;
* :func:`probe_scale`: the host constants fitted on one profile scaled by the other profile's
  host probe over the first's (:func:`host_probes`, :mod:`live.hostprobe`): no pass of the
  checked profile used.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sim.models.catalog import Device
from sim.models.costmodel import ModelShape, pass_s
from sim.models.deviceprofile import DeviceProfile
from tracing.errors import SpecsimError

WITHIN = 1.5  # the goal: every point within this factor


def seconds(device: Device, shape: ModelShape, dtype: str, batch: int, tokens: int,
            context: int, tp: int = 1) -> float:
    """One pass of ``batch`` sequences scoring ``tokens`` each after ``context`` each."""
    return pass_s(device, shape, dtype, tokens * batch, batch, context * batch, tp=tp)


def grid_points(device: Device, shape: ModelShape, dtype: str, batches: list[int],
                tokens: list[int], contexts: list[int], tp: int = 1) -> list[dict[str, Any]]:
    """``[{batch, tokens, context, seconds}]`` over the grid."""
    return [{"batch": b, "tokens": n, "context": c,
             "seconds": seconds(device, shape, dtype, b, n, c, tp)}
            for b in batches for n in tokens for c in contexts]


def against(device: Device, shape: ModelShape, dtype: str, profile: DeviceProfile,
            tp: int = 1) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every target point of ``profile`` with the model's seconds, ``measured_s`` and
    ``ratio`` (model / measured), and the summary."""
    points = []
    for p in profile.role_points("target"):
        s = seconds(device, shape, dtype, p["batch"], p["tokens"], p["context"], tp)
        points.append({"batch": p["batch"], "tokens": p["tokens"], "context": p["context"],
                       "seconds": s, "measured_s": p["seconds"], "ratio": s / p["seconds"]})
    if not points:
        raise SpecsimError(f"{profile.source}: the profile has no target points")
    return points, summary([p["ratio"] for p in points])


def summary(ratios: list[float]) -> dict[str, Any]:
    """Median ratio, share of points within :data:`WITHIN` either way, the worst point."""
    ordered = sorted(ratios)
    n = len(ordered)
    mid = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2.0
    worst = max(ordered, key=lambda r: max(r, 1.0 / r))
    within = sum(1 for r in ordered if 1.0 / WITHIN <= r <= WITHIN)
    return {"points": n, "median_ratio": mid, "within_1_5x": within,
            "share_within_1_5x": within / n, "worst_ratio": worst,
            "goal_met": bool(within == n and 1.0 / 1.15 <= mid <= 1.15)}


def _with_host(device: Device, per_pass: float, per_layer: float, multi: float,
               source: str) -> Device:
    stack = dataclasses.replace(device.framework, per_pass_s=per_pass, per_layer_s=per_layer,
                                multi_token=multi, source=source)
    return dataclasses.replace(device, framework=stack)


def fit_host(device: Device, shape: ModelShape, dtype: str, profile: DeviceProfile
             ) -> Device:
    """``device`` with its stack's host constants fitted on ``profile``'s target points."""
    import numpy as np
    from scipy.optimize import least_squares

    pts = profile.role_points("target")
    if len(pts) < 3:
        raise SpecsimError(f"{profile.source}: fitting takes at least 3 target points")
    measured = np.array([p["seconds"] for p in pts])

    def residuals(x: Any) -> Any:
        dev = _with_host(device, x[0] * 1e-3, x[1] * 1e-3, x[2], "fit")
        model = [seconds(dev, shape, dtype, p["batch"], p["tokens"], p["context"]) for p in pts]
        return np.log(np.array(model) / measured)

    fw = device.framework
    start = [max(fw.per_pass_s * 1e3, 1e-3), fw.per_layer_s * 1e3, fw.multi_token]
    res = least_squares(residuals, start, bounds=([0.0, 0.0, 0.0], [100.0, 20.0, 3.0]))
    x = res.x
    return _with_host(device, float(x[0]) * 1e-3, float(x[1]) * 1e-3, float(x[2]),
                      f"fitted on {profile.source}")


def anchor(device: Device, shape: ModelShape, dtype: str, profile: DeviceProfile,
           tp: int = 1) -> tuple[Device, dict[str, Any]]:
    """``device`` with its host constants scaled so that the model's batch-1 1-token pass at
    the profile's shortest measured context is the measured one; and that point."""
    ones = [p for p in profile.role_points("target") if p["batch"] == 1 and p["tokens"] == 1]
    if not ones:
        raise SpecsimError(f"{profile.source}: --anchor needs a batch-1 1-token target point")
    point = min(ones, key=lambda p: p["context"])
    fw = device.framework
    target = point["seconds"]
    work = seconds(dataclasses.replace(device, framework=dataclasses.replace(
        fw, per_pass_s=0.0, per_layer_s=0.0)), shape, dtype, 1, 1, point["context"], tp)
    host = fw.seconds(shape.layers, False)
    # the host part h with combine(h, work) = target
    p = fw.overlap
    if target <= work or host <= 0:
        raise SpecsimError(f"{profile.source}: the measured 1-token pass ({target * 1e3:.2f} ms)"
                           " is below the device's own time: nothing to anchor")
    wanted = target - work if p == 1.0 else (target ** p - work ** p) ** (1.0 / p)
    k = wanted / host
    anchored = _with_host(device, fw.per_pass_s * k, fw.per_layer_s * k, fw.multi_token,
                          f"{fw.source}, host x {k:.3f} (anchored)")
    return anchored, {"batch": 1, "tokens": 1, "context": point["context"],
                      "measured_s": target, "host_scale": k}


def finite(x: float) -> float | None:
    """``x`` for JSON (None when not finite)."""
    return x if math.isfinite(x) else None


def host_probes(fitted_on: DeviceProfile, checked: DeviceProfile) -> dict[str, Any] | None:
    """The two profiles' host probes and ``host_scale``, ``checked``'s over ``fitted_on``'s
    (None when either has none)."""
    if fitted_on.host_probe_us <= 0 or checked.host_probe_us <= 0:
        return None
    return {"fit_on_us": fitted_on.host_probe_us, "against_us": checked.host_probe_us,
            "host_scale": checked.host_probe_us / fitted_on.host_probe_us}


def probe_scale(device: Device, fitted_on: DeviceProfile, checked: DeviceProfile
                ) -> tuple[Device, dict[str, Any]]:
    """``device`` (its host constants fitted on ``fitted_on``) with them scaled by
    ``checked``'s host probe over ``fitted_on``'s: the host that measured ``checked`` dispatched
    that much slower (or faster). Both profiles must carry a probe."""
    probes = host_probes(fitted_on, checked)
    if probes is None:
        missing = fitted_on if fitted_on.host_probe_us <= 0 else checked
        raise SpecsimError(f"{missing.source}: no host_probe in this profile (written before "
                           "specsim recorded one); record it again with `specsim profile`")
    k = probes["host_scale"]
    fw = device.framework
    scaled = _with_host(device, fw.per_pass_s * k, fw.per_layer_s * k, fw.multi_token,
                        f"{fw.source}, host x {k:.3f} (host probes)")
    return scaled, probes
