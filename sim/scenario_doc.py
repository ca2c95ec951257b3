"""The scenario key reference, generated from the scenario dataclasses: ``docs/scenario.md``.

Keys, types, defaults, ranges and choices come from :data:`sim.scenario_sections.SECTIONS` (and, for
``[policy]``, from each policy's constructor); only the one-line meaning of each key is written
here, in :data:`DOCS`. ``tests/test_scenario_doc.py`` fails when a key has no line here, when a
line names no key, and when ``docs/scenario.md`` is not what this module writes. Regenerate::

    python -m sim.scenario_doc            # writes docs/scenario.md
    python -m sim.scenario_doc --check    # exit 1 if docs/scenario.md is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "docs" / "scenario.md"
TOKENS = ('an int, "trace" (the trace\'s own lengths, in order), "file" (the arrivals file\'s), or '
          'a distribution table: {dist = "lognormal", mean, sigma, min, max} | {dist = "uniform", '
          'low, high} | {dist = "choice", values = [...], weights = [...]}')

DOCS: dict[str, str] = {
    # [workload]
    "workload.requests": 'requests simulated; with arrival = "file", 0 (the default there) runs '
                         "every request of the file from start_s on",
    "workload.prompt_tokens": "prompt length of each request: " + TOKENS,
    "workload.output_tokens": "output length of each request (same forms as prompt_tokens)",
    "workload.arrival": '"closed" (the next request when one ends, concurrency users), "poisson" '
                        '(rate_per_s), "trace" (the trace\'s arrival times) or "file" '
                        "(arrivals_file)",
    "workload.rate_per_s": 'requests per second of arrival = "poisson"',
    "workload.arrivals_file": 'arrival = "file": an Azure LLM trace CSV, a Mooncake JSONL or a '
                              "specsim trace (docs/formats.md); relative to the scenario file",
    "workload.rate_scale": "the arrivals file's gaps divided by this (2 = twice the load)",
    "workload.start_s": "where in the arrivals file to start, seconds",
    "workload.max_prompt_tokens": "cap on a file's prompt lengths (0 = none)",
    "workload.max_output_tokens": "cap on a file's output lengths (0 = none)",
    "workload.concurrency": 'users of a closed workload (requests in flight)',
    "workload.seed": "seed of every random draw of the run",
    # [acceptance]
    "acceptance.model": '"iid" (each drafted token accepted with alpha), "positional" (alpha '
                        'by position) or "trace" (hazards fitted from the trace\'s cycles)',
    "acceptance.alpha": "acceptance probability: one number (iid) or one per draft position "
                        "(positional)",
    "acceptance.context_buckets": '"trace" only: context-length edges; hazards fitted per '
                                  "bucket",
    "acceptance.draft_confidence": "Beta concentration of per-request acceptance around alpha "
                                   "(lower = requests differ more)",
    "acceptance.per_request": '"trace" only: each replayed request keeps its own hazards',
    "acceptance.replay": '"trace" only: replay the recorded depths first (implies per_request)',
    # [latency]
    "latency.model": '"fixed" (the numbers below) or "trace" (fitted from the trace by least '
                     "squares)",
    "latency.target_step_s": "seconds of one target pass scoring one token",
    "latency.verify_slope_s": "extra seconds of a verify pass per scored token beyond the first (another row's tokens too)",
    "latency.draft_step_s": "seconds of one draft step (one proposed token)",
    "latency.prefill_s_per_token": "prefill seconds per prompt token",
    "latency.overhead_s": "fixed seconds per cycle outside the passes (sampling, host work)",
    "latency.context_s_per_token": "extra seconds of a pass per token of context",
    "latency.verify_table_s": "measured single-stream verify seconds by draft length (index = "
                              "tau; 0 = not measured, the line is used)",
    "latency.batch_verify_table_s": "measured batched verify seconds [b - 1][n - 1]: b rows "
                                    "scoring n tokens each ([] = the line and the ridge)",
    "latency.ridge_tokens": "tokens a batched pass scores at the cost of one (0 = from "
                            "hardware, else flat)",
    "latency.hardware": "run on this catalog device (key, alias or exact name; `specsim "
                        "whatif --vary latency.hardware=H100,L4`)",
    "latency.source_hardware": "the catalog device the costs above were measured on",
    "latency.profile": "a device profile: a `specsim profile` file, a trace with a verify "
                       "profile, or a target-only trace of the device",
    "latency.fitted_on": "the device string of the trace these numbers were fitted on",
    "latency.dtype": "on another device: fp32 | bf16 | fp16 | int8 | int4 (empty: its default)",
    "latency.target_params": "target parameter count (moving costs to another device needs it)",
    "latency.draft_params": "draft parameter count (its share of a shared prefill, its cost "
                            "elsewhere)",
    "latency.replay_speed": "with a trace on its own device: each request runs at the speed its "
                            "trace request was measured at",
    "latency.speed_cv": "request-to-request spread of speed (coefficient of variation)",
    "latency.speed_model": '"lognormal" (mean 1, speed_cv) or "empirical" (the trace\'s '
                           "measured request speeds, resampled)",
    # [policy]
    "policy.name": "the draft-length policy (the sections below list each one's keys)",
    "policy.tau": "tokens drafted per cycle (fixed), the start (adaptive, goodput) or the first "
                  "schedule step (heuristic)",
    "policy.tau_by_batch": 'fixed only: tau by batch size, "1:4,4:2,8:0" (the tau of the largest '
                           "threshold <= the batch size)",
    "policy.max_tau": "the longest draft the policy may ask for",
    "policy.decay": "forgetting factor of the online estimates (about the last 1 / (1 - decay) "
                    "cycles count)",
    "policy.probe_every": "every this many cycles, draft one more than the best to keep "
                          "learning",
    "policy.budget": "adaptive only: verify passes per request it plans for (0 = unlimited)",
    "policy.threshold": "confidence only: stop drafting when the draft's probability falls "
                        "below this",
    "policy.prior_weight": "goodput only: how many observations a request's own acceptance "
                           "needs to outweigh the run's pooled one",
    # [budget]
    "budget.max_verify_per_request": "verify passes one request may use (0 = unlimited); past "
                                     "it the request is truncated",
    "budget.mean_verify_per_request": "mean verify passes per request the policy keeps to (0 = "
                                      "unlimited)",
    # [server]
    "server.max_batch": "1 = single stream; more = continuous batching up to this many rows",
    # [draft]
    "draft.name": "a label for another draft model",
    "draft.model": "another draft named from the built-in table (`sim/models/shapes.py`): its step "
                   "priced by the cost model on the device",
    "draft.n": "an n-gram draft of another size, replayed exactly over a greedy n-gram trace's "
               "recorded tokens (`capture --record-tokens`)",
    "acceptance.mean_accepted_length": "vLLM's mean acceptance length (1 + accepted / drafts) "
                                       "at `tau`: solved to the i.i.d. alpha (printed)",
    "acceptance.accepted_per_draft": "accepted tokens per draft at `tau`: solved to the i.i.d. "
                                     "alpha (printed)",
    "acceptance.tau": "the draft length that `mean_accepted_length` / `accepted_per_draft` "
                      "were measured at",
    "acceptance.by_context": "context-dependent acceptance: `[[from_tokens, alpha], ...]`, "
                             "sorted by `from_tokens`, the first from 0",
    "latency.stack": "the software stack a modelled device runs: `eager` (transformers) or "
                     "`cuda-graph` (an engine such as vLLM); a catalog setting",
    "target.model": "the target from the built-in table of open architectures (`sim/models/shapes.py`, "
                    "e.g. `llama-3.1-8b`)",
    "target.config": "a transformers `config.json` (or a `specsim profile` file) giving the "
                     "target's shape; relative to the scenario's folder",
    "target.layers": "the target's layers (with the other geometry keys)",
    "target.hidden": "the target's hidden size",
    "target.intermediate": "the target's MLP intermediate size",
    "target.heads": "the target's attention heads",
    "target.kv_heads": "the target's key/value heads (GQA)",
    "target.head_dim": "the target's head dimension",
    "target.vocab": "the target's vocabulary size",
    "target.params": "the target's parameter count (alone: refused unless `shape = \"assumed\"`)",
    "target.tied": "input and output embeddings tied",
    "target.tp": "tensor parallelism: GPUs of the one device kind the weights and KV are split "
                 "over; each pass then pays two all-reduces a layer over the catalog's link "
                 "(a CPU device: 1 only)",
    "target.shape": "`\"assumed\"` lets a parameter count alone guess the shape (every output "
                    "then says ASSUMED)",
    "draft.step_s": "its seconds per draft step (unset: from params/layers or unchanged)",
    "draft.params": "its parameter count: its step cost from the cost model on the device",
    "draft.layers": "its depth: with params or hidden, its step cost from the cost model",
    "draft.hidden": "its hidden size (with layers)",
    "draft.alpha": "its acceptance probability (unset: the current acceptance)",
    "draft.acceptance_scale": "the current acceptance scaled by this (a worse < 1 < better draft)",
    "draft.no_proposal_prob": "P(the draft proposes nothing in a cycle), e.g. no n-gram match",
    "draft.proposal_caps": "P(the draft proposes at most k tokens), k = 1..len, among cycles "
                           "that propose something",
    # [sim]
    "sim.replications": "seeds run; figures get a confidence interval when > 1",
    "sim.baseline": "also simulate target-only, for speedup_vs_target_only",
}


def policy_keys() -> dict[str, dict[str, Any]]:
    """Policy name -> its keys and their defaults (from its constructor)."""
    from sim.policies.library import POLICIES
    from sim.policies.user import is_user_policy

    out = {}
    for name, cls in sorted(POLICIES.items()):
        if is_user_policy(name):  # a user's FILE.py:Class loaded in this process: not ours
            continue
        params = inspect.signature(cls.__init__).parameters
        out[name] = {k: p.default for k, p in params.items() if k != "self"}
    return out


def scenario_keys() -> list[str]:
    """Every documented key a scenario takes, ``section.key``."""
    from sim.scenario_sections import SECTIONS

    out = []
    for section, cls in SECTIONS.items():
        if section == "policy":
            out.append("policy.name")
            out += sorted({f"policy.{k}" for ks in policy_keys().values() for k in ks})
        else:
            out += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return out


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    return _toml(value)


def _toml(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _allowed(meta: Any) -> str:
    if "choices" in meta:
        return " \\| ".join(f'"{c}"' for c in meta["choices"])
    lo, hi = meta.get("range", (None, None))
    if lo is None and hi is None:
        return ""
    return f"[{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"


def _type(f: dataclasses.Field[Any]) -> str:
    t = str(f.type).replace("TokenSpec", "tokens").replace("|", "or")
    return t


def render() -> str:
    """docs/scenario.md, whole."""
    from sim.scenario_sections import SECTIONS

    lines = [
        "# Scenario keys",
        "",
        "<!-- generated by `python -m sim.scenario_doc` from sim/scenario_sections.py; do not edit -->",
        "",
        "A scenario is a TOML file of the sections below (`specsim simulate FILE.toml`, "
        "`specsim whatif FILE.toml --vary SECTION.KEY=V1,V2`). Every key is optional; an unknown "
        "section or key, or a value out of range, is one error line naming it (exit 2). A value "
        'of "trace" takes the figure from the trace given with `--trace`; `specsim simulate '
        "TRACE` replays a trace's own configuration.",
        "",
    ]
    for section, cls in SECTIONS.items():
        doc = (inspect.getdoc(cls) or "").split("\n")[0]
        lines += [f"## [{section}]", "", doc, ""]
        if section == "policy":
            lines += _policy_table()
            continue
        lines += ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            lines.append(f"| `{f.name}` | {_type(f)} | {_default(f)} | {_allowed(f.metadata)} | "
                         f"{_cell(DOCS.get(key, '**UNDOCUMENTED**'))} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text in a Markdown table cell: its ``|`` escaped."""
    return text.replace("|", "\\|")


def _policy_table() -> list[str]:
    policies = policy_keys()
    lines = [f"`name`: {DOCS['policy.name']}; one of "
             + ", ".join(f"`{n}`" for n in policies) + " (default `fixed`, tau 4).", "",
             "| key | policies (default) | meaning |", "|---|---|---|"]
    all_keys = sorted({k for ks in policies.values() for k in ks})
    for key in all_keys:
        where = ", ".join(f"{n} ({_toml(ks[key])})" for n, ks in policies.items() if key in ks)
        lines.append(f"| `{key}` | {where} | {_cell(DOCS.get('policy.' + key, '**UNDOCUMENTED**'))} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.scenario_doc", description=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/scenario.md is stale")
    ap.add_argument("--out", default=str(OUT), help="where to write (default: docs/scenario.md)")
    args = ap.parse_args(argv)
    text = render()
    missing = [k for k in scenario_keys() if k not in DOCS]
    if missing:
        print(f"sim.scenario_doc: keys without a doc line in DOCS: {', '.join(missing)}",
              file=sys.stderr)
        return 1
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            print(f"{out}: stale; run `python -m sim.scenario_doc`", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
