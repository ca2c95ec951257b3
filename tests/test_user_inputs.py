"""Issue 26 part 6: acceptance as servers report it, by context, and a user's own policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.engine.core import simulate
from sim.scenario import Scenario
from tracing.errors import SpecsimError

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)


def test_mean_accepted_length_is_solved_to_alpha() -> None:
    from sim.scenario import expected_accepted, solve_alpha

    s = Scenario.from_dict({"acceptance": {"mean_accepted_length": 3.0, "tau": 4},
                            "workload": {"requests": 60, "output_tokens": 200}})
    assert s.acceptance.model == "iid"
    assert expected_accepted(float(s.acceptance.alpha), 4) == pytest.approx(2.0, abs=1e-5)
    # the simulated run at that tau shows the length it was given
    assert simulate(s).figures["tokens_per_cycle"] == pytest.approx(3.0, rel=0.05)
    a = Scenario.from_dict({"acceptance": {"accepted_per_draft": 2.0, "tau": 4}})
    assert a.acceptance.alpha == s.acceptance.alpha
    assert solve_alpha(4.0, 4) == 1.0 and solve_alpha(0.0, 4) == 0.0
    # round trip through TOML keeps it, and varying alpha replaces it
    assert Scenario.from_dict(s.to_dict()) == s
    assert s.with_overrides({"acceptance.alpha": 0.5}).acceptance.alpha == 0.5


@pytest.mark.parametrize("table, words", [
    ({"mean_accepted_length": 0.5, "tau": 4}, "mean_accepted_length = 0.5"),
    ({"mean_accepted_length": 6.0, "tau": 4}, "at most 5"),
    ({"mean_accepted_length": 3.0}, "needs tau"),
    ({"accepted_per_draft": 2.0, "mean_accepted_length": 3.0, "tau": 4}, "give one"),
    ({"by_context": [[0, 0.8], [1024, 0.6], [512, 0.5]]}, "increasing"),
    ({"by_context": [[100, 0.8]]}, "starts at 0"),
])
def test_bad_acceptance_inputs_are_refused(table: dict, words: str, tmp_path: Path) -> None:
    with pytest.raises(SpecsimError, match=words):
        Scenario.from_dict({"acceptance": table}, where="s.toml")
    path = tmp_path / "s.toml"
    path.write_text("[acceptance]\n" + "\n".join(f"{k} = {json.dumps(v)}"
                                                  for k, v in table.items()) + "\n")
    res = cli("simulate", str(path))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "[acceptance]" in res.stderr and "Traceback" not in res.stderr


def test_acceptance_by_context() -> None:
    base = {"workload": {"requests": 40, "prompt_tokens": 64, "output_tokens": 128}}
    flat = simulate(Scenario.from_dict({**base, "acceptance": {"alpha": 0.8}})).figures
    falls = simulate(Scenario.from_dict(
        {**base, "acceptance": {"by_context": [[0, 0.8], [128, 0.3]]}})).figures
    early = simulate(Scenario.from_dict(
        {**base, "acceptance": {"by_context": [[0, 0.8], [4096, 0.3]]}})).figures
    assert falls["acceptance_rate"] < flat["acceptance_rate"] - 0.15
    assert early["acceptance_rate"] == pytest.approx(flat["acceptance_rate"], abs=0.05)


POLICY = '''
from sim.policies.base import Policy


class AlwaysTwo(Policy):
    name = "always_two"

    def __init__(self, tau: int = 2) -> None:
        super().__init__(tau=tau)

    def next_tau(self, state):
        return 2
'''


def test_a_users_policy_from_a_file(tmp_path: Path) -> None:
    src = tmp_path / "mine.py"
    src.write_text(POLICY)
    scenario = tmp_path / "s.toml"
    scenario.write_text(Scenario.from_dict({"workload": {"requests": 10}}).to_toml())
    res = cli("simulate", str(scenario), "--policy", f"{src}:AlwaysTwo", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["mean_tau"] == pytest.approx(2.0, abs=0.01)
    res = cli("whatif", str(scenario), "--policy", f"{src}:AlwaysTwo", "--vary",
              "acceptance.alpha=0.5,0.9", "--json", "--intervals", "0", "--jobs", "2")
    assert res.returncode == 0, res.stderr
    assert all(p["mean_tau"] == pytest.approx(2.0, abs=0.01) for p in json.loads(res.stdout)["points"])
    res = cli("whatif", str(scenario), "--vary", f"policy.name=fixed,{src}:AlwaysTwo",
              "--vary", "policy.tau=4", "--json", "--intervals", "0", "--jobs", "1")
    assert res.returncode == 0, res.stderr
    taus = [p["mean_tau"] for p in json.loads(res.stdout)["points"]]
    assert taus[0] > 3 and taus[1] == pytest.approx(2.0, abs=0.01)
    for spec, words in ((f"{tmp_path}/nope.py:AlwaysTwo", "no such file"),
                        (f"{src}:Missing", "no class Missing")):
        bad = cli("simulate", str(scenario), "--policy", spec)
        assert bad.returncode == 2 and words in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_the_shared_policy_parser_takes_a_file(tmp_path: Path) -> None:
    from sim.policies.library import make_policy

    src = tmp_path / "mine.py"
    src.write_text(POLICY)
    policy = make_policy(f"{src}:AlwaysTwo")
    assert type(policy).__name__ == "AlwaysTwo" and policy.name == "always_two"
    with pytest.raises(SpecsimError, match="no class Nope"):
        make_policy(f"{src}:Nope")
