"""The per-pass cost model: fixed + max(weights, flops) + KV, by dtype and shape."""

from __future__ import annotations

import pytest

from sim.models.catalog import CATALOG, Device, FrameworkCost
from sim.models.costmodel import (
    DTYPE_BYTES,
    SMOLLM2_135M,
    ModelShape,
    PassModel,
    normalize_dtype,
    pass_s,
    ridge_tokens,
    shape_of,
)
from tracing.errors import SpecsimError

# A device with round numbers: 1e12 B/s, 1e15 flop/s at bf16, fixed 1 ms + 0.1 ms per layer, on
# a plain stack: host and device time add, the KV cache is read once.
PLAIN = FrameworkCost(per_pass_s=1e-3, per_layer_s=1e-4, multi_token=0.5, kv_reads_1=1.0,
                      kv_reads_multi=1.0, kv_reads_per_group=0.0, score_bytes=0.0, overlap=1.0)
ROUND = Device("ROUND", ("Round GPU",), "cuda", mem_bw_gbps=1000.0,
               tflops={"fp32": 250.0, "bf16": 1000.0, "int8": 2000.0}, memory_gb=80,
               bw_eff=1.0, flops_eff=1.0, framework=PLAIN)
SHAPE = ModelShape(1e9, 10, 1000, 8, 2, 125, 1000, name="m")  # head 1e6 params


def test_a_decode_pass_is_fixed_plus_weight_bytes_over_bandwidth() -> None:
    # 1e9 params * 2 bytes / 1e12 B/s = 2 ms; fixed 1 + 10 * 0.1 = 2 ms
    assert pass_s(ROUND, SHAPE, "bf16", 1) == pytest.approx(4e-3)
    # fp32 reads twice the bytes, int8 half, int4 a quarter
    assert pass_s(ROUND, SHAPE, "fp32", 1) == pytest.approx(6e-3)
    assert pass_s(ROUND, SHAPE, "int8", 1) == pytest.approx(3e-3)
    assert pass_s(ROUND, SHAPE, "int4", 1) == pytest.approx(2.5e-3)


def test_multi_token_passes_pay_the_surcharge_and_turn_compute_bound_past_the_ridge() -> None:
    ridge = ridge_tokens(ROUND, SHAPE, "bf16")
    assert ridge == pytest.approx(1000.0)  # 2 bytes * 1e15 / (2 * 1e12)
    fixed_multi = 2e-3 * 1.5
    assert pass_s(ROUND, SHAPE, "bf16", 4) == pytest.approx(fixed_multi + 2e-3)
    # 4000 tokens: 2 * 1e9 * 4000 / 1e15 = 8 ms of arithmetic beat 2 ms of weights
    assert pass_s(ROUND, SHAPE, "bf16", 4000) == pytest.approx(fixed_multi + 8e-3, rel=1e-3)
    # a batch of 8 one-token sequences is no multi-token pass
    assert pass_s(ROUND, SHAPE, "bf16", 8, batch=8) == pytest.approx(4e-3)


def test_kv_bytes_follow_the_config_and_the_dtype() -> None:
    per_token = SHAPE.kv_bytes_per_token("bf16")
    assert per_token == 2 * 10 * 2 * 125 * 2  # K and V, layers, kv heads, head dim, bytes
    with_ctx = pass_s(ROUND, SHAPE, "bf16", 1, context=10_000)
    assert with_ctx - pass_s(ROUND, SHAPE, "bf16", 1) == pytest.approx(per_token * 1e4 / 1e12,
                                                                       rel=0.01)
    assert SMOLLM2_135M.kv_bytes_per_token("fp32") == 2 * 30 * 3 * 64 * 4


def test_layer_skip_draft_keeps_the_head_and_drops_layers() -> None:
    d = SMOLLM2_135M.first_layers(8)
    assert d.n_params == pytest.approx(56632896, rel=1e-4)  # what the captures record
    assert d.layers == 8 and d.vocab == SMOLLM2_135M.vocab
    with pytest.raises(SpecsimError):
        SMOLLM2_135M.first_layers(31)


def test_same_size_drafts_of_other_depths() -> None:
    deep = SMOLLM2_135M.with_geometry(layers=16, params=56e6)
    shallow = SMOLLM2_135M.with_geometry(layers=4, params=56e6)
    assert deep.n_params == pytest.approx(56e6, rel=0.03)
    assert shallow.n_params == pytest.approx(56e6, rel=0.03)
    assert shallow.hidden > deep.hidden
    h100 = CATALOG["H100-SXM-80GB"]
    # launch-bound: the deep draft costs more per step at the same size
    assert pass_s(h100, deep, "bf16", 1) > 2 * pass_s(h100, shallow, "bf16", 1)
    same = SMOLLM2_135M.with_geometry(layers=30, hidden=576)
    assert same.n_params == pytest.approx(SMOLLM2_135M.n_params, rel=1e-6)


def test_dtype_names() -> None:
    assert [normalize_dtype(x) for x in ("bfloat16", "torch.float16", "float32", "INT4")] == [
        "bf16", "fp16", "fp32", "int4"]
    assert set(DTYPE_BYTES) == {"fp32", "bf16", "fp16", "int8", "int4"}
    with pytest.raises(SpecsimError, match="unknown"):
        normalize_dtype("float8")


def test_shape_lookup_does_not_guess_from_a_name_alone() -> None:
    assert shape_of("smollm2", 134515008) is SMOLLM2_135M
    assert shape_of("smollm2", 7e9) is None  # same name, another size: unknown
    assert shape_of("mystery") is None
    cfg = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": 64}
    s = shape_of("tiny", 1e5, cfg)
    assert s is not None and (s.layers, s.head_dim, s.kv_heads) == (2, 8, 2)


def test_pass_model_scales_everything_it_charges() -> None:
    base = PassModel(ROUND, "bf16", SHAPE, SHAPE.first_layers(2))
    doubled = PassModel(ROUND, "bf16", SHAPE, SHAPE.first_layers(2), scale=2.0)
    assert doubled.verify_s(5) == pytest.approx(2 * base.verify_s(5))
    assert doubled.draft_step_s(4) == pytest.approx(2 * base.draft_step_s(4))
    assert base.draft_step_s() < base.verify_s(1)
    assert PassModel(ROUND, "bf16", SHAPE).draft_step_s() == 0.0
