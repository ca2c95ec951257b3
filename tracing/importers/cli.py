"""``specsim import FORMAT SRC... [-o OUT] [--json] [--force]``: engine output in, trace or
scenario out."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tracing.errors import SpecsimError

if TYPE_CHECKING:  # the handlers import the importers: the parser must not load pandas
    from tracing.importers.profile import ImportResult


def importers() -> dict[str, Callable[[list[str]], ImportResult]]:
    """FORMAT -> importer (imported lazily: each is a pure function of its files)."""
    from tracing.importers.llamacpp import import_llamacpp
    from tracing.importers.llamacpp_log import import_llamacpp_log
    from tracing.importers.prometheus import import_prometheus
    from tracing.importers.sglang import import_sglang
    from tracing.importers.vllm import import_vllm
    from tracing.importers.vllm_log import import_vllm_log

    return {"vllm": import_vllm, "vllm-log": import_vllm_log, "prometheus": import_prometheus,
            "sglang": import_sglang, "llamacpp": import_llamacpp,
            "llamacpp-log": import_llamacpp_log}


FORMATS = ("vllm", "vllm-log", "prometheus", "sglang", "llamacpp", "llamacpp-log")


def run_import(fmt: str, sources: list[str]) -> ImportResult:
    """Import ``sources`` in ``fmt``."""
    table = importers()
    if fmt not in table:
        raise SpecsimError(f"unknown import format {fmt!r} (known: {', '.join(FORMATS)})")
    return table[fmt](sources)


def write_output(result: ImportResult, out: str, source: str, force: bool) -> str:
    """Write a trace (.jsonl/.parquet) or a scenario (.toml); returns what was written."""
    from tracing.importers.scenario import scenario_toml
    from tracing.io import write_trace
    from tracing.outputs import claim, publish
    from tracing.validate import validate_trace

    path = claim(out, force)
    assert path is not None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        path.write_text(scenario_toml(result, source), encoding="utf-8")
        publish(path)
        return f"{out}: scenario with the imported acceptance profile"
    if suffix not in (".jsonl", ".parquet"):
        raise SpecsimError(f"{out}: unknown output format '{suffix}' (.jsonl, .parquet or .toml)")
    if result.trace is None:
        raise SpecsimError(f"{out}: {result.format} input has no requests, only counters: "
                           "write a scenario (.toml) instead")
    validate_trace(result.trace)
    write_trace(result.trace, path)
    publish(path)
    t = result.trace
    return f"{out}: {len(t.requests)} requests, {len(t.cycles)} cycles"


def _cmd_import(args: argparse.Namespace) -> int:
    from tracing.outputs import claim, print_json

    claim(args.out, args.force)  # refused before any work
    result = run_import(args.format, args.src)
    written = write_output(result, args.out, args.src[0], args.force) if args.out else None
    if args.json:
        print_json(result.summary())
        return 0
    s = result.summary()
    rate, mal = s["draft_acceptance_rate"], s["mean_acceptance_length"]
    print(f"{args.format}: {s['requests']} requests, {s['cycles']} cycles, {s['drafts']:g} drafts")
    print(f"  draft acceptance rate {'-' if rate is None else f'{rate:.4f}'}  "
          f"mean acceptance length {'-' if mal is None else f'{mal:.4f}'}")
    by_pos = " ".join(f"{u:.3f}" for u in s["acceptance_by_position"])
    print(f"  acceptance by position: {by_pos or '-'}")
    for what, how in s["missing"].items():
        print(f"  missing {what}: {how}")
    if written:
        print(written)
    return 0


def register(sub: Any) -> None:
    """Add ``specsim import`` to the parser."""
    p = sub.add_parser("import", help="read vLLM / SGLang / llama.cpp / Prometheus output")
    p.add_argument("format", choices=FORMATS, metavar="FORMAT",
                   help="one of: " + ", ".join(FORMATS))
    p.add_argument("src", nargs="+", metavar="SRC",
                   help="input files (prometheus: the scrape before, then after)")
    from tracing.outputs import add_force, add_out

    add_out(p, metavar="TRACE|SCENARIO.toml",
            help="write a trace (.jsonl/.parquet) or a scenario (.toml)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_force(p)
    p.set_defaults(func=_cmd_import)
