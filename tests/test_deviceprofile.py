"""Device profiles: the file format, its fit, and the two batch-1 sources (a capture's verify
profile, a target-only trace's passes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.models.deviceprofile import (
    PROFILE_FORMAT,
    DeviceProfile,
    from_dict,
    from_target_only,
    from_verify_profile,
    read_profile_file,
)
from tracing.errors import SpecsimError


def _grid(cost: Any) -> list[dict[str, Any]]:
    return [{"role": "target", "batch": b, "tokens": n, "context": c, "seconds": cost(b, n, c)}
            for b in (1, 2, 4) for n in (1, 2, 4, 8) for c in (16, 64)]


def test_the_fit_recovers_fixed_and_variable_parts() -> None:
    def cost(b: int, n: int, c: int) -> float:  # 1-token 10 ms, multi 13 ms, 0.2 ms/token,
        return (0.010 if n == 1 else 0.013) + 2e-4 * b * n + 1e-6 * b * c  # 1 us/cached token

    fit = DeviceProfile("Round GPU", "bf16", "m", tuple(_grid(cost))).fit()
    assert fit is not None
    assert fit.fixed_1_s == pytest.approx(0.010, rel=1e-6)
    assert fit.fixed_multi_s == pytest.approx(0.013, rel=1e-6)
    assert fit.per_token_s == pytest.approx(2e-4, rel=1e-6)
    assert fit.per_context_token_s == pytest.approx(1e-6, rel=1e-5)
    assert fit.seconds(8, batch=2, context=100) == pytest.approx(cost(2, 4, 50), rel=1e-6)


def test_a_profile_file_round_trips_and_bad_ones_name_the_field(tmp_path: Path) -> None:
    prof = DeviceProfile("NVIDIA L40S", "bf16", "m", tuple(_grid(lambda b, n, c: 0.01 + n * 1e-4)),
                         target_params=1e8)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(prof.to_dict()))
    back = read_profile_file(path)
    assert (back.device, back.dtype, back.target, back.points) == (
        prof.device, prof.dtype, prof.target, prof.points)
    assert back.one_token_s() == pytest.approx(0.0101)
    assert back.batch1_table(4) == pytest.approx([0.0101, 0.0102, 0.0, 0.0104])
    for data, field in (({"format": "x"}, "not a specsim profile"),
                        ({**prof.to_dict(), "device": ""}, "device"),
                        ({**prof.to_dict(), "points": []}, "points"),
                        ({**prof.to_dict(), "points": [{"role": "target", "batch": 0,
                                                        "tokens": 1, "context": 0,
                                                        "seconds": 1.0}]}, r"points\[0\].batch"),
                        ({**prof.to_dict(), "points": [{"role": "x"}]}, r"points\[0\].role")):
        with pytest.raises(SpecsimError, match=field):
            from_dict(data, "p.json")
    with pytest.raises(SpecsimError, match="not found"):
        read_profile_file(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SpecsimError, match="not a readable JSON"):
        read_profile_file(tmp_path / "bad.json")


def test_a_capture_verify_profile_is_a_batch_1_profile() -> None:
    entry = {"seconds": [0.05, 0.09, 0.1], "context_tokens": 43, "rounds": 5}
    prof = from_verify_profile(entry, device="cpu", dtype="float32", target="smollm2",
                               target_params=1.3e8, where="t.jsonl")
    assert [p["tokens"] for p in prof.points] == [1, 2, 3]
    assert {p["batch"] for p in prof.points} == {1}
    assert prof.one_token_s() == 0.05 and prof.batch1_table() == [0.05, 0.09, 0.1]
    with pytest.raises(SpecsimError, match=r"seconds\[1\]"):
        from_verify_profile({"seconds": [0.05, -1]}, device="cpu", dtype="f", target="t",
                            target_params=0, where="t.jsonl")


def test_a_target_only_trace_gives_its_median_pass() -> None:
    verify = np.array([0.020, 0.021, 0.5, 0.019, 0.020])
    prof = from_target_only(verify, np.array([40, 41, 42, 43, 44]), device="NVIDIA H100 80GB HBM3",
                            dtype="bfloat16", target="smollm2", target_params=1.3e8, where="t")
    assert prof.one_token_s() == pytest.approx(0.020)
    fit = prof.fit()
    assert fit is not None and fit.seconds(4) >= fit.seconds(1)  # never measured: no cheaper
    with pytest.raises(SpecsimError):
        from_target_only(np.zeros(3), np.arange(3), device="d", dtype="f", target="t",
                         target_params=0, where="t")


def test_format_marker() -> None:
    assert DeviceProfile("d", "f", "t", ({"role": "target", "batch": 1, "tokens": 1,
                                          "context": 0, "seconds": 1.0},)).to_dict()[
        "format"] == PROFILE_FORMAT
