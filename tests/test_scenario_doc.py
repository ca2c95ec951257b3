"""docs/scenario.md is generated from the scenario dataclasses and must not drift (issue 24):
every key has its doc line, no doc line names a key that is gone, the file is current."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import sim.scenario as S
from sim import scenario_doc


def test_every_key_has_a_doc_line_and_every_line_a_key() -> None:
    keys = scenario_doc.scenario_keys()
    assert "workload.arrivals_file" in keys and "policy.tau_by_batch" in keys
    assert [k for k in keys if k not in scenario_doc.DOCS] == []
    assert [k for k in scenario_doc.DOCS if k not in keys] == []


def test_docs_scenario_md_is_current() -> None:
    assert scenario_doc.OUT.read_text(encoding="utf-8") == scenario_doc.render(), (
        "docs/scenario.md is stale: run `python -m sim.scenario_doc`")
    assert scenario_doc.main(["--check"]) == 0
    assert "**UNDOCUMENTED**" not in scenario_doc.render()


def test_a_key_added_without_its_doc_line_fails(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    @dataclasses.dataclass(frozen=True)
    class Server(S.ServerConfig):
        max_queue: int = 64  # a new key, no line in DOCS

    monkeypatch.setitem(S.SECTIONS, "server", Server)
    assert "server.max_queue" in scenario_doc.scenario_keys()
    assert "| `max_queue` | int | 64 |  | **UNDOCUMENTED** |" in scenario_doc.render()
    assert scenario_doc.main(["--check"]) == 1
    assert "server.max_queue" in capsys.readouterr().err


def test_a_stale_file_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scenario.md"
    out.write_text(scenario_doc.render().replace("seed of every random draw", "seed"))
    assert scenario_doc.main(["--check", "--out", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
    assert scenario_doc.main(["--out", str(out)]) == 0
    assert scenario_doc.main(["--check", "--out", str(out)]) == 0
