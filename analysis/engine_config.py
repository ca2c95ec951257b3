"""A tuned draft-length schedule in each serving engine's own syntax (``specsim tune``).

A schedule is a list of ranges {``batch_from``, ``batch_to``, ``tau``} covering batch sizes from
the first tuned one to the last, ascending and contiguous (:func:`sim.sweep.tune.merge`). What each
engine takes, and what this module relies on (looked up in the engines' own pull requests):

- **vLLM** -- ``speculative_config`` with ``num_speculative_tokens`` (the start-up maximum, used
  for buffer sizing; must be > 0) and ``num_speculative_tokens_per_batch_size``: a list of
  ``[range_start, range_end, K]``, ranges inclusive; a batch size in a gap inherits the K before
  it and K is clamped to ``num_speculative_tokens``; K = 0 is allowed (vllm-project/vllm PR
  #32374 "Add Dynamic SD", and ``vllm/config/speculative.py``'s
  ``list[tuple[int, int, int]]`` field as PR #45953 reads it).
- **TensorRT-LLM** -- ``speculative_config.draft_len_schedule`` {batch size: draft length}: a
  batch size takes the value of the first key >= it; above the largest key speculation is off
  (``{4: 4, 8: 2, 32: 1}``: 1-4 -> 4, 5-8 -> 2, 9-32 -> 1, 33+ -> 0; NVIDIA/TensorRT-LLM PR
  #10860, and #8194 for ``max_draft_len``).
- **SGLang** -- one static setting per server, ``--speculative-num-steps N
  --speculative-eagle-topk 1 --speculative-num-draft-tokens N+1`` (a chain: draft tokens = steps +
  1), for the batch size the server mostly runs at; its adaptive mode switches among pre-built
  step tiers, ``--speculative-adaptive --speculative-adaptive-config '{"candidate_steps": [...]}'``
  (sgl-project/sglang PRs #21599, #23629; #24055 keys the tiers by batch-size range).
- **llama.cpp** -- one draft length per server for its ``-np`` slots (``llama-server --help``):
  ``--spec-draft-n-max N`` for a draft model; an n-gram drafter's is its own size-m
  (``--spec-ngram-simple-size-m N``; ngram-simple drafts only when size-m >= size-n), set with
  ``--spec-draft-n-max`` beside it (docs/llamacpp.md).
- **specsim serve** -- ``fixed:tau=K,tau_by_batch=B1:K1,B2:K2``: the tau of the largest threshold
  <= the step's batch size (``sim.policies.base.parse_tau_by_batch``).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

ENGINES = ("vllm", "trtllm", "sglang", "llamacpp")
VLLM_METHODS = {"ngram": "ngram"}  # our draft names with a vLLM method of the same kind


def _tau_at(schedule: list[dict[str, Any]], batch: int) -> int:
    tau = int(schedule[0]["tau"]) if schedule else 0
    for part in schedule:
        if part["batch_from"] <= batch:
            tau = int(part["tau"])
    return tau


def vllm(schedule: list[dict[str, Any]], draft: str = "") -> tuple[str, str]:
    """vLLM's ``speculative_config`` (JSON text) and a note."""
    kmax = max((int(p["tau"]) for p in schedule), default=0)
    config: dict[str, Any] = {}
    name = draft.split(":")[0]
    if name in VLLM_METHODS:
        config["method"] = VLLM_METHODS[name]
    config["num_speculative_tokens"] = max(1, kmax)
    config["num_speculative_tokens_per_batch_size"] = [
        [int(p["batch_from"]), int(p["batch_to"]), int(p["tau"])] for p in schedule]
    note = "pass as --speculative-config '<json>'" + (
        "" if "method" in config else "; add your drafter's \"method\"/\"model\"")
    if kmax == 0:
        note = ("speculation does not pay at any batch size tuned: serve without "
                "--speculative-config (the schedule of zeros is shown for completeness)")
    return json.dumps(config), note


def trtllm(schedule: list[dict[str, Any]]) -> tuple[str, str]:
    """TensorRT-LLM's ``speculative_config`` (YAML for ``--extra_llm_api_options``) and a note."""
    kmax = max((int(p["tau"]) for p in schedule), default=0)
    keep = list(schedule)
    while keep and int(keep[-1]["tau"]) == 0:  # above the largest key it is 0 anyway
        keep.pop()
    table = ", ".join(f"{int(p['batch_to'])}: {int(p['tau'])}" for p in keep)
    text = (f"speculative_config:\n  max_draft_len: {max(1, kmax)}\n"
            f"  draft_len_schedule: {{{table}}}\n")
    last = int(schedule[-1]["batch_to"]) if schedule else 0
    if kmax == 0:
        note = "speculation does not pay at any batch size tuned: leave speculation off"
    elif keep and keep[-1] is schedule[-1]:
        note = (f"above batch {last} (the largest tuned) TensorRT-LLM turns speculation off; "
                "tune larger batch sizes to extend the schedule")
    else:
        note = f"speculation off above batch {int(keep[-1]['batch_to'])}"
    return text, note


def sglang(schedule: list[dict[str, Any]], batch: int) -> tuple[str, str, str]:
    """SGLang's static flags at ``batch``, its adaptive-mode tiers, and a note."""
    k = _tau_at(schedule, batch)
    static = (f"--speculative-num-steps {k} --speculative-eagle-topk 1 "
              f"--speculative-num-draft-tokens {k + 1}") if k else ""
    tiers = sorted({int(p["tau"]) for p in schedule if int(p["tau"]) > 0})
    adaptive = ("--speculative-adaptive --speculative-adaptive-config "
                + shlex.quote(json.dumps({"candidate_steps": tiers}))) if tiers else ""
    note = (f"static setting for batch {batch}" if k else
            f"no speculation at batch {batch}: launch without --speculative-algorithm")
    return static, adaptive, note


def llamacpp_spec(command: list[str] | None, draft: str = "") -> tuple[str, int]:
    """The llama.cpp drafter (``--spec-type``) and its n-gram size-n of a traced server.

    From the trace's ``extra.server_command`` when it was recorded; else ``ngram-simple`` (size-n
    3, llama-server's default) for our ``ngram`` draft; else ``""`` (a draft model)."""
    cmd = list(command or [])
    kind = cmd[cmd.index("--spec-type") + 1] if "--spec-type" in cmd[:-1] else ""
    if not kind and draft.split(":")[0] == "ngram":
        kind = "ngram-simple"
    size_n = 3
    if "--spec-ngram-simple-size-n" in cmd[:-1]:
        size_n = int(cmd[cmd.index("--spec-ngram-simple-size-n") + 1])
    return kind, size_n


def llamacpp(schedule: list[dict[str, Any]], slots: int, spec_type: str = "",
             size_n: int = 3) -> tuple[str, str]:
    """llama.cpp's ``-np`` and draft-length flags for ``slots`` slots, and a note.

    ``--spec-draft-n-max`` bounds draft models only: an n-gram drafter (``spec_type``) takes its
    draft length from its own size-m flag (``live.llamacpp_server.DRAFT_LENGTH``), and
    ngram-simple never drafts when size-m < size-n, so a shorter draft lowers size-n to it."""
    from live.llamacpp_server import DRAFT_LENGTH

    k = _tau_at(schedule, slots)
    if k == 0:
        return f"-np {slots}", (f"no speculation at {slots} slots: drop the draft / --spec-* "
                                "flags")
    if spec_type not in DRAFT_LENGTH:
        return f"-np {slots} --spec-draft-n-max {k}", f"one draft length for {slots} slots"
    flags = f"-np {slots} --spec-type {spec_type} --spec-draft-n-max {k} {DRAFT_LENGTH[spec_type]} {k}"
    if spec_type == "ngram-simple" and k < size_n:
        flags += f" --spec-ngram-simple-size-n {k}"
    return flags, (f"one draft length for {slots} slots ({spec_type}: the draft length is "
                   f"{DRAFT_LENGTH[spec_type]})")


def serve_policy(schedule: list[dict[str, Any]]) -> str:
    """The ``specsim serve --policy`` spec of the schedule."""
    if not schedule:
        return "target_only"
    if len(schedule) == 1:
        k = int(schedule[0]["tau"])
        return f"fixed:tau={k}" if k else "target_only"
    first = int(schedule[0]["tau"])
    table = ",".join(f"{int(p['batch_from'])}:{int(p['tau'])}" for p in schedule)
    return f"fixed:tau={first},tau_by_batch={table}"


def serve_command(schedule: list[dict[str, Any]], target: str, draft: str,
                  max_batch: int) -> str:
    """The ``specsim serve`` command that runs the schedule (to measure it at once)."""
    policy = serve_policy(schedule)
    use_draft = "none" if policy == "target_only" else (draft or "DRAFT")
    return " ".join(["specsim", "serve", "--target", shlex.quote(target or "TARGET"),
                     "--draft", shlex.quote(use_draft), "--policy", shlex.quote(policy),
                     "--max-batch", str(max_batch), "--trace-out", "tuned.server.jsonl"])


def llamacpp_command(snippet: str, target: str, at_batch: int) -> str:
    """The ``llama-server`` command that runs a tuned llama.cpp trace's setting at ``at_batch``
    slots (llama.cpp takes one draft length per server; ``specsim serve`` cannot load a GGUF)."""
    return " ".join(["llama-server", "-m", shlex.quote(target or "MODEL.gguf"), snippet,
                     "--metrics", f"# then: specsim load --concurrency {at_batch} ..."])


def configs(schedule: list[dict[str, Any]], engines: tuple[str, ...] | list[str], *,
            draft: str = "", at_batch: int = 1,
            server_command: list[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """``config`` {engine: snippet} and ``notes`` {engine: text} for the engines asked for."""
    config: dict[str, str] = {}
    notes: dict[str, str] = {}
    for engine in engines:
        if engine == "vllm":
            config[engine], notes[engine] = vllm(schedule, draft)
        elif engine == "trtllm":
            config[engine], notes[engine] = trtllm(schedule)
        elif engine == "sglang":
            static, adaptive, note = sglang(schedule, at_batch)
            config[engine] = static
            notes[engine] = note + (f"; adaptive mode: {adaptive}" if adaptive else "")
        elif engine == "llamacpp":
            kind, size_n = llamacpp_spec(server_command, draft)
            config[engine], notes[engine] = llamacpp(schedule, at_batch, kind, size_n)
    return config, notes


__all__ = ["ENGINES", "configs", "llamacpp", "llamacpp_command", "llamacpp_spec", "serve_command", "serve_policy", "sglang",
           "trtllm", "vllm"]
