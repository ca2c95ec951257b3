"""``specsim profile`` on the device at hand, with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_models import save_tiny_model

from live.cli import parse_counts
from sim.models.deviceprofile import from_dict
from tracing.errors import SpecsimError


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "m", layers=3)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from analysis.cli import main

    code = main(["profile", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_measures_the_grid_and_fits_it(tiny_dir: Path, tmp_path: Path,
                                               one_torch_thread: None) -> None:
    from live.models import load_model
    from live.profile import profile_device

    target = load_model(str(tiny_dir), device="cpu")
    from live.drafts import shallow_copy

    out = profile_device(target, draft=shallow_copy(target.model, 1), draft_name="layerskip",
                         batches=[1, 2], tokens=[1, 3], contexts=[0, 8], rounds=2)
    prof = from_dict(out, "profile")  # what `[latency] profile` reads back
    shapes = {(p["role"], p["batch"], p["tokens"], p["context"]) for p in prof.points}
    assert shapes == {("target", b, n, c) for b in (1, 2) for n in (1, 3) for c in (0, 8)} | {
        ("draft", b, 1, c) for b in (1, 2) for c in (0, 8)}
    assert all(p["seconds"] > 0 for p in prof.points)
    assert prof.device == "cpu" and prof.dtype == "float32"
    assert prof.target_config["num_hidden_layers"] == 3
    assert prof.target_params == target.n_params and out["draft_params"] < target.n_params
    assert {"python", "torch", "transformers"} <= set(prof.software)
    assert set(out["fit"]) == {"target", "draft"} and out["rounds"] == 2


def test_cli_writes_a_profile_and_refuses_bad_input(tiny_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   one_torch_thread: None) -> None:
    out = tmp_path / "p.json"
    code, stdout, err = _cli(capsys, "--target", str(tiny_dir), "--batch", "1", "--tokens",
                             "1-2", "--context", "4", "--rounds", "1", "--device", "cpu",
                             "--no-progress", "--out", str(out))
    assert code == 0, err
    assert json.loads(out.read_text())["device"] == "cpu" and "fixed" in stdout
    for bad in (["--out", str(out)],  # exists, no --force
                ["--draft", "ngram", "--out", str(tmp_path / "n.json")],
                ["--tokens", "3-1", "--out", str(tmp_path / "t.json")],
                ["--batch", "x", "--out", str(tmp_path / "b.json")],
                ["--context", "100000", "--out", str(tmp_path / "c.json")]):
        code, _, err = _cli(capsys, "--target", str(tiny_dir), "--device", "cpu", *bad)
        assert code == 2, (bad, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("specsim: error: "), err


def test_parse_counts() -> None:
    assert parse_counts("1-4,8", "--tokens") == [1, 2, 3, 4, 8]
    assert parse_counts("128, 1024", "--context", low=0) == [128, 1024]
    with pytest.raises(SpecsimError, match="--batch"):
        parse_counts("0", "--batch")
