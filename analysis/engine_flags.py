"""What a finding's change is called in the engine that ran the trace (llama.cpp so far).

A diagnosis speaks the simulator's keys (``policy.tau``, ``server.max_batch``, a cheaper draft);
a llama.cpp user changes ``llama-server`` flags. :func:`llamacpp_flags` names the flags of one
set of overrides; :func:`annotate` adds them to each finding of a llama.cpp trace (its
``engine_flags`` and a sentence at the end of its recommendation), including, where the finding
is about what the drafter proposes, llama.cpp's n-gram settings.
"""

from __future__ import annotations

from typing import Any

# the n-gram drafter's knobs of llama-server (flag names of the pinned build's --help)
NGRAM_SIZES = ("--spec-type ngram-simple|ngram-map-k|ngram-map-k4v|ngram-mod|ngram-cache, "
               "--spec-ngram-simple-size-n N (the n-gram looked up; lower drafts more often), "
               "--spec-ngram-simple-size-m M (the draft length of an n-gram drafter)")
_DRAFT_KINDS = {"draft_bound", "speculation_not_paying", "over_speculation",
                "long_context_collapse"}


def engine_of(trace: Any) -> str | None:
    """``llamacpp`` for a llama.cpp trace (imported, or a ``specsim load`` client trace of
    llama-server), else None."""
    meta = trace.meta
    engine = (meta.extra or {}).get("engine")
    if engine == "llamacpp" or meta.source == "llamacpp":
        return "llamacpp"
    return None


def llamacpp_flags(overrides: dict[str, Any]) -> list[str]:
    """The llama-server flags of one set of simulator overrides (empty: none maps)."""
    flags: list[str] = []
    name = overrides.get("policy.name")
    tau = overrides.get("policy.tau")
    if name == "target_only":
        flags.append("no --spec-type (speculation off)")
    elif tau is not None:  # n-gram drafters take their own size-m; a draft model n-max
        flags.append(f"--spec-ngram-simple-size-m {int(tau)} (n-gram; a draft model: "
                     f"--spec-draft-n-max {int(tau)})")
    elif name == "adaptive":
        flags.append("--spec-draft-n-min 0 --spec-draft-p-min (llama.cpp drafts fewer when "
                     "unsure; no adaptive policy)")
    if "server.max_batch" in overrides:
        flags.append(f"-np {int(overrides['server.max_batch'])}")
    if "budget.max_verify_per_request" in overrides or "budget.mean_verify_per_request" in \
            overrides:
        flags.append("no llama.cpp flag caps verify passes per request")
    return flags


def annotate(trace: Any, findings: list[Any]) -> None:
    """Add llama.cpp's flags to each finding of a llama.cpp trace (no-op for other traces)."""
    if engine_of(trace) != "llamacpp":
        return
    for f in findings:
        best = f.predicted.get("overrides") if isinstance(f.predicted, dict) else None
        flags = llamacpp_flags(best) if isinstance(best, dict) else []
        if not flags:
            for ov in f.overrides:
                flags += [x for x in llamacpp_flags(ov) if x not in flags]
        if f.kind in _DRAFT_KINDS:
            flags.append(NGRAM_SIZES)
        if f.kind == "unstable_timing":  # what llama-server offers against a noisy host
            flags.append("-t N (no more threads than free cores: on a shared 2-core host -t 1 "
                         "ran 10-30x faster than -t 2), --prio 2, --cpu-strict 1")
        if f.kind == "queueing_bound" and not any(x.startswith("-np") for x in flags):
            flags.append("-np N (parallel slots)")
        if flags:
            f.engine_flags = flags
            f.recommendation += " In llama.cpp: " + "; ".join(flags) + "."
