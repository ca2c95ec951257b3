"""``specsim costs``: the cost model against the H200 profiles (traces/h200/), fitted on one and
checked on the other; eager attention's long-context cost; the stack as a catalog setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main
from sim.models.catalog import CATALOG_BAND, get_device
from sim.models.costmodel import pass_s, table_shape
from sim.models.hardware import config_shape

H200 = Path(__file__).resolve().parents[1] / "traces" / "h200"
LLAMA_1B = str(H200 / "profile_h200_random-llama-1b.json")
SMOLLM2 = str(H200 / "profile_h200_smollm2.json")


def _costs(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(["costs", "--hardware", "H200", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_batched_multi_token_passes_at_long_context_cost_what_eager_pays() -> None:
    # measured on the H200: 64 sequences x 5 tokens after 2,048 cached each took 51.5 ms, a
    # 1-token pass of the same batch 17.8 ms; the model before this work said 16-37 ms
    shape = config_shape(LLAMA_1B, "test")
    h200 = get_device("H200")
    multi = pass_s(h200, shape, "bf16", 64 * 5, 64, 64 * 2048)
    assert 51.5e-3 / 1.5 <= multi <= 51.5e-3 * 1.5
    assert multi > 2 * pass_s(h200, shape, "bf16", 64, 64, 64 * 2048)


def test_costs_against_both_profiles(capsys: pytest.CaptureFixture) -> None:
    for profile, target in ((LLAMA_1B, ["--target-config", LLAMA_1B]),
                            (SMOLLM2, ["--target", "smollm2"])):
        out = _costs(capsys, *target, "--against", profile)
        assert out["basis"] == "catalog" and out["band"] == get_device("H200").band
        s = out["summary"]
        assert s["within_1_5x"] == s["points"] == len(out["points"])  # every point within 1.5x
        p = out["points"][0]
        assert set(p) == {"batch", "tokens", "context", "seconds", "measured_s", "ratio"}
        assert p["ratio"] == pytest.approx(p["seconds"] / p["measured_s"])


def test_fit_on_one_profile_check_on_the_other(capsys: pytest.CaptureFixture) -> None:
    # the catalog's H200 stack was fitted on the 1.2B profile: the bundled model's is the check
    out = _costs(capsys, "--target", "smollm2", "--against", SMOLLM2, "--anchor")
    assert out["summary"]["goal_met"] and out["anchor"]["batch"] == 1
    assert abs(out["summary"]["median_ratio"] - 1) <= 0.15
    # and the other way round: fitted on the bundled model's profile, checked on the 1.2B
    out = _costs(capsys, "--target-config", LLAMA_1B, "--against", LLAMA_1B,
                 "--fit-on", SMOLLM2)
    assert out["summary"]["within_1_5x"] == out["summary"]["points"] == 112
    assert "fitted on" in out["basis"]
    out = _costs(capsys, "--target-config", LLAMA_1B, "--against", LLAMA_1B,
                 "--fit-on", SMOLLM2, "--anchor")
    assert out["summary"]["goal_met"]


def test_grid_points_tp_and_stack(capsys: pytest.CaptureFixture) -> None:
    out = _costs(capsys, "--target", "llama-3.1-70b", "--batch", "1,8", "--tokens", "1,5",
                 "--context", "512,2048")
    assert len(out["points"]) == 8 and out["target"]["layers"] == 80
    assert {(p["batch"], p["tokens"], p["context"]) for p in out["points"]} \
        == {(b, n, c) for b in (1, 8) for n in (1, 5) for c in (512, 2048)}
    one = {(p["batch"], p["tokens"], p["context"]): p["seconds"] for p in out["points"]}
    out = _costs(capsys, "--target", "llama-3.1-70b", "--batch", "1,8", "--tokens", "1,5",
                 "--context", "512,2048", "--tp", "4")
    four = {(p["batch"], p["tokens"], p["context"]): p["seconds"] for p in out["points"]}
    assert all(four[k] < one[k] for k in one)  # weights and KV split over 4 GPUs
    out = _costs(capsys, "--target", "smollm2", "--batch", "1", "--tokens", "1",
                 "--context", "512", "--stack", "cuda-graph")
    assert out["stack"] == "cuda-graph" and out["band"] == CATALOG_BAND  # not measured here
    eager = pass_s(get_device("H200"), table_shape("smollm2"), "bf16", 1, 1, 512)  # type: ignore[arg-type]
    assert out["points"][0]["seconds"] < eager / 3


def test_costs_bad_input_exits_2(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    base = ["costs", "--hardware", "H200"]
    assert main([*base, "--target", "llama-9", "--batch", "1", "--tokens", "1",
                 "--context", "1"]) == 2
    assert "llama-3.1-8b" in capsys.readouterr().err  # the table is listed
    assert main([*base, "--target", "smollm2"]) == 2
    assert "--batch, --tokens, --context needed" in capsys.readouterr().err
    assert main([*base, "--target", "smollm2", "--anchor", "--batch", "1", "--tokens", "1",
                 "--context", "1"]) == 2
    assert main(["costs", "--hardware", "H100", "--target", "smollm2", "--against",
                 SMOLLM2]) == 2
    assert "not H100" in capsys.readouterr().err
    (tmp_path / "c.json").write_text("{}")
    assert main([*base, "--target-config", str(tmp_path / "c.json"), "--batch", "1",
                 "--tokens", "1", "--context", "1"]) == 2
    assert "missing or bad field" in capsys.readouterr().err


def test_a_prefill_on_a_modelled_device_is_one_pass_over_the_prompt() -> None:
    from sim import Scenario
    from sim.models.latency import resolve_costs

    costs = resolve_costs(Scenario.from_dict({"latency": {"hardware": "H200"},
                                              "target": {"model": "smollm2"}}))
    # a launch-bound 40-token prefill costs about one pass (it was priced at 40/128 of one)
    assert costs.prefill_s(40) >= costs.verify_s(1)
    assert costs.prefill_s(40) == pytest.approx(
        pass_s(get_device("H200"), table_shape("smollm2"), "bf16", 40, 1, 0, logits=1))  # type: ignore[arg-type]
    # a long prompt costs its arithmetic: far less than 4,000 short passes
    assert costs.prefill_s(4000) < 10 * costs.verify_s(1)
