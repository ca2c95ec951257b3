"""Tensor parallelism's all-reduces are priced: two a layer of the pass's activations, a ring
all-reduce each over the catalog's link (latency + 2 (tp - 1) / tp x bytes / link), added to
every pass on tp GPUs; tp = 1 unchanged; a CPU device refuses tp > 1."""

from __future__ import annotations

import json

import pytest

from analysis.cli import main
from sim import Scenario, simulate
from sim.models.catalog import DEVICES, Device, get_device
from sim.models.costmodel import (
    DTYPE_BYTES,
    ModelShape,
    PassModel,
    allreduce_s,
    device_s,
    fixed_s,
    pass_s,
    table_shape,
)
from tracing.errors import SpecsimError


def _shape(name: str) -> ModelShape:
    shape = table_shape(name)
    assert shape is not None
    return shape


def _by_hand(device: Device, shape: ModelShape, dtype: str, tokens: int, tp: int) -> float:
    """The all-reduce term from the catalog's fields, written out here apart from the model."""
    nbytes = tokens * shape.hidden * DTYPE_BYTES[dtype]
    one = device.link_latency_s + 2 * (tp - 1) / tp * nbytes / (device.link_gbps * 1e9)
    return 2 * shape.layers * one


def _split_only(device: Device, shape: ModelShape, tokens: int, batch: int, context: int,
                tp: int) -> float:
    """A pass with the device work divided by tp and nothing more (the model before pricing)."""
    work = device_s(device, shape, "bf16", tokens, batch, context) / tp
    return device.framework.combine(fixed_s(device, shape, tokens > batch), work)


def test_every_gpu_has_a_link_and_the_cpu_none() -> None:
    for d in DEVICES:
        if d.kind == "cpu":
            assert d.link_gbps == 0
        else:
            assert d.link and d.link_gbps > 0 and 0 < d.link_latency_s < 1e-4, d.key
    assert get_device("H100").link_gbps > get_device("L40S").link_gbps


def test_tp_1_is_unchanged() -> None:
    shape, h100 = _shape("llama-3.1-8b"), get_device("H100")
    for tokens, batch, context in ((1, 1, 0), (8, 8, 8 * 512), (40, 8, 8 * 2048), (512, 1, 0)):
        assert allreduce_s(h100, shape, "bf16", tokens, 1) == 0.0
        assert pass_s(h100, shape, "bf16", tokens, batch, context) \
            == _split_only(h100, shape, tokens, batch, context, 1)
    model = PassModel(h100, "bf16", shape)
    assert "allreduce_1_token_s" not in model.describe()


@pytest.mark.parametrize("tp", [2, 4, 8])
@pytest.mark.parametrize("stack", ["eager", "cuda-graph"])
def test_tp_costs_more_than_a_split_by_exactly_the_all_reduces(tp: int, stack: str) -> None:
    shape, h100 = _shape("llama-3.1-70b"), get_device("H100").on_stack(stack)
    for tokens, batch, context in ((1, 1, 2048), (32, 32, 32 * 2048), (160, 32, 32 * 2048)):
        priced = pass_s(h100, shape, "bf16", tokens, batch, context, tp=tp)
        split = _split_only(h100, shape, tokens, batch, context, tp)
        term = _by_hand(h100, shape, "bf16", tokens, tp)
        assert term > 0
        assert priced - split == pytest.approx(term, rel=1e-9)
    model = PassModel(h100, "bf16", shape, tp=tp)
    assert model.describe()["allreduce_1_token_s"] == pytest.approx(
        _by_hand(h100, shape, "bf16", 1, tp), rel=1e-12)


def test_a_pcie_device_pays_more_than_nvlink_for_the_same_tp() -> None:
    shape = _shape("llama-3.1-70b")
    nvlink, pcie = get_device("H100"), get_device("L40S")
    for tp in (2, 4, 8):
        for tokens in (1, 32, 512):
            assert allreduce_s(pcie, shape, "bf16", tokens, tp) \
                > allreduce_s(nvlink, shape, "bf16", tokens, tp)
    # the same H100 chip on PCIe cards against SXM boards: the all-reduces differ by the link
    assert allreduce_s(get_device("H100-PCIE-80GB"), shape, "bf16", 160, 8) \
        > 3 * allreduce_s(nvlink, shape, "bf16", 160, 8)


def test_a_70b_decode_gains_less_than_the_split_from_tp_4_to_8() -> None:
    # on a CUDA-graph stack (host time small) the split alone made tp 8 ~1.9x faster than tp 4;
    # 160 all-reduces a pass take that down
    shape, h100 = _shape("llama-3.1-70b"), get_device("H100").on_stack("cuda-graph")
    for batch in (1, 32):
        four, eight = (pass_s(h100, shape, "bf16", batch, batch, batch * 2048, tp=tp)
                       for tp in (4, 8))
        assert four / eight < 1.8
        assert eight > 160 * h100.link_latency_s


def test_draft_steps_and_prefills_on_tp_pay_their_all_reduces() -> None:
    target, draft, h100 = _shape("llama-3.1-70b"), _shape("llama-3.2-1b"), get_device("H100")
    one = PassModel(h100, "bf16", target, draft, draft_separate=True)
    four = PassModel(h100, "bf16", target, draft, tp=4, draft_separate=True)
    step = four.draft_step_s(8, 8 * 1024)
    assert step - _split_only(h100, draft, 8, 8, 8 * 1024, 4) == pytest.approx(
        _by_hand(h100, draft, "bf16", 8, 4), rel=1e-9)
    assert one.draft_step_s(8, 8 * 1024) == _split_only(h100, draft, 8, 8, 8 * 1024, 1)
    split = sum(h100.framework.combine(fixed_s(h100, s, True),
                                       device_s(h100, s, "bf16", 512, 1, 0, logits=1) / 4)
                for s in (target, draft))
    terms = _by_hand(h100, target, "bf16", 512, 4) + _by_hand(h100, draft, "bf16", 512, 4)
    assert four.prefill_s(512, with_draft=True) - split == pytest.approx(terms, rel=1e-9)
    assert four.verify_s(5, 1, 2048) - _split_only(h100, target, 5, 1, 2048, 4) \
        == pytest.approx(_by_hand(h100, target, "bf16", 5, 4), rel=1e-9)


def test_costs_names_the_all_reduce_seconds(capsys: pytest.CaptureFixture) -> None:
    grid = ["--batch", "1,32", "--tokens", "1,5", "--context", "2048"]
    assert main(["costs", "--hardware", "H100", "--target", "llama-3.1-70b", "--tp", "4",
                 *grid, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    h100, shape = get_device("H100"), _shape("llama-3.1-70b")
    assert out["allreduce"]["one_token_s"] == pytest.approx(_by_hand(h100, shape, "bf16", 1, 4))
    assert out["allreduce"]["link"] == h100.link and out["allreduce"]["per_pass"] == 160
    assert main(["costs", "--hardware", "H100", "--target", "llama-3.1-70b", *grid,
                 "--json"]) == 0
    assert "allreduce" not in json.loads(capsys.readouterr().out)
    assert main(["costs", "--hardware", "H100", "--target", "llama-3.1-70b", "--tp", "4",
                 *grid]) == 0
    assert "1-token pass spends" in capsys.readouterr().out


def test_cpu_with_tp_above_1_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert main(["costs", "--hardware", "CPU", "--target", "smollm2", "--tp", "2",
                 "--batch", "1", "--tokens", "1", "--context", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--tp 2" in err and "CPU" in err
    assert "Traceback" not in err
    scenario = Scenario.from_dict({
        "workload": {"requests": 4, "prompt_tokens": 64, "output_tokens": 16},
        "acceptance": {"alpha": 0.7}, "latency": {"hardware": "CPU"},
        "target": {"model": "smollm2", "tp": 2}})
    with pytest.raises(SpecsimError, match=r"\[target\] tp = 2: CPU"):
        simulate(scenario, seed=0)


def test_a_simulation_on_tp_reports_its_all_reduces() -> None:
    scenario = Scenario.from_dict({
        "workload": {"requests": 8, "prompt_tokens": 256, "output_tokens": 32,
                     "arrival": "poisson", "rate_per_s": 1.0},
        "acceptance": {"alpha": 0.7}, "latency": {"hardware": "H100"},
        "target": {"model": "llama-3.1-70b", "tp": 4}})
    figures = simulate(scenario, seed=0).figures
    assert figures["tp"] == 4 and figures["allreduce_1_token_s"] == pytest.approx(
        _by_hand(get_device("H100"), _shape("llama-3.1-70b"), "bf16", 1, 4))
