"""The host probe: recorded beside every profile and capture, read back, and what
``specsim costs --host-probe`` scales a fitted host time by."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_models import save_tiny_model

from analysis.cli import main
from live.hostprobe import host_probe
from sim.models.catalog import Device, get_device
from sim.models.costfit import fit_host, seconds
from sim.models.costmodel import table_shape
from sim.models.deviceprofile import from_dict, read_profile_file
from sim.models.hardware import config_shape
from tracing.errors import SpecsimError

H200 = Path(__file__).resolve().parents[1] / "traces" / "h200"
LLAMA_1B = H200 / "profile_h200_random-llama-1b.json"


def test_probe_reports_microseconds_per_op() -> None:
    out = host_probe("cpu", ops=50, rounds=3)
    assert out["ops"] == 50 and out["rounds"] == 3
    assert 0 < out["us_per_op"] < 10_000  # a dispatched add_, not a millisecond
    with pytest.raises(ValueError, match="ops and rounds"):
        host_probe("cpu", ops=0)


def test_profile_records_the_probe_and_reads_it_back(tmp_path: Path,
                                                     one_torch_thread: None) -> None:
    from live.models import load_model
    from live.profile import profile_device

    target = load_model(str(save_tiny_model(tmp_path / "m", layers=1)), device="cpu")
    out = profile_device(target, batches=[1], tokens=[1, 2], contexts=[4], rounds=1)
    probe = out["host_probe"]
    assert probe["before_us"] > 0 and probe["after_us"] > 0
    assert probe["us_per_op"] == pytest.approx((probe["before_us"] + probe["after_us"]) / 2,
                                               abs=1e-4)
    prof = from_dict(out, "p.json")
    assert prof.host_probe_us == probe["us_per_op"]
    assert from_dict(prof.to_dict(), "again").host_probe_us == prof.host_probe_us
    # a profile without one (every profile before the probe) reads as 0: none recorded
    old = {k: v for k, v in out.items() if k != "host_probe"}
    assert from_dict(old, "old.json").host_probe_us == 0.0
    for bad in ({"us_per_op": -1}, {"us_per_op": "fast"}, 3.0, {}):
        with pytest.raises(SpecsimError, match=r"p\.json: host_probe\.us_per_op"):
            from_dict({**out, "host_probe": bad}, "p.json")


def _with_probe(src: Path, dst: Path, us: float) -> str:
    data = json.loads(src.read_text())
    data["host_probe"] = {"us_per_op": us}
    dst.write_text(json.dumps(data))
    return str(dst)


def test_costs_scales_the_fitted_host_time_by_the_probes(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    # fitted on the 1.2B profile (probe 5 us); the checked profile is the bundled model's
    # shape priced by that fit with its host time 1.3x, recorded on a host probed at 6.5 us:
    # the probes' ratio takes the drift out, every point comes back at 1.0
    fit_on = _with_probe(LLAMA_1B, tmp_path / "fit.json", 5.0)
    prof = read_profile_file(fit_on)
    h200 = get_device("H200")
    fitted = fit_host(h200, config_shape(fit_on, "test"), "bf16", prof)
    fitted = _host_times(fitted, 1.3)
    shape = table_shape("smollm2")
    assert shape is not None
    points = [{"role": "target", "batch": b, "tokens": n, "context": c,
               "seconds": seconds(fitted, shape, "bf16", b, n, c)}
              for b in (1, 4, 16) for n in (1, 3, 9) for c in (128, 1024)]
    checked = tmp_path / "checked.json"
    checked.write_text(json.dumps({
        "format": "specsim-profile/1", "device": "NVIDIA H200", "dtype": "bfloat16",
        "target": "smollm2", "points": points, "host_probe": {"us_per_op": 6.5}}))

    def costs(*extra: str) -> dict:
        assert main(["costs", "--hardware", "H200", "--target", "smollm2", "--against",
                     str(checked), "--fit-on", fit_on, *extra, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    plain = costs()
    assert plain["summary"]["median_ratio"] < 0.95  # the drift, unexplained
    assert plain["host_probe"]["applied"] is False  # but said
    assert plain["host_probe"]["host_scale"] == pytest.approx(1.3)
    scaled = costs("--host-probe")
    assert scaled["host_probe"] == {"fit_on_us": 5.0, "against_us": 6.5,
                                    "host_scale": pytest.approx(1.3), "applied": True}
    assert "host probes" in scaled["basis"]
    assert all(p["ratio"] == pytest.approx(1.0, rel=1e-6) for p in scaled["points"])
    assert main(["costs", "--hardware", "H200", "--target", "smollm2", "--against",
                 str(checked), "--fit-on", fit_on]) == 0  # the text form says it too
    assert "host probes: 5.00 us per op where fitted, 6.50 where checked (x1.300); " \
           "--host-probe applies it" in capsys.readouterr().out


def _host_times(device: Device, k: float) -> Device:
    fw = device.framework
    return dataclasses.replace(device, framework=dataclasses.replace(
        fw, per_pass_s=fw.per_pass_s * k, per_layer_s=fw.per_layer_s * k))


def test_host_probe_needs_both_profiles_and_their_probes(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    base = ["costs", "--hardware", "H200", "--target", "smollm2"]
    smollm2 = str(H200 / "profile_h200_smollm2.json")
    assert main([*base, "--against", smollm2, "--host-probe"]) == 2
    assert "--host-probe: only with --fit-on" in capsys.readouterr().err
    assert main([*base, "--against", smollm2, "--fit-on", str(LLAMA_1B), "--host-probe"]) == 2
    err = capsys.readouterr().err
    assert "no host_probe in this profile" in err and "Traceback" not in err
    probed = _with_probe(LLAMA_1B, tmp_path / "fit.json", 5.0)
    assert main([*base, "--against", smollm2, "--fit-on", probed, "--host-probe",
                 "--anchor"]) == 2
    assert "give one" in capsys.readouterr().err


def test_validate_says_when_the_profile_ran_on_a_slower_host(tmp_path: Path) -> None:
    from test_hardware_whatif import H100, _capture

    from analysis.validate import validate
    from tracing import write_trace
    from tracing.trace import Trace

    def probed(trace: Trace, us: float) -> Trace:
        meta = dataclasses.replace(trace.meta, extra={**trace.meta.extra,
                                                      "host_probe": {"us_per_op": us}})
        return Trace(meta, trace.requests, trace.cycles, trace.path)

    cpu = _capture("cpu", 0.057, {"name": "fixed", "tau": 3})
    gpu = _capture(H100, 0.030, {"name": "fixed", "tau": 3})
    for profile_us, warned in ((6.5, True), (5.2, False)):
        paths = {}
        for name, trace in (("cpu", cpu), ("gpu", probed(gpu, 5.0)),
                            ("gpu_none", probed(_capture(H100, 0.021, {"name": "target_only"},
                                                         draft="none"), profile_us))):
            paths[name] = str(tmp_path / f"{name}.jsonl")
            write_trace(trace, paths[name])
        result = validate([paths["cpu"], paths["gpu"]], profile=paths["gpu_none"])
        pair = next(p for p in result["pairs"] if p["kind"] == "other hardware (profile)")
        assert pair["host_probe"]["ratio"] == pytest.approx(profile_us / 5.0)
        notes = [w for w in result["warnings"] if "host dispatched" in w]
        assert bool(notes) == warned
        if warned:
            assert "1.30x as slow" in notes[0] and "gpu.jsonl" in notes[0]
    # a malformed probe in the measured capture is named, not a traceback
    bad = probed(gpu, -1.0)
    write_trace(bad, paths["gpu"])
    with pytest.raises(SpecsimError, match=r"gpu\.jsonl: extra\.host_probe\.us_per_op"):
        validate([paths["cpu"], paths["gpu"]], profile=paths["gpu_none"])
