"""Output files of every command: never overwritten without ``--force``, readable by all (0644).

Each writing command calls :func:`claim` on its output paths before doing any work (so a run is
refused at once, not after minutes of simulation) and :func:`publish` on each file it wrote.
:func:`add_out` and :func:`add_force` give every command the same ``-o/--out`` and ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError


def claim(path: str | Path | None, force: bool, *, flag: str = "--out") -> Path | None:
    """``path`` if it may be written: refused (exit 2, naming the file) when it exists and
    ``force`` is not set; a folder in the way is refused whatever ``force`` says."""
    if path is None:
        return None
    p = Path(path)
    if p.exists() and p.is_dir() and p.suffix:
        raise SpecsimError(f"{p}: a folder is in the way of the output file ({flag})")
    if p.is_file() and not force:
        raise SpecsimError(f"{p}: exists (use --force to overwrite; {flag})")
    return p


def public_mode() -> int:
    """0666 less the process umask (0644 under the usual umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(path: str | Path) -> None:
    """Give a written file the mode a plainly created one has (``mkstemp`` makes 0600)."""
    with contextlib.suppress(OSError):  # not ours to change: the content is written all the same
        os.chmod(path, public_mode())


def add_out(p: argparse.ArgumentParser, *, metavar: str, help: str, **kw: object) -> None:
    """The one ``-o/--out`` option every writing command takes."""
    p.add_argument("-o", "--out", metavar=metavar, help=help, **kw)  # type: ignore[arg-type]


def add_force(p: argparse.ArgumentParser) -> None:
    """``--force``: overwrite outputs that already exist."""
    p.add_argument("--force", action="store_true", help="overwrite outputs that already exist")


def plain(obj: Any) -> Any:
    """numpy scalars/arrays -> Python; NaN/inf -> None (JSON has no NaN)."""
    import numpy as np  # here, not at import: the parser imports this module

    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain(v) for v in obj.tolist()]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (numpy values allowed; NaN becomes null): every
    command's ``--json``."""
    sys.stdout.write(json.dumps(plain(obj), allow_nan=False) + "\n")


__all__ = ["add_force", "add_out", "claim", "plain", "print_json", "public_mode", "publish"]
