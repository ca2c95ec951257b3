"""Issue 26 part 2: a draft of another size predicted from a capture and checked against live
captures of it (traces/validation/draft/, interleaved CPU runs of the bundled model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.validate import validate
from sim.calibrate.draftreplay import draft_spec, ngram_cycles, replay_ngram
from tracing.errors import SpecsimError
from tracing.io import read_trace

DIR = Path(__file__).resolve().parents[1] / "traces" / "validation" / "draft"
COLS = ["request_id", "tau", "accepted", "emitted", "context_tokens"]


def _path(workload: str, draft: str) -> str:
    return str(DIR / f"{workload}_{draft}_fixed_tau_4.jsonl")


@pytest.mark.parametrize("a", ["ngram_n_1", "ngram_n_2", "ngram_n_4"])
@pytest.mark.parametrize("b", [1, 2, 4])
def test_ngram_replay_reproduces_the_capture_of_another_n_exactly(a: str, b: int) -> None:
    replayed = replay_ngram(read_trace(_path("edit", a)), _path("edit", a), b)
    measured = read_trace(_path("edit", f"ngram_n_{b}")).cycles
    got = replayed.cycles[COLS].to_numpy()
    want = measured.sort_values(["request_id", "cycle"])[COLS].to_numpy()
    assert got.shape == want.shape and (got == want).all()
    assert replayed.meta.draft_model == f"ngram:n={b}"


def test_ngram_cycles_by_hand() -> None:
    # prompt 1 2 3 1 2 | output 3 1 9 9: after "1 2" the lookup proposes "3 1 2 3"[:tau]
    cycles = ngram_cycles([1, 2, 3, 1, 2], [3, 1, 9, 9], n=2, tau=2)
    assert cycles[0] == (2, 2, 3, 5)  # proposes 3 1, both accepted, + the target's 9
    assert cycles[-1][2] == 1 and sum(c[2] for c in cycles) == 4


def test_replay_needs_the_token_file(tmp_path: Path) -> None:
    src = _path("edit", "ngram_n_2")
    copy = tmp_path / "t.jsonl"
    shutil.copy(src, copy)
    with pytest.raises(SpecsimError, match=r"t\.jsonl\.tokens\.ndjson: no token ids"):
        replay_ngram(read_trace(str(copy)), str(copy), 4)


def test_draft_spec_defaults() -> None:
    assert draft_spec("ngram") == ("ngram", 3)
    assert draft_spec("layerskip:layers=12") == ("layerskip", 12)
    assert draft_spec("HuggingFaceTB/SmolLM2-360M") is None


def test_validate_has_a_draft_kind_for_ngram_sizes() -> None:
    report = validate([_path("edit", "ngram_n_1"), _path("edit", "ngram_n_4")])
    kinds = {p["kind"] for p in report["pairs"]}
    assert kinds == {"replay", "draft"}  # was "other draft", extrapolated
    for p in report["pairs"]:
        assert p["error"]["tokens_per_cycle"] == pytest.approx(0.0, abs=1e-9)  # exact replay
        assert not p["extrapolated"]
    assert report["summary"]["draft"]["goal"] == 0.10


def test_validate_draft_kind_for_layerskip_depths_prices_the_depth() -> None:
    shallow, deep = _path("chat", "layerskip_layers_4"), _path("chat", "layerskip_layers_12")
    report = validate([shallow, deep])
    pair = {(p["a"], p["b"]): p for p in report["pairs"]}
    assert pair[(shallow, deep)]["kind"] == "draft"
    # a deeper draft costs more per step: B predicted slower than A replayed
    assert (pair[(shallow, deep)]["predicted"]["p50_s"]
            > 1.1 * pair[(shallow, shallow)]["predicted"]["p50_s"])


def test_whatif_draft_n_replays_the_other_size() -> None:
    """``--vary draft.n=4`` on the n=1 capture: the n=4 capture's cycles, A's costs."""
    from sim.calibrate import scenario_from_trace
    from sim.engine.core import simulate
    from tracing.summary import summarize

    path = _path("edit", "ngram_n_1")
    trace = read_trace(path)
    base = scenario_from_trace(trace)
    got = simulate(base.with_overrides({"draft.n": 4}), trace).figures
    want = summarize(read_trace(_path("edit", "ngram_n_4")))
    assert got["tokens_per_cycle"] == pytest.approx(float(want["tokens_per_cycle"]), rel=1e-9)
    own = simulate(base, trace).figures
    assert got["tokens_per_cycle"] > own["tokens_per_cycle"]  # n=1 matched worse on edit


def test_whatif_draft_n_refuses_a_trace_that_cannot_replay(capsys) -> None:  # type: ignore[no-untyped-def]
    from analysis.cli import main

    code = main(["whatif", _path("chat", "layerskip_layers_4"), "--vary", "draft.n=2",
                 "--intervals", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "[draft] n = 2: the trace's draft is 'layerskip:layers=4', not an n-gram" in err


def test_ngram_cycles_clip_by_max_new_tokens_not_by_an_eos_end() -> None:
    """The decoder clips tau by the tokens max_new_tokens leaves, not knowing that an EOS will
    end the output sooner: an output [3, 1, EOS] of a 10-token limit drafts 3, not 2."""
    assert ngram_cycles([1, 2, 3, 1, 2], [3, 1, 9], n=2, tau=4, max_new=10) == [(3, 2, 3, 5)]
    assert ngram_cycles([1, 2, 3, 1, 2], [3, 1, 9], n=2, tau=4) == [(2, 2, 3, 5)]
