"""Scenario files: defaults, validation naming the key, overrides, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import Scenario
from tracing.errors import SpecsimError

DESIGN_EXAMPLE = """
[workload]
requests = 2000
prompt_tokens = 128
output_tokens = 256
arrival = "closed"
rate_per_s = 0.0
seed = 0

[acceptance]
model = "iid"
alpha = 0.8

[latency]
target_step_s = 0.020
verify_slope_s = 0.0
draft_step_s = 0.002
prefill_s_per_token = 0.0
hardware = ""

[policy]
name = "fixed"
tau = 4

[budget]
max_verify_per_request = 0

[server]
max_batch = 1
"""


def test_design_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(DESIGN_EXAMPLE)
    s = Scenario.from_toml(path)
    assert s.workload.requests == 2000
    assert s.acceptance.alpha == 0.8
    assert s.policy.spec() == "fixed:tau=4"
    assert s.latency.draft_step_s == 0.002
    assert Scenario.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"acceptance": {"alpha": 1.3}}, "[acceptance] alpha = 1.3: must be in [0, 1]"),
        ({"acceptance": {"alfa": 0.5}}, "[acceptance] alfa: unknown key"),
        ({"latency": {"draft_step_s": -0.1}}, "[latency] draft_step_s = -0.1: must be >= 0"),
        ({"workload": {"requests": "many"}}, '[workload] requests = "many": must be an integer'),
        ({"workload": {"requests": 2.5}}, "[workload] requests = 2.5: must be an integer"),
        ({"workload": {"rate_per_s": 2.0}}, 'rate_per_s = 2.0: only with arrival = "poisson"'),
        ({"workload": {"arrival": "poisson"}}, 'arrival = "poisson" needs rate_per_s > 0'),
        ({"workload": {"arrival": "bursty"}}, '[workload] arrival = "bursty": must be one of'),
        ({"workload": {"output_tokens": {"dist": "zipf"}}}, "[workload] output_tokens"),
        ({"workload": {"output_tokens": {"dist": "lognormal", "mean": 100}}}, "needs sigma"),
        ({"policy": {"name": "magic"}}, "[policy] name = 'magic': unknown"),
        ({"policy": {"name": "fixed", "tau": -2}}, "[policy]"),
        ({"policy": {"name": "fixed", "taux": 3}}, "[policy] taux: unknown key"),
        ({"server": {"max_batch": 0}}, "[server] max_batch = 0: must be >= 1"),
        ({"latency": {"hardware": "TPU9"}}, '[latency] hardware = "TPU9": unknown'),
        ({"acceptance": {"model": "positional", "alpha": 0.5}}, 'model "positional" takes a list'),
        ({"acceptance": {"model": "positional", "alpha": [0.9, 1.5]}}, "must be in [0, 1]"),
        ({"budget": {"max_verify_per_request": -1}}, "[budget] max_verify_per_request = -1"),
        ({"nosuch": {}}, "unknown section [nosuch]"),
        ({"sim": {"baseline": 1}}, "[sim] baseline = 1: must be true or false"),
    ],
)
def test_validation_names_the_key(data: dict, needle: str) -> None:
    with pytest.raises(SpecsimError) as err:
        Scenario.from_dict(data, where="scenario.toml")
    message = str(err.value)
    assert message.startswith("scenario.toml: ")
    assert needle in message
    assert "\n" not in message


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[workload\nrequests = 3")
    with pytest.raises(SpecsimError, match=r"bad\.toml: not valid TOML"):
        Scenario.from_toml(bad)
    with pytest.raises(SpecsimError, match="not found"):
        Scenario.from_toml(tmp_path / "none.toml")


def test_with_overrides_validates_and_coerces() -> None:
    s = Scenario.from_dict({"policy": {"name": "fixed", "tau": 4}})
    t = s.with_overrides({"policy.tau": "8", "latency.hardware": "H100", "server.max_batch": 4})
    assert t.policy.params["tau"] == 8
    assert t.latency.hardware == "H100"
    assert t.server.max_batch == 4
    assert s.policy.params["tau"] == 4  # the original is untouched
    assert s.with_overrides({"acceptance.alpha": "0.5"}).acceptance.alpha == 0.5
    with pytest.raises(SpecsimError, match=r"\[acceptance\] alpha = 1.5"):
        s.with_overrides({"acceptance.alpha": 1.5})
    with pytest.raises(SpecsimError, match=r"SECTION\.KEY"):
        s.with_overrides({"tau": 3})


def test_policy_switch_keeps_unused_keys_quietly() -> None:
    s = Scenario.from_dict({"policy": {"name": "fixed", "tau": 4}})
    t = s.with_overrides({"policy.name": "target_only"})
    assert t.policy.spec() == "target_only"
    assert t.make_policy().next_tau
    b = s.with_overrides({"budget.max_verify_per_request": 10})
    assert b.make_policy().params()["max_verify"] == 10


def test_distributions_accepted() -> None:
    s = Scenario.from_dict(
        {
            "workload": {
                "prompt_tokens": {"dist": "uniform", "low": 10, "high": 20},
                "output_tokens": {"dist": "choice", "values": [16, 64], "weights": [1, 3]},
            }
        }
    )
    assert s.workload.output_tokens == {"dist": "choice", "values": [16, 64], "weights": [1, 3]}
    assert Scenario.from_dict(s.to_dict()) == s


def test_to_toml_round_trips(tmp_path: Path) -> None:
    s = Scenario.from_dict(
        {
            "workload": {"output_tokens": {"dist": "lognormal", "mean": 200, "sigma": 0.5}},
            "acceptance": {"model": "positional", "alpha": [0.9, 0.5]},
            "draft": {"name": 'a "quoted" draft', "step_s": 0.001},
            "policy": {"name": "adaptive", "max_tau": 6},
        }
    )
    path = tmp_path / "resolved.toml"
    path.write_text(s.to_toml())
    assert Scenario.from_toml(path) == s


def test_overriding_the_rate_switches_to_poisson() -> None:
    s = Scenario.from_dict({"workload": {"arrival": "closed"}})
    t = s.with_overrides({"workload.rate_per_s": "4.5"})
    assert t.workload.arrival == "poisson" and t.workload.rate_per_s == 4.5
    with pytest.raises(SpecsimError, match="only with arrival"):
        s.with_overrides({"workload.rate_per_s": 4.5, "workload.arrival": "closed"})


def test_overriding_alpha_of_a_fitted_model_switches_to_iid() -> None:
    s = Scenario.from_dict(
        {
            "workload": {"output_tokens": "trace"},
            "acceptance": {"model": "trace", "per_request": True, "replay": True},
        }
    )
    t = s.with_overrides({"acceptance.alpha": 0.6})
    assert t.acceptance.model == "iid" and t.acceptance.alpha == 0.6
    assert not t.acceptance.replay
