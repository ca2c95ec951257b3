"""A complete, commented scenario TOML from an imported acceptance profile.

``[acceptance] model = "positional"`` with the profile's conditional hazards; everything the
input did not say (costs, lengths, arrivals) is the simulator's default and its comment says so.
Written as text here -- ``tracing`` depends on nothing else of specsim -- and read back by
``specsim simulate`` like any scenario.
"""

from __future__ import annotations

import math

from tracing.errors import SpecsimError
from tracing.importers.profile import ImportResult


def _num(x: float) -> str:
    return repr(round(float(x), 6))


def scenario_toml(result: ImportResult, source: str) -> str:
    """The scenario text; a SpecsimError when the input had no drafts to take acceptance from."""
    prof = result.profile
    hazards = prof.hazards()
    if not prof.drafts or not hazards:
        raise SpecsimError(f"{source}: no speculative-decoding counts in the input (no drafts): "
                           "nothing to build an acceptance profile from")
    k = prof.num_spec_tokens or len(hazards)
    trace = result.trace
    prompt = output = None
    if trace is not None and len(trace.requests):
        prompt = max(1, round(float(trace.requests["prompt_tokens"].mean())))
        output = max(1, round(float(trace.requests["output_tokens"].mean())))
    rate = prof.draft_acceptance_rate or 0.0
    mal = prof.mean_acceptance_length or 1.0
    by_pos = ", ".join(f"{u:.3f}" for u in prof.acceptance_by_position)
    lines = [
        f"# specsim scenario imported from {result.format} ({source}).",
        f"# The input's acceptance: draft acceptance rate {rate:.4f}, mean acceptance length "
        f"{mal:.4f}",
        f"# over {prof.drafts:g} drafts ({prof.draft_tokens:g} drafted, {prof.accepted_tokens:g} "
        "accepted tokens);",
        f"# per-position acceptance (vLLM's, unconditional): {by_pos}.",
        "# Everything else below is a default, not a measurement: set [latency] (or a hardware)",
        "# and [workload] to your deployment before trusting any latency figure.",
        "",
        "[workload]",
        "requests = 200           # default",
        (f"prompt_tokens = {prompt}       # the input's mean prompt length" if prompt
         else "prompt_tokens = 128       # default: the input has no request lengths"),
        (f"output_tokens = {output}       # the input's mean output length" if output
         else "output_tokens = 256       # default: the input has no request lengths"),
        'arrival = "closed"       # default: one request after another',
        "seed = 0",
        "",
        "[acceptance]",
        'model = "positional"',
        "# conditional acceptance per position, h_i = P(accepted >= i | accepted >= i-1),",
        "# from the input's per-position rates; the last value carries beyond the list",
        "alpha = [" + ", ".join(_num(h) for h in hazards) + "]",
        "",
        "[latency]",
        "# not in the input: the simulator's defaults (seconds). Replace with measured costs or",
        '# hardware = "H100" (see specsim whatif --vary latency.hardware=...)',
        "target_step_s = 0.020",
        "verify_slope_s = 0.0",
        "draft_step_s = 0.002",
        "prefill_s_per_token = 0.0",
        "",
        "[policy]",
        f'name = "fixed"          # the input\'s draft length (num_speculative_tokens = {k})',
        f"tau = {k}",
        "",
        "[budget]",
        "max_verify_per_request = 0   # unlimited",
        "",
        "[server]",
        "max_batch = 1            # single stream (the input does not give the batch)",
        "",
    ]
    for h in hazards:
        if not math.isfinite(h):
            raise SpecsimError(f"{source}: acceptance rates are not finite")
    return "\n".join(lines)
