"""CLI hygiene: --version, -o/--out and --force everywhere, 0644 outputs, clear policy errors,
--trace used or refused, the empty scenario, progress and spinners, the model cache."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import pytest

from analysis.cli import build_parser, main
from tracing.outputs import public_mode

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sample_synthetic.jsonl"
SCENARIO = """
[workload]
requests = 20
output_tokens = 32
[acceptance]
model = "iid"
alpha = 0.7
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
                out.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("specsim 0.")


WRITERS = ("capture", "profile", "simulate", "whatif", "report", "demo", "compare", "validate",
           "trace convert", "trace perfetto", "import", "serve", "load")


@pytest.mark.parametrize("command", WRITERS)
def test_every_writing_command_has_o_out_and_force(command: str) -> None:
    sub = _subparsers(build_parser())[command]
    flags = {s for a in sub._actions for s in a.option_strings}
    assert {"-o", "--out", "--force"} <= flags, command


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    return path


def test_simulate_refuses_to_clobber_and_writes_0644(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    scenario, out = _scenario(tmp_path), tmp_path / "sim.jsonl"
    assert main(["simulate", str(scenario), "-o", str(out), "--json"]) == 0
    capsys.readouterr()
    assert out.stat().st_mode & 0o777 == public_mode()
    assert (tmp_path / "sim.scenario.toml").stat().st_mode & 0o777 == public_mode()
    before = out.read_bytes()
    assert main(["simulate", str(scenario), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err and err.count("\n") == 1
    assert out.read_bytes() == before
    assert main(["simulate", str(scenario), "-o", str(out), "--force", "--json"]) == 0


def test_whatif_and_report_refuse_to_clobber(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid"
    args = ["whatif", str(_scenario(tmp_path)), "--vary", "policy.tau=2,3", "--jobs", "1",
            "--intervals", "0", "--json", "-o", str(grid)]
    assert main(args) == 0
    assert (grid / "points.json").stat().st_mode & 0o777 == public_mode()
    assert main(args) == 2 and "whatif.csv" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    capsys.readouterr()
    page = tmp_path / "r.html"
    page.write_text("mine")
    assert main(["report", str(SAMPLE), "-o", str(page), "--no-whatif"]) == 2
    assert "r.html" in capsys.readouterr().err and page.read_text() == "mine"
    assert main(["report", str(SAMPLE), "-o", str(page), "--no-whatif", "--force", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["written"] == [str(page)] and "findings" in got and "figures" in got
    assert page.stat().st_mode & 0o777 == public_mode()


def test_capture_and_validate_refuse_before_any_work(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    out.write_text("keep")
    # No model is loaded: the refusal comes first (this would take seconds otherwise).
    assert main(["capture", "--target", "nosuch-model", "-o", str(out)]) == 2
    assert "t.jsonl" in capsys.readouterr().err and out.read_text() == "keep"
    assert main(["profile", "--target", "nosuch-model", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["validate", str(SAMPLE), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_unknown_policy_key_names_the_known_ones() -> None:
    from sim.policies.library import make_policy
    from tracing.errors import SpecsimError

    with pytest.raises(SpecsimError, match=r"unknown key 'foo' \(known: .*tau"):
        make_policy("fixed:tau=4,foo=1")
    with pytest.raises(SpecsimError, match=r"unknown key 'bar'.*decay"):
        make_policy("adaptive:bar=2")


def test_simulate_trace_is_used_or_refused(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path)  # reads nothing from a trace
    assert main(["simulate", str(scenario), "--trace", str(SAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "--trace" in err and "reads nothing from a trace" in err
    uses = tmp_path / "u.toml"
    uses.write_text('[workload]\nrequests = 24\noutput_tokens = "trace"\nprompt_tokens = "trace"\n')
    assert main(["simulate", str(uses), "--trace", str(SAMPLE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 24


def test_an_empty_scenario_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sim.cli import load_base

    for text in ("", "[workload]\n[policy]\n"):
        path = tmp_path / "empty.toml"
        path.write_text(text)
        load_base(str(path))
        assert "every value is a default" in capsys.readouterr().err
    load_base(str(_scenario(tmp_path)))
    assert capsys.readouterr().err == ""


def test_unlimited_budget_is_documented() -> None:
    from sim.scenario import BudgetConfig

    assert "0 = unlimited" in (BudgetConfig.__doc__ or "")
    readme = (ROOT / "README.md").read_text()
    assert "max_verify_per_request = 0" in readme and "unlimited" in readme
    assert "SPECSIM_CACHE" in readme and "specsim cache" in readme


def test_demo_output_folder_is_ignored_by_git() -> None:
    default = _subparsers(build_parser())["demo"].get_default("out")
    ignored = (ROOT / ".gitignore").read_text().split()
    assert f"/{default}/" in ignored


def test_transformers_deprecation_warnings_are_silenced() -> None:
    from live.models import quiet_transformers

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_transformers()
        warnings.warn_explicit("old api", FutureWarning, "x.py", 1, module="transformers.generation")
        warnings.warn_explicit("mine", FutureWarning, "y.py", 1, module="analysis.report")
    assert [str(w.message) for w in seen] == ["mine"]


def test_spinner_on_a_terminal_only(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from live.models import status

    with status("loading smollm2"):
        pass
    assert capsys.readouterr().err == ""  # not a terminal: nothing drawn
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("FORCE_COLOR", "1")
    with status("loading smollm2"):
        import time

        time.sleep(0.3)
    assert "loading smollm2" in capsys.readouterr().err


def test_progress_bars_of_whatif_validate_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.validate as V
    import sim.sweep.whatif as W
    from analysis.report import ReportConfig, WhatIfConfig, build_report
    from sim import Scenario
    from tracing.io import read_trace

    ticks: list[str] = []

    class Bar:
        def __init__(self, total: int, what: str = "") -> None:
            ticks.append(f"start {total}")

        def advance(self) -> None:
            ticks.append("tick")

        def close(self) -> None:
            ticks.append("close")

    monkeypatch.setattr(W, "_Bar", Bar)
    monkeypatch.setattr(V, "_Bar", Bar)
    base = Scenario.from_dict({"workload": {"requests": 10, "output_tokens": 16}})
    W.sweep(base, {"policy.tau": [1, 2, 3]}, jobs=1, progress=True)
    assert ticks == ["start 3", "tick", "tick", "tick", "close"]
    ticks.clear()
    traces = [str(p) for p in sorted((ROOT / "traces" / "validation").glob("*.jsonl"))[:2]]
    if len(traces) == 2:
        result = V.validate(traces, progress=True)
        assert ticks.count("tick") == len(result["pairs"]) and ticks[-1] == "close"
    steps: list[str] = []
    build_report(read_trace(str(SAMPLE)), ReportConfig(whatif=WhatIfConfig(
        requests=10, taus=(2,), budget_fractions=(1.0,), hardware=("H100",), draft_scales=(1.0,),
        intervals=0)), step=steps.append)
    assert steps == ["diagnosing", "what-if sweeps", "figures"]


def test_model_cache_is_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import live.models as M

    monkeypatch.setenv("SPECSIM_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    for path, mtime in ((a, 1_000_000), (b, 2_000_000)):
        path.parent.mkdir()
        path.write_bytes(b"same weights")
        os.utime(path, (mtime, mtime))
    assert M.file_hash(a) == M.file_hash(b)  # a fresh install of the same file: same key
    b.write_bytes(b"other weights")
    assert M.file_hash(a) != M.file_hash(b)
    # The checkpoint of an already converted file is found by its hash: no conversion.
    monkeypatch.setattr(M, "bundled_gguf", lambda: a)
    ready = tmp_path / "cache" / f"smollm2-{M.file_hash(a)}"
    ready.mkdir(parents=True)
    (ready / "config.json").write_text("{}")
    assert M._bundled_checkpoint() == ready
    # An entry of the old key (size + mtime) is adopted, by hard links.
    ready.joinpath("config.json").unlink()
    ready.rmdir()
    st = a.stat()
    legacy = tmp_path / "cache" / f"smollm2-{st.st_size}-{int(st.st_mtime)}"
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    assert M._bundled_checkpoint() == ready and (legacy / "config.json").is_file()
    assert main(["cache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["name"] for m in listed["models"]} == {ready.name, legacy.name}
    assert main(["cache", "clear"]) == 0
    assert "removed 2 model(s)" in capsys.readouterr().out
    assert not ready.exists() and not legacy.exists()
