"""`specsim validate`: predictions of the simulator measured against live runs (being written)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand to the ``specsim`` parser."""
    del sub
