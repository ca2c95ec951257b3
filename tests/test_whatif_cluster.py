"""What-if sweeps on a Dask cluster (sim.sweep.execution): the same points and figures as --jobs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sim import Scenario, simulate
from sim.sweep.execution import check_cluster
from sim.sweep.whatif import sweep
from tracing.errors import SpecsimError


def _base(**workload: Any) -> Scenario:
    return Scenario.from_dict({
        "workload": {"requests": 12, "prompt_tokens": 32, "output_tokens": 24,
                     "arrival": "poisson", "rate_per_s": 2.0, **workload},
        "acceptance": {"alpha": 0.7},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.002},
        "policy": {"name": "fixed", "tau": 2},
        "server": {"max_batch": 2},
    })


VARY: dict[str, list[Any]] = {"policy.tau": [1, 3], "acceptance.alpha": [0.5, 0.8, 0.9],
                              "policy.name": ["fixed", "heuristic"]}


@pytest.fixture(scope="module")
def client() -> Any:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


def test_cluster_equals_jobs(client: Any) -> None:
    base = _base()
    on_cluster = sweep(base, VARY, cluster=client)
    serial = sweep(base, VARY, jobs=1)
    pool = sweep(base, VARY, jobs=2)
    assert on_cluster.to_dict() == serial.to_dict() == pool.to_dict()
    assert on_cluster.table.equals(serial.table)
    assert len(on_cluster.points) == 12
    assert len({p["latency_s"]["p95"] for p in on_cluster.points}) > 1  # the points differ


def test_cluster_with_a_trace_and_replications(client: Any) -> None:
    from sim import scenario_from_trace

    trace = simulate(_base(requests=30).with_overrides({"server.max_batch": 1,
                                                         "policy.name": "heuristic"})).trace
    base = scenario_from_trace(trace).with_overrides({"sim.replications": 2})
    vary: dict[str, list[Any]] = {"policy.tau": [2, 4]}
    assert sweep(base, vary, trace=trace, cluster=client).to_dict() == sweep(
        base, vary, trace=trace, jobs=1).to_dict()


def test_a_worker_error_reaches_the_caller(client: Any) -> None:
    # a scenario that fails only when simulated: "trace" lengths with an empty trace
    with pytest.raises(SpecsimError):
        sweep(_base(), {"workload.arrival": ["trace"]}, cluster=client)


def test_cluster_addresses() -> None:
    assert check_cluster("local") == "local"
    assert check_cluster("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("remote", "tcp://", "http://host:8786"):
        with pytest.raises(SpecsimError, match="--cluster"):
            check_cluster(bad)


def test_cli_cluster_local_equals_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    path = tmp_path / "s.toml"
    path.write_text(_base().to_toml())
    args = ["whatif", str(path), "--vary", "policy.tau=1,2,3", "--json", "--intervals", "0"]
    # a real LocalCluster (one worker process) started and closed by the command
    assert main([*args, "--cluster", "local", "--jobs", "1"]) == 0
    on_cluster = json.loads(capsys.readouterr().out)
    assert main([*args, "--jobs", "1"]) == 0
    assert on_cluster == json.loads(capsys.readouterr().out)
    assert len(on_cluster["points"]) == 3


def test_bad_cluster_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sim.sweep.execution
    from analysis.cli import main

    path = tmp_path / "s.toml"
    path.write_text(_base().to_toml())
    assert main(["whatif", str(path), "--vary", "policy.tau=1,2", "--cluster", "nowhere"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "specsim: error: --cluster nowhere: expected local or tcp://HOST:PORT"]
    monkeypatch.setattr(sim.sweep.execution, "CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(SpecsimError, match=re.escape("--cluster tcp://127.0.0.1:9: cannot")):
        sweep(_base(), {"policy.tau": [1, 2]}, cluster="tcp://127.0.0.1:9")
