"""The ``specsim`` command: parses flags and delegates to the packages.

Each package registers its own subcommands (``tracing.cli``, ``sim.cli``, ``live.cli``,
``analysis.commands``); this module only assembles them and turns bad input into exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tracing.errors import SpecsimError


def version() -> str:
    """The installed package's version (pyproject's when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("specsim")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specsim",
        description="Trace, simulate and diagnose speculative decoding of LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"specsim {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Imported here so that `specsim --help` stays fast and torch is never imported eagerly.
    from analysis import commands as analysis_commands
    from analysis import costs as analysis_costs
    from analysis import tune_cli as analysis_tune
    from analysis import validate as analysis_validate
    from live import cli as live_cli
    from live import engines as live_engines
    from live import serve_cli
    from sim import cli as sim_cli
    from tracing import cli as tracing_cli

    for module in (live_cli, serve_cli, live_engines, tracing_cli, sim_cli, analysis_commands,
                   analysis_validate, analysis_costs, analysis_tune):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpecsimError as exc:
        print(f"specsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("specsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
