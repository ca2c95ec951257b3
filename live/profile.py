"""Verify-cost profile: what one target pass costs for every number of scored tokens.

A trace measures the verify pass only at the draft lengths its policy happened to use: a
``fixed:tau=8`` run says nothing about a 3-token pass, and on a CPU the cost is no line in the
token count (a 1-token pass takes a matrix-vector path, 2 or 3 tokens can cost more than 4). So
a capture also profiles the pass itself, as Vidur profiles its operators before simulating:
right after the warm-up, on the first prompt's context, the exact call the decoder's verify step
makes (:meth:`CachedLM.feed` over ``n`` tokens, then the crop back) is timed for
``n = 1 .. max_tokens``, in a shuffled order each round so that drift spreads over all ``n``;
the median of each ``n`` is kept. The simulator reads it from the run metadata
(``extra["verify_profile_s"]``) and scales it to the trace's own measured passes.

:func:`profile_device` is the same measurement as a command of its own (``specsim profile``):
target passes over a grid of batch sizes, tokens per sequence and context lengths (and a draft's
steps), each warmed up, synchronized, timed ``rounds`` times in a shuffled order and kept as the
median, written as a device profile (:mod:`sim.models.deviceprofile`) with the device's exact name, the
dtype, the model's size and shape and the software stack.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import torch

from live.device import synchronizer
from live.kvcache import CachedLM
from sim.calibrate.costs import PROFILE_KEY  # where the simulator reads it

__all__ = ["PROFILE_KEY", "profile_device", "profile_verify"]


def profile_verify(target: Any, input_ids: torch.Tensor, *, max_tokens: int = 17,
                   rounds: int = 5, seed: int = 0, lm: Any = None) -> dict[str, Any]:
    """Median seconds of one verify pass scoring ``n`` tokens, ``n = 1..max_tokens``, after the
    context ``input_ids`` (1, L). Returns ``{"seconds": [...], "context_tokens": L,
    "rounds": rounds}``; ``seconds[n - 1]`` is the n-token pass. ``lm``: the target with the KV
    cache the decoder verifies with (e.g. a compiled :class:`live.static.StaticLM`; reset
    here), default a fresh :class:`CachedLM`."""
    if max_tokens < 1 or rounds < 1:
        raise ValueError(f"profile_verify: max_tokens and rounds must be >= 1, "
                         f"got {max_tokens}, {rounds}")
    device = target.device
    sync = synchronizer(device)
    if lm is None:
        lm = CachedLM(target.model)
    lm.reset()
    ids = input_ids.to(device)
    context = int(ids.shape[1])
    filler = ids[:, -1:].expand(1, max_tokens).contiguous()  # any tokens: cost is shape-bound
    samples: dict[int, list[float]] = {n: [] for n in range(1, max_tokens + 1)}
    order = list(samples)
    rng = random.Random(seed)
    with torch.inference_mode():
        lm.feed(ids)
        for _ in range(rounds):
            rng.shuffle(order)
            for n in order:
                sync()
                t0 = time.perf_counter()
                lm.feed(filler[:, :n], logits_to_keep=n)
                sync()
                samples[n].append(time.perf_counter() - t0)
                lm.crop_to(context)
    return {"seconds": [round(statistics.median(samples[n]), 9) for n in sorted(samples)],
            "context_tokens": context, "rounds": rounds}


def _config_fields(model: Any) -> dict[str, Any]:
    """The geometry fields of a transformers config the cost model reads."""
    cfg = model.config
    keys = ("model_type", "num_hidden_layers", "hidden_size", "intermediate_size",
            "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size")
    return {k: getattr(cfg, k) for k in keys if getattr(cfg, k, None) is not None}


def _software() -> dict[str, str]:
    import platform

    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "framework": "transformers eager"}
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    hip = getattr(torch.version, "hip", None)
    if hip:
        out["hip"] = str(hip)
    return out


def profile_device(target: Any, *, draft: Any = None, draft_name: str = "",
                   batches: list[int], tokens: list[int], contexts: list[int], rounds: int = 5,
                   seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Median seconds of target passes (every batch x tokens x context) and of draft steps
    (every batch x context, one token per sequence; ``draft`` a causal LM or None) on the
    target's device, as a device profile's JSON object (:func:`sim.models.deviceprofile.from_dict`
    reads it back). Each shape runs once untimed first; then ``rounds`` rounds, each over every
    shape in a new shuffled order, synchronizing the device around every timed pass. The host's
    dispatch speed is probed before and after the passes (``host_probe``: microseconds per
    eager op, :mod:`live.hostprobe`): the yardstick that tells this profile's level from its
    host's speed."""
    from live.hostprobe import host_probe
    from sim.models.deviceprofile import PROFILE_FORMAT, DeviceProfile

    if rounds < 1 or not batches or not tokens or not contexts:
        raise ValueError("profile_device: rounds >= 1 and non-empty batches/tokens/contexts")
    device = str(target.device)
    sync = synchronizer(device)  # this device, not the current one
    vocab = int(target.model.config.vocab_size)
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(0, vocab, (1, max(contexts)), generator=gen).to(device)
    filler = base[:, :1].expand(max(batches), max(tokens)).contiguous()
    models = {"target": target.model}
    if draft is not None:
        models["draft"] = draft
    caches: dict[tuple[str, int, int], CachedLM] = {}
    jobs: list[tuple[str, int, int, int]] = []
    for role in models:
        for b in batches:
            for c in contexts:
                for n in tokens if role == "target" else [1]:
                    jobs.append((role, b, n, c))
    samples: dict[tuple[str, int, int, int], list[float]] = {j: [] for j in jobs}
    rng = random.Random(seed)
    bar = _bar(len(jobs) * (rounds + 1)) if progress else None
    before = host_probe(device)["us_per_op"]
    with torch.inference_mode():
        for role, b, c in {(j[0], j[1], j[3]) for j in jobs}:
            lm = CachedLM(models[role])
            if c:
                lm.feed(base[:, :c].expand(b, c).contiguous())
            caches[(role, b, c)] = lm
        order = list(jobs)
        for r in range(rounds + 1):  # round 0: warm-up, untimed
            rng.shuffle(order)
            for job in order:
                role, b, n, c = job
                lm = caches[(role, b, c)]
                sync()
                t0 = time.perf_counter()
                lm.feed(filler[:b, :n], logits_to_keep=n)
                sync()
                if r:
                    samples[job].append(time.perf_counter() - t0)
                lm.crop_to(c)
                if bar is not None:
                    bar.advance()
    if bar is not None:
        bar.close()
    after = host_probe(device)["us_per_op"]
    points = [{"role": role, "batch": b, "tokens": n, "context": c,
               "seconds": round(statistics.median(samples[(role, b, n, c)]), 9)}
              for role, b, n, c in jobs]
    name = str(getattr(target, "device_name", device))
    profile = DeviceProfile(
        device=name, dtype=str(getattr(target, "dtype", "")), target=str(target.name),
        points=tuple(points), target_params=float(getattr(target, "n_params", 0) or 0),
        target_config=_config_fields(target.model), draft=draft_name, software=_software())
    out = profile.to_dict()
    out.update({"format": PROFILE_FORMAT, "rounds": rounds, "seed": seed,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host_probe": {"us_per_op": round((before + after) / 2, 4),
                               "before_us": before, "after_us": after}})
    if draft is not None:
        out["draft_params"] = int(sum(p.numel() for p in draft.parameters()))
        out["draft_config"] = _config_fields(draft)
    return out


def _bar(total: int) -> Any:
    """Progress over the timed passes on stderr (a bar on a terminal, plain lines piped)."""
    from tracing.progress import Bar

    return Bar("profiling", total)
