"""`specsim trace ...` subcommands (being written)."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def _default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.bool_):
        return bool(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (numpy scalars and arrays allowed)."""
    sys.stdout.write(json.dumps(obj, default=_default, allow_nan=False) + "\n")


def register(sub: Any) -> None:
    """Add the ``trace`` subcommands to the ``specsim`` parser."""
    del sub
