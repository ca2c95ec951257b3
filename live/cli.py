"""Subcommands of this package (registered by analysis.cli)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add this package's subcommands to the ``specsim`` parser."""
    del sub


__all__ = ["argparse", "register"]
