"""What-if sweeps and replications: grid, feasibility, best point, determinism, intervals."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.sweep.replicate import combine_figures, replicate, t_interval
from sim.sweep.whatif import grid, parse_value, parse_vary, points_table, sweep, write_outputs
from tracing.errors import SpecsimError


def small(**workload: object) -> Scenario:
    """A quick scenario: 60 Poisson requests of 32 tokens, i.i.d. acceptance 0.7."""
    w = {"requests": 60, "prompt_tokens": 16, "output_tokens": 32, "arrival": "poisson",
         "rate_per_s": 1.5, **workload}
    return Scenario.from_dict({"workload": w, "acceptance": {"alpha": 0.7},
                               "latency": {"target_step_s": 0.02, "draft_step_s": 0.004}})


def test_parse_value_and_vary() -> None:
    assert parse_value("4") == 4 and isinstance(parse_value("4"), int)
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True and parse_value("False") is False
    assert parse_value("H100") == "H100"
    assert parse_vary(["policy.tau=1,2, 4", "latency.hardware=A100"]) == {
        "policy.tau": [1, 2, 4], "latency.hardware": ["A100"]}
    for bad in (["policy.tau"], ["=1,2"], ["policy.tau="], ["policy.tau=1", "policy.tau=2"]):
        with pytest.raises(SpecsimError):
            parse_vary(bad)


def test_grid_is_cartesian_and_validated() -> None:
    cells = grid(small(), {"policy.tau": [1, 2, 3], "acceptance.alpha": [0.5, 0.9]})
    assert len(cells) == 6
    assert cells[1][0] == {"policy.tau": 1, "acceptance.alpha": 0.9}
    assert cells[5][1].policy.params["tau"] == 3 and cells[5][1].acceptance.alpha == 0.9
    with pytest.raises(SpecsimError, match=r"acceptance.*alpha"):
        grid(small(), {"acceptance.alpha": [1.5]})
    with pytest.raises(SpecsimError, match="nosuch"):
        grid(small(), {"workload.nosuch": [1]})


def test_points_carry_figures_and_best_is_lowest_feasible_p95() -> None:
    base = small()
    result = sweep(base, {"policy.tau": [0, 1, 2, 4, 8]}, jobs=1)
    p95 = [p["latency_s"]["p95"] for p in result.points]
    # No SLO: every point feasible, the best is the lowest p95 of all.
    assert all(p["feasible"] for p in result.points)
    assert result.best is not None and result.best["latency_s"]["p95"] == min(p95)
    # Each point is the plain simulation of its scenario with the base seed.
    direct = simulate(base.with_overrides({"policy.tau": 2})).figures
    assert result.points[2]["latency_s"] == direct["latency_s"]
    assert result.points[2]["vary"] == {"policy.tau": 2}
    # An SLO between the two lowest p95s leaves only the best feasible.
    lo, second = sorted(p95)[:2]
    strict = sweep(base, {"policy.tau": [0, 1, 2, 4, 8]}, slo_p95_ms=(lo + second) / 2 * 1e3,
                   jobs=1)
    assert [p["feasible"] for p in strict.points].count(True) == 1
    assert strict.best is not None and strict.best["latency_s"]["p95"] == lo
    none = sweep(base, {"policy.tau": [1, 2]}, slo_p95_ms=1e-6, jobs=1)
    assert none.best is None and all(p["meets_slo"] == "no" for p in none.points)


def test_budget_truncation_is_infeasible() -> None:
    result = sweep(small(), {"budget.max_verify_per_request": [0, 3]}, jobs=1)
    unlimited, tight = result.points
    assert unlimited["within_budget"] and unlimited["feasible"]
    assert tight["truncated_requests"] > 0
    assert not tight["within_budget"] and not tight["feasible"]
    assert result.best is unlimited


def test_parallel_sweep_gives_the_same_table_as_jobs_1() -> None:
    vary: dict[str, list[Any]] = {"policy.tau": [1, 2, 4], "acceptance.alpha": [0.5, 0.8]}
    serial = sweep(small(), vary, slo_p95_ms=3000, jobs=1)
    parallel = sweep(small(), vary, slo_p95_ms=3000, jobs=2)
    pd.testing.assert_frame_equal(serial.table, parallel.table)
    assert serial.best == parallel.best


def test_table_columns_and_outputs(tmp_path) -> None:
    result = sweep(small(), {"policy.tau": [2, 4]}, jobs=1)
    table = result.table
    assert list(table.columns[:1]) == ["policy.tau"]
    assert {"latency_s.p95", "tokens_per_cycle", "feasible"} <= set(table.columns)
    assert table["latency_s.p95"].tolist() == [p["latency_s"]["p95"] for p in result.points]
    written = write_outputs(result, small(), tmp_path / "out")
    assert [p.name for p in written] == ["whatif.csv", "points.json", "scenario.toml"]
    assert Scenario.from_toml(written[2]) == small()
    pq = write_outputs(result, small(), tmp_path / "grid.parquet")
    assert pd.read_parquet(pq[0])["latency_s.p95"].tolist() == table["latency_s.p95"].tolist()
    with pytest.raises(SpecsimError, match="--out"):
        write_outputs(result, small(), tmp_path / "grid.xlsx")


def test_mixed_value_types_make_a_text_column() -> None:
    points = [{"vary": {"k": 1}, "x": 1.0}, {"vary": {"k": "auto"}, "x": 2.0}]
    assert points_table(points)["k"].tolist() == ["1", "auto"]


def test_overloaded_points_finish_and_say_so() -> None:
    result = sweep(small(rate_per_s=50.0, requests=200), {"policy.tau": [2]}, jobs=1)
    (point,) = result.points
    assert point["overloaded"] is True
    assert any("without bound" in w for w in point["warnings"])


def test_t_interval() -> None:
    assert t_interval([1.0]) is None
    iv = t_interval([1.0, 2.0, 3.0])
    assert iv is not None and iv.mean == 2.0
    # t(0.975, 2) = 4.303; sd = 1; half = 4.303 / sqrt(3)
    assert iv.half_width == pytest.approx(4.3027 / 3**0.5, rel=1e-3)


def test_replication_ci_contains_estimate_and_narrows() -> None:
    base = small(arrival="closed", rate_per_s=0.0)  # light-tailed: p95 varies by acceptance only
    widths = []
    for n in (3, 30):
        figures = replicate(base, n).figures
        lat = figures["latency_s"]
        for key in ("p50", "p95"):
            lo, hi = lat[f"{key}_ci"]
            assert lo <= lat[key] <= hi
        assert figures["replications"]["seeds"] == list(range(n))
        assert lat["p95"] == pytest.approx(
            sum(figures["replications"]["values"]["latency_s.p95"]) / n)
        widths.append(lat["p95_ci"][1] - lat["p95_ci"][0])
    assert widths[1] < widths[0]
    one = replicate(base, 1).figures
    assert one["latency_s"]["p95_ci"] is None
    assert one["latency_s"]["p95"] == simulate(base).figures["latency_s"]["p95"]
    with pytest.raises(SpecsimError):
        replicate(base, 0)


def test_combine_figures() -> None:
    runs = [{"n": 5, "x": 1.0, "ok": False, "l": [1.0, 2.0], "d": {"a": 2}, "s": "p"},
            {"n": 5, "x": 3.0, "ok": True, "l": [3.0, 4.0], "d": {"a": 4}, "s": "p"}]
    assert combine_figures(runs) == {"n": 5, "x": 2.0, "ok": True, "l": [2.0, 3.0],
                                     "d": {"a": 3.0}, "s": "p"}
