"""Interleaved capture: several configurations recorded on one loaded target, prompt by prompt.

A shared machine drifts (another tenant, a frequency change), so two captures recorded minutes
apart are not comparable: one of them lands in the slow spell. Interleaving spreads the drift
over every configuration alike. One target is loaded; every run is opened (each warms its own
draft up; all get the same verify-cost profile, taken once on the first prompt); then prompt 0
is decoded by every run, then prompt 1, and so on, the order rotating by one each prompt so no
configuration always goes first. Each run's clock is paused while the others decode
(:class:`live.capture.RunClock`), so each trace is its own requests laid end to end, as if it
had run alone. One trace per configuration, named by it (:func:`trace_name`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from live.capture import CaptureConfig, CaptureResult, LiveRun, _progress
from tracing.errors import SpecsimError

_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def slug(text: str) -> str:
    """``fixed:tau=4`` -> ``fixed_tau_4``: a spec as a file-name part. A draft given as a path
    is named by its last component."""
    if "/" in text:
        text = Path(text.rstrip("/")).name or text
    return _UNSAFE.sub("_", text).strip("_") or "x"


def trace_name(draft: str, policy: str, suffix: str = ".jsonl") -> str:
    """The file name of one configuration's trace: ``{draft}_{policy}{suffix}``."""
    return f"{slug(draft)}_{slug(policy)}{suffix}"


def plan_configs(base: CaptureConfig, drafts: Sequence[str], policies: Sequence[str],
                 out_dir: str | Path, suffix: str = ".jsonl",
                 force: bool = False) -> list[CaptureConfig]:
    """One config per (draft, policy) pair -- every draft with every policy, in that order,
    duplicates dropped -- writing ``out_dir / trace_name(draft, policy)``. Refuses a trace that
    exists unless ``force``."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise SpecsimError(f"--out-dir {out_dir}: exists and is not a directory")
    pairs = list(dict.fromkeys((d.strip(), p.strip()) for d in drafts for p in policies))
    if not pairs:
        raise SpecsimError("capture: no configuration (give at least one --draft and --policy)")
    names = [trace_name(d, p, suffix) for d, p in pairs]
    if len(set(names)) < len(names):
        raise SpecsimError(f"capture: two configurations would share a trace name ({names})")
    configs = [replace(base, draft=d, policy=p, out=str(folder / name))
               for (d, p), name in zip(pairs, names, strict=True)]
    check_overwrite([c.out for c in configs], force)
    return configs


def check_overwrite(paths: Sequence[str], force: bool) -> None:
    """A SpecsimError naming the first trace that exists, unless ``force``."""
    if force:
        return
    for path in paths:
        if Path(path).exists():
            raise SpecsimError(f"{path}: exists (use --force to overwrite)")


def capture_interleaved(configs: Sequence[CaptureConfig], *, target: Any = None,
                        drafts: Sequence[Any] | None = None,
                        verify_profile: dict[str, Any] | None = None,
                        progress: bool = True) -> list[CaptureResult]:
    """Record every configuration in ``configs`` interleaved on one target (see the module
    docstring). All must share the target, device, dtype, prompts and limit. ``target``: a
    loaded model to reuse (else loaded from the first config); ``drafts``: prebuilt drafts, one
    per config (else built from each config's spec); ``verify_profile``: a profile to record in
    every trace (else taken once, on the first prompt). A Ctrl-C stops the recording with every
    trace valid (``interrupted`` set on each result)."""
    from live.drafts import make_draft
    from live.models import load_model

    if not configs:
        raise SpecsimError("capture: no configuration to record")
    first = configs[0]
    shared = ("target", "device", "dtype", "prompts", "limit", "compile")
    for c in configs[1:]:
        for key in shared:
            if getattr(c, key) != getattr(first, key):
                raise SpecsimError(f"interleaved capture: every run needs the same {key} "
                                   f"({getattr(first, key)!r} vs {getattr(c, key)!r})")
    if drafts is not None and len(drafts) != len(configs):
        raise SpecsimError(f"interleaved capture: {len(drafts)} drafts for {len(configs)} runs")
    if target is None:
        target = load_model(first.target, first.device, first.dtype)
    names = [Path(c.out).name for c in configs]
    runs: list[LiveRun] = []
    target_lm = None  # --compile: one static cache and one compilation for every run
    if first.compile:
        from live.capture import static_length
        from live.prompts import load_prompts
        from live.static import StaticLM

        prompts = load_prompts(first.prompts, first.limit)
        target_lm = StaticLM(target.model, max(static_length(target, prompts, c)
                                               for c in configs))
    try:
        for i, config in enumerate(configs):
            draft = drafts[i] if drafts is not None else make_draft(config.draft, target)
            run = LiveRun(config, target=target, draft=draft, verify_profile=verify_profile,
                          pause_between=True,
                          extra={"interleaved_with": [n for n in names if n != names[i]]},
                          target_lm=target_lm)
            # the first run profiles the verify pass (after its warm-up); the others reuse it
            verify_profile = verify_profile or run.verify_profile
            runs.append(run)
        n_prompts = len(runs[0].prompts)
        total = n_prompts * sum(c.max_new_tokens for c in configs)
        with _progress(progress, total, n_prompts * len(runs)) as advance:
            for rid in range(n_prompts):
                shift = rid % len(runs)
                for run in runs[shift:] + runs[:shift]:
                    if not run.run_request(rid, advance):
                        raise KeyboardInterrupt
    except KeyboardInterrupt:
        for run in runs:
            run.result.interrupted = True
    finally:
        results = [run.close() for run in runs]
    return results
