"""Weights + KV must fit the device(s); KV capacity bounds the batch; a what-if that does not
fit is marked and never best."""

from __future__ import annotations

import pytest

from sim import Scenario, simulate
from sim.models.catalog import get_device
from sim.models.costmodel import PassModel, table_shape
from sim.models.memory import USABLE, check
from sim.sweep.whatif import sweep


def _scenario(model: str, hardware: str, tp: int = 1, **workload: object) -> Scenario:
    return Scenario.from_dict({
        "workload": {"requests": 40, "prompt_tokens": 1024, "output_tokens": 128,
                     "arrival": "poisson", "rate_per_s": 2.0, **workload},
        "acceptance": {"alpha": 0.7}, "latency": {"hardware": hardware},
        "target": {"model": model, "tp": tp}, "server": {"max_batch": 64}})


def test_a_70b_fp16_target_does_not_fit_one_80gb_gpu() -> None:
    f = simulate(_scenario("llama-3.1-70b", "A100"), seed=0)
    m = f.figures["memory"]
    assert f.figures["fits"] is False and m["fits"] is False
    assert m["weights_gb"] == pytest.approx(70.553706496 * 2, abs=1e-3)
    assert m["usable_gb"] == pytest.approx(80 * USABLE)
    assert any("does not fit" in w for w in f.warnings)
    four = simulate(_scenario("llama-3.1-70b", "A100", tp=4), seed=0).figures
    assert four["fits"] is True and four["memory"]["gpus"] == 4


def test_kv_capacity_bounds_the_batch() -> None:
    shape = table_shape("llama-3.1-8b")
    assert shape is not None
    model = PassModel(get_device("L4"), "bf16", shape)
    mem = check(model, mean_tokens=4096, longest_tokens=4096)
    per_seq = shape.kv_bytes_per_token("bf16") * 4096
    assert mem.capacity_seqs == int((24e9 * USABLE - shape.n_params * 2) // per_seq)
    result = simulate(_scenario("llama-3.1-8b", "L4", prompt_tokens=3968), seed=0)
    assert result.figures["max_batch"] == mem.capacity_seqs < 64
    assert any("KV cache bounds the batch" in w for w in result.warnings)


def test_a_point_that_does_not_fit_is_never_feasible() -> None:
    base = _scenario("qwen2.5-72b", "H200")
    result = sweep(base, {"target.tp": [1, 2]})
    one, two = result.points
    assert (one["fits"], two["fits"]) == (False, True)
    assert one["feasible"] is False and one["memory"]["needed_gb"] > one["memory"]["usable_gb"]
    assert result.best is two


def test_a_target_without_a_modelled_device_says_it_prices_nothing() -> None:
    s = Scenario.from_dict({"workload": {"requests": 5}, "target": {"model": "llama-3.1-8b"}})
    result = simulate(s, seed=0)
    assert "memory" not in result.figures
    assert any("only on a modelled device" in w for w in result.warnings)
