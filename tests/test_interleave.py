"""live.interleave and ``specsim capture --out-dir``: several configurations, one target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main
from live.capture import CaptureConfig, LiveRun
from live.interleave import capture_interleaved, plan_configs, trace_name
from live.models import LoadedModel
from tracing import read_trace
from tracing.errors import SpecsimError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _base(tiny_dir: Path, out: Path, **kw: Any) -> CaptureConfig:
    settings: dict[str, Any] = {"prompts": "builtin:edit", "limit": 3, "max_new_tokens": 8,
                                "warmup_tokens": 2, "profile_tokens": 3}
    settings.update(kw)
    return CaptureConfig(target=str(tiny_dir), out=str(out / "x.jsonl"), **settings)


def test_plan_names_every_draft_with_every_policy(tmp_path: Path) -> None:
    base = _base(Path("t"), tmp_path)
    configs = plan_configs(base, ["ngram", "none", "ngram"], ["fixed:tau=2", "target_only"],
                           tmp_path)
    got = [(c.draft, c.policy, Path(c.out).name) for c in configs]
    assert got == [("ngram", "fixed:tau=2", "ngram_fixed_tau_2.jsonl"),
                   ("ngram", "target_only", "ngram_target_only.jsonl"),
                   ("none", "fixed:tau=2", "none_fixed_tau_2.jsonl"),
                   ("none", "target_only", "none_target_only.jsonl")]
    assert all(c.prompts == base.prompts and c.limit == 3 for c in configs)
    assert trace_name("/models/draft-135m/", "adaptive:max_tau=8", ".parquet") \
        == "draft-135m_adaptive_max_tau_8.parquet"
    (tmp_path / "none_target_only.jsonl").write_text("")
    with pytest.raises(SpecsimError, match=r"none_target_only\.jsonl: exists"):
        plan_configs(base, ["none"], ["target_only"], tmp_path)
    assert len(plan_configs(base, ["none"], ["target_only"], tmp_path, force=True)) == 1
    with pytest.raises(SpecsimError, match="share a trace name"):
        plan_configs(base, ["ngram:n=2", "ngram_n=2"], ["fixed"], tmp_path)


def test_interleaved_capture_rotates_and_keeps_own_timelines(
        tiny_dir: Path, tiny: LoadedModel, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[tuple[str, int]] = []
    real = LiveRun.run_request

    def logged(self: LiveRun, rid: int, advance: Any = None) -> bool:
        order.append((Path(self.config.out).name, rid))
        return real(self, rid, advance)

    monkeypatch.setattr(LiveRun, "run_request", logged)
    configs = plan_configs(_base(tiny_dir, tmp_path), ["ngram:n=2", "none"],
                           ["fixed:tau=2"], tmp_path)
    results = capture_interleaved(configs, target=tiny, progress=False)
    a, b = (Path(c.out).name for c in configs)
    # prompt by prompt, the order rotating by one each prompt
    assert order == [(a, 0), (b, 0), (b, 1), (a, 1), (a, 2), (b, 2)]
    traces = [read_trace(r.path) for r in results]  # each validates
    profiles = [t.meta.extra["verify_profile_s"] for t in traces]
    assert profiles[0] == profiles[1] and len(profiles[0]["seconds"]) == 3  # profiled once
    assert traces[0].meta.extra["interleaved_with"] == [b]
    assert traces[1].meta.extra["interleaved_with"] == [a]
    for result, trace in zip(results, traces, strict=True):
        r = trace.requests
        assert (result.requests, result.interrupted) == (3, False)
        assert r["start_s"].to_numpy()[1:] == pytest.approx(r["end_s"].to_numpy()[:-1],
                                                            abs=0.02)
        assert result.wall_s == pytest.approx(float((r["end_s"] - r["start_s"]).sum()),
                                              abs=0.05)
    # greedy: the same text under every configuration
    assert traces[0].requests["output_text"].tolist() == traces[1].requests["output_text"].tolist()
    assert (traces[1].cycles["tau"] == 0).all() and (traces[0].cycles["tau"] > 0).any()


def test_cli_out_dir_then_refusals(tiny_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    common = ["capture", "--target", str(tiny_dir), "--prompts", "builtin:edit", "--limit", "2",
              "--max-new-tokens", "5", "--warmup-tokens", "0", "--profile-tokens", "0",
              "--no-progress"]
    out = tmp_path / "ab"
    run = [*common, "--draft", "ngram", "--policy", "fixed:tau=2", "--policy", "target_only",
           "--out-dir", str(out)]
    assert main(run) == 0
    printed = capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ngram_fixed_tau_2.jsonl", "ngram_target_only.jsonl"]
    assert all(name in printed for name in names)
    assert {read_trace(out / n).meta.policy for n in names} == {"fixed", "target_only"}
    for bad, says in (
        (run, "exists (use --force"),  # a second run refuses to overwrite
        ([*common, "--policy", "fixed", "--policy", "heuristic", "--out",
          str(tmp_path / "one.jsonl")], "need --out-dir"),
        ([*common, "--out", str(out / names[0])], "exists (use --force"),
    ):
        assert main(bad) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("specsim: error: ") and says in err[0]
    before = (out / names[0]).stat().st_mtime_ns
    assert main([*run, "--force"]) == 0
    assert (out / names[0]).stat().st_mtime_ns != before
