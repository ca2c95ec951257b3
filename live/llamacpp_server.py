"""Starting and stopping llama.cpp's ``llama-server`` (built by ``specsim engines install``).

:func:`server_command` is the command line the tests and the recording scripts run::

    llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf --host 127.0.0.1 --port PORT --metrics
                 -t 1 -np 1 -c 4096 --no-repack --spec-type ngram-simple
                 --spec-ngram-simple-size-n 3 --spec-draft-n-max 4
                 --spec-ngram-simple-size-m 4 [extra flags]

``--no-repack``: on this machine's CPU (it advertises AMX) the native build's AMX weight
buffers crash the first forward pass (SIGSEGV in ``ggml_backend_amx_mul_mat``); without
repacking they are not used (the Q4_1 model has no other repacked kernel to lose).

:func:`running_server` starts it on a free loopback port, waits for ``/health`` to answer 200
(bounded), yields the base URL and log path, and stops it (SIGTERM, then SIGKILL after a grace
period) however the block ends.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracing.errors import SpecsimError

NGRAM_SIMPLE = ("--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3")
# the draft-length flag of each n-gram drafter: in this llama.cpp an n-gram drafter's draft
# length is its own size-m (default 48); --spec-draft-n-max applies to draft models only
DRAFT_LENGTH = {"ngram-simple": "--spec-ngram-simple-size-m",
                "ngram-map-k": "--spec-ngram-map-k-size-m",
                "ngram-map-k4v": "--spec-ngram-map-k4v-size-m", "ngram-mod": "--spec-ngram-mod-n-max"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(port: int, *, slots: int = 1, threads: int = 1, draft_max: int | None = 4,
                   spec: Sequence[str] = NGRAM_SIMPLE, extra: Sequence[str] = (),
                   ctx_per_slot: int = 4096) -> list[str]:
    """The llama-server command line (module docstring); ``draft_max=None`` leaves it out."""
    from live.engines import require_llama_server
    from live.models import bundled_gguf

    cmd = [str(require_llama_server()), "-m", str(bundled_gguf()), "--host", "127.0.0.1",
           "--port", str(port), "--metrics", "-t", str(threads), "-np", str(slots),
           "-c", str(ctx_per_slot * slots), "--no-repack", *spec]
    if draft_max is not None:
        cmd += ["--spec-draft-n-max", str(draft_max)]
        kind = spec[list(spec).index("--spec-type") + 1] if "--spec-type" in spec else ""
        if kind in DRAFT_LENGTH:
            cmd += [DRAFT_LENGTH[kind], str(draft_max)]
    return cmd + list(extra)


@dataclass
class RunningServer:
    """A started llama-server: its base URL (``http://127.0.0.1:PORT``) and its log file."""

    url: str
    port: int
    log: Path
    command: list[str]


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_server(log: Path, *, startup_s: float = 120.0, nice: int = 0,
                   **kwargs: object) -> Iterator[RunningServer]:
    """Start llama-server (``server_command(**kwargs)``), yield it once healthy, stop it."""
    port = free_port()
    cmd = server_command(port, **kwargs)  # type: ignore[arg-type]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    url = f"http://127.0.0.1:{port}"
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + startup_s
            while not _healthy(url):
                if proc.poll() is not None:
                    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-3:]
                    raise SpecsimError(f"llama-server exited ({proc.returncode}) on start: "
                                       + " | ".join(tail))
                if time.monotonic() > deadline:
                    raise SpecsimError(f"llama-server not healthy after {startup_s:.0f} s "
                                       f"(log: {log})")
                time.sleep(0.2)
            yield RunningServer(url, port, log, cmd)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
