"""What-ifs on other hardware: every point says its basis (and a catalog band); drafts by
architecture are priced by the cost model; validate's other-hardware pairs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from sim import Scenario, scenario_from_trace, simulate
from sim.models.catalog import CATALOG_BAND, get_device
from sim.models.costmodel import SMOLLM2_135M, pass_s
from sim.sweep.whatif import sweep
from tracing import write_trace
from tracing.trace import Trace

H100 = "NVIDIA H100 80GB HBM3"


def _capture(device: str, step: float, policy: dict[str, Any], draft: str = "layerskip:layers=8",
             seed: int = 0) -> Trace:
    """A simulated run dressed as a live capture of smollm2 on ``device``."""
    s = Scenario.from_dict({
        "workload": {"requests": 12, "prompt_tokens": {"dist": "uniform", "low": 30, "high": 60},
                     "output_tokens": 48, "seed": 5},
        "acceptance": {"alpha": 0.5},
        "latency": {"target_step_s": step, "draft_step_s": step * 0.4,
                    "prefill_s_per_token": step / 10, "verify_slope_s": step * 0.05},
        "policy": policy})
    trace = simulate(s, seed=seed).trace
    meta = dataclasses.replace(trace.meta, source="live", device=device, target_model="smollm2",
                               draft_model=draft, dtype="float32" if device == "cpu" else "bf16",
                               extra={"workload": "chat", "target_n_params": 134515008,
                                      "draft_n_params": 56632896})
    return Trace(meta, trace.requests, trace.cycles, f"{device}.jsonl")


def test_every_hardware_point_carries_its_basis_and_a_catalog_band(tmp_path: Path) -> None:
    trace = _capture("cpu", 0.057, {"name": "fixed", "tau": 3})
    gpu_only = _capture(H100, 0.021, {"name": "target_only"})
    profile = tmp_path / "h100.jsonl"
    write_trace(gpu_only, str(profile))
    base = scenario_from_trace(trace)
    result = sweep(base, {"latency.hardware": ["CPU", "H100", "L40S"]}, trace=trace, jobs=1)
    basis = {p["vary"]["latency.hardware"]: (p["basis"], p["band"]) for p in result.points}
    assert basis == {"CPU": ("trace", None), "H100": ("catalog", CATALOG_BAND),
                     "L40S": ("catalog", CATALOG_BAND)}
    with_profile = sweep(base.with_overrides({"latency.profile": str(profile)}),
                         {"latency.hardware": ["H100", "L40S"]}, trace=trace, jobs=1)
    basis = {p["vary"]["latency.hardware"]: (p["basis"], p["band"]) for p in with_profile.points}
    assert basis == {"H100": ("profile", None), "L40S": ("catalog", CATALOG_BAND)}
    # the profile's measured 1-token pass is what a target-only step costs there
    h100 = next(p for p in with_profile.points if p["vary"]["latency.hardware"] == "H100")
    assert h100["baseline_basis"] == "profile"


def test_a_draft_by_architecture_is_priced_by_the_cost_model() -> None:
    trace = _capture("cpu", 0.057, {"name": "fixed", "tau": 3})
    base = scenario_from_trace(trace)
    p50 = {}
    for layers in (2, 24):
        s = base.with_overrides({"draft.layers": layers, "draft.params": 56632896,
                                 "latency.hardware": "H100"})
        r = simulate(s, trace)
        p50[layers] = r.figures["latency_s"]["p50"]
        shape = SMOLLM2_135M.with_geometry(layers=layers, params=56632896)
        step = pass_s(get_device("H100"), shape, "bf16", 1)
        drafted = r.trace.cycles[r.trace.cycles["tau"] > 0]
        assert (drafted["draft_s"] / drafted["tau"]).to_numpy() == pytest.approx(step)
    # same size, same acceptance: the deep, narrow draft is slower (launch-bound)
    assert p50[24] > 1.3 * p50[2]
    # on the trace's own device: anchored to its measured 1-token pass
    own = simulate(base.with_overrides({"draft.layers": 8, "draft.params": 56632896}), trace)
    assert own.figures["basis"] == "trace"
    drafted = own.trace.cycles[own.trace.cycles["tau"] > 0]
    step = float((drafted["draft_s"] / drafted["tau"]).iloc[0])
    assert 0.2 * 0.057 < step < 0.6 * 0.057  # ~0.4 of the target: head + 8 of 30 layers


def test_validate_predicts_across_devices_with_catalog_and_profile(tmp_path: Path) -> None:
    from analysis.validate import validate

    paths = {}
    for name, trace in (("cpu", _capture("cpu", 0.057, {"name": "fixed", "tau": 3})),
                        ("gpu", _capture(H100, 0.030, {"name": "fixed", "tau": 3})),
                        ("gpu_none", _capture(H100, 0.021, {"name": "target_only"},
                                              draft="none"))):
        paths[name] = str(tmp_path / f"{name}.jsonl")
        write_trace(trace, paths[name])
    result = validate([paths["cpu"], paths["gpu"]], profile=paths["gpu_none"])
    cross = [p for p in result["pairs"] if p["kind"].startswith("other hardware")]
    kinds = sorted((Path(p["a"]).stem, Path(p["b"]).stem, p["basis"]) for p in cross)
    assert kinds == [("cpu", "gpu", "catalog"), ("cpu", "gpu", "profile"),
                     ("gpu", "cpu", "catalog")]
    for p in cross:
        assert p["measured"]["ms_per_token"] > 0 and p["predicted"]["ms_per_token"] > 0
        assert p["ratio_ms_per_token"] == pytest.approx(
            p["predicted"]["ms_per_token"] / p["measured"]["ms_per_token"])
        assert (p["band"] is not None) == (p["basis"] == "catalog")
    summary = result["summary"]
    assert summary["other hardware (catalog)"]["pairs"] == 2
    assert "meets_goal" in summary["other hardware (profile)"]
