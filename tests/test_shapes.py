"""The built-in shape table, and scenarios that name their target by it, by config or by
geometry -- never by a parameter count alone unless it says the shape is assumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main
from sim import Scenario, simulate
from sim.models.costmodel import ModelShape, table_shape
from sim.models.shapes import ARCHITECTURES, DRAFTS
from tracing.errors import SpecsimError

# Published parameter counts (the models' safetensors totals).
PUBLISHED = {"llama-3.1-8b": 8_030_261_248, "llama-3.2-1b": 1_235_814_400,
             "llama-3.1-70b": 70_553_706_496, "qwen2.5-7b": 7_615_616_512,
             "mistral-7b": 7_248_023_552, "gemma-2-9b": 9_241_705_984,
             "qwen3-8b": 8_190_735_360, "phi-3-mini": 3_821_079_552,
             "smollm2-135m": 134_515_008}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_table_counts_match_the_published_totals(name: str) -> None:
    assert ARCHITECTURES[name].n_params == PUBLISHED[name]


def test_table_shapes_and_drafts() -> None:
    s = table_shape("Llama-3.1-8B")  # case-insensitive
    assert s is not None and (s.layers, s.hidden, s.heads, s.kv_heads, s.head_dim, s.vocab,
                              s.tied) == (32, 4096, 32, 8, 128, 128256, False)
    # an untied input embedding is looked up, not read: a pass reads the rest
    assert s.read_params == pytest.approx(s.n_params - 128256 * 4096)
    for target, drafts in DRAFTS.items():
        for d in drafts:  # a draft shares its target's family and tokenizer (the embedding
            # tables are padded differently: Qwen2.5 151936 / 152064, Gemma 3 262144 / 262208)
            a, b = ARCHITECTURES[d], ARCHITECTURES[target]
            assert a.family == b.family and abs(a.vocab - b.vocab) <= 128, (target, d)


def _scenario(**target: object) -> dict:
    return {"workload": {"requests": 20, "prompt_tokens": 256, "output_tokens": 64},
            "acceptance": {"alpha": 0.7}, "latency": {"hardware": "H100"},
            "target": dict(target)}


def test_params_only_target_is_refused_listing_the_table(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SpecsimError, match=r"llama-3\.1-8b.*shape = \"assumed\""):
        Scenario.from_dict(_scenario(params=8e9))
    # the old way: [latency] target_params alone, moved to another device
    path = tmp_path / "s.toml"
    path.write_text('[workload]\nrequests = 10\n[latency]\nhardware = "H100"\n'
                    "target_params = 8e9\n")
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "shape is unknown" in err and "llama-3.1-8b" in err and "Traceback" not in err


def test_an_assumed_shape_is_shown_in_every_output(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[workload]\nrequests = 10\n[latency]\nhardware = "H100"\n'
                    '[target]\nparams = 8e9\nshape = "assumed"\n')
    assert main(["simulate", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target_shape"]["assumed"] is True and out["target_shape"]["layers"] > 100
    assert any("ASSUMED target shape" in w for w in out["warnings"])
    assert main(["simulate", str(path)]) == 0
    assert "ASSUMED SHAPE" in capsys.readouterr().out
    assert main(["whatif", str(path), "--vary", "policy.tau=2,4"]) == 0
    assert "ASSUMED SHAPE" in capsys.readouterr().out
    assert main(["whatif", str(path), "--vary", "policy.tau=2,4", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert all(p["target_shape"]["assumed"] for p in points)


def test_the_true_shape_prices_an_8b_far_below_the_assumed_one() -> None:
    real = simulate(Scenario.from_dict(_scenario(model="llama-3.1-8b")), seed=0).figures
    guess = simulate(Scenario.from_dict(_scenario(params=8.03e9, shape="assumed")),
                     seed=0).figures
    assert real["target_shape"]["assumed"] is False and real["target_shape"]["layers"] == 32
    assert guess["latency_s"]["p50"] > 2.5 * real["latency_s"]["p50"]


def test_config_file_and_geometry_name_the_same_target(tmp_path: Path) -> None:
    cfg = {"num_hidden_layers": 32, "hidden_size": 4096, "intermediate_size": 14336,
           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
           "vocab_size": 128256, "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "s.toml").write_text('[latency]\nhardware = "H100"\n[target]\n'
                                     'config = "config.json"\n')
    by_config = simulate(Scenario.from_toml(tmp_path / "s.toml"), seed=0).figures
    by_table = simulate(Scenario.from_dict({"latency": {"hardware": "H100"},
                                            "target": {"model": "llama-3.1-8b"}}),
                        seed=0).figures
    geometry = {"layers": 32, "hidden": 4096, "intermediate": 14336, "heads": 32,
                "kv_heads": 8, "head_dim": 128, "vocab": 128256, "tied": False}
    by_geometry = simulate(Scenario.from_dict({"latency": {"hardware": "H100"},
                                               "target": geometry}), seed=0).figures
    for f in (by_config, by_geometry):
        assert f["target_shape"]["n_params"] == pytest.approx(8_030_261_248)
        assert f["latency_s"]["p50"] == pytest.approx(by_table["latency_s"]["p50"])
    with pytest.raises(SpecsimError, match=r"config\.json.*not found"):
        (tmp_path / "config.json").unlink()
        simulate(Scenario.from_toml(tmp_path / "s.toml"))


def test_bad_targets_name_what_is_wrong() -> None:
    with pytest.raises(SpecsimError, match='model = "llama-9": not in the built-in table'):
        Scenario.from_dict(_scenario(model="llama-9"))
    with pytest.raises(SpecsimError, match="name the target one way"):
        Scenario.from_dict(_scenario(model="llama-3.1-8b", layers=3))
    with pytest.raises(SpecsimError, match="needs heads, vocab"):
        Scenario.from_dict(_scenario(layers=3, hidden=64, params=1e6))
    with pytest.raises(SpecsimError, match="params or intermediate"):
        Scenario.from_dict(_scenario(layers=3, hidden=64, heads=4, vocab=100))


def test_from_config_reads_tying_off_the_count_when_unsaid() -> None:
    cfg = {"num_hidden_layers": 16, "hidden_size": 2048, "intermediate_size": 8192,
           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
           "vocab_size": 49152}
    untied = ModelShape.from_config(cfg, 1_174_472_704)  # the random 1.2B's profile
    assert untied.tied is False and untied.read_params == pytest.approx(1_174_472_704
                                                                        - 49152 * 2048)
    assert ModelShape.from_config(cfg, 0.0).tied is True  # counted from the config
