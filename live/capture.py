"""Capture: run the live speculative decoder over a prompt set and stream a schema-v1 trace.

Requests run one after another (``arrival_s == start_s`` = when each began). Each cycle is
written (and flushed) the moment the decoder reports it; a request line follows when the request
completes. On Ctrl-C the request in flight is closed with what it has (its cycles are already on
disk, so its request line sums exactly their ``emitted``) and the trace stays valid. A ``.parquet``
output is captured as JSONL beside it and converted at the end.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError
from tracing.io import convert_trace, trace_format
from tracing.jsonl import TraceWriter
from tracing.schema import CycleRecord, RequestRecord, RunMeta


@dataclass
class CaptureConfig:
    """Everything ``specsim capture`` resolves from its flags; recorded in the run metadata."""

    target: str
    out: str
    draft: str = "ngram"
    policy: str = "fixed:tau=4"
    prompts: str = "builtin:chat"
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    device: str | None = None
    dtype: str | None = None
    limit: int | None = None
    warmup_tokens: int = 16  # an untimed decode of the first prompt before the first request

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise SpecsimError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0.0:
            raise SpecsimError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise SpecsimError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.warmup_tokens < 0:
            raise SpecsimError(f"--warmup-tokens must be >= 0, got {self.warmup_tokens}")
        if self.limit is not None and self.limit < 1:
            raise SpecsimError(f"--limit must be >= 1, got {self.limit}")
        trace_format(self.out)  # a SpecsimError for an unknown extension
        parent = Path(self.out).resolve().parent
        if not parent.is_dir():
            raise SpecsimError(f"--out {self.out}: directory {parent} does not exist")


@dataclass
class CaptureResult:
    """What a capture wrote."""

    path: str
    requests: int  # request lines written (a cut-off request included)
    cycles: int
    tokens: int
    interrupted: bool = False
    wall_s: float = 0.0
    request_ids: list[int] = field(default_factory=list)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a live run's timings."""
    import torch
    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__}
    if torch.cuda.is_available() and torch.version.cuda:
        versions["cuda"] = str(torch.version.cuda)
    return versions


def eos_ids(tokenizer: Any, model: Any) -> set[int]:
    """Every id that ends a turn: the tokenizer's EOS and the generation config's."""
    ids: set[int] = set()
    for value in (getattr(tokenizer, "eos_token_id", None),
                  getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def _draft_params(draft: Any) -> int:
    """Parameters a draft runs per token: its model's (a layer-skip view counts its own layers,
    embeddings and head); 0 for model-free drafts (n-gram) and for none."""
    lm = getattr(draft, "lm", None)
    model = getattr(lm, "model", None)
    if model is None:
        return 0
    return int(sum(p.numel() for p in model.parameters()))


def _partial_request(rid: int, start_s: float, end_s: float, prompt_tokens: int,
                     cycles: list[CycleRecord], prompt_text: str) -> RequestRecord:
    """The request line of a request cut off mid-way: it covers exactly the cycles written."""
    first = cycles[0].start_s if cycles else end_s
    return RequestRecord(
        request_id=rid, arrival_s=start_s, start_s=start_s,
        first_token_s=max(start_s, min(first, end_s)), end_s=end_s,
        prompt_tokens=prompt_tokens, output_tokens=sum(c.emitted for c in cycles),
        prefill_s=max(0.0, first - start_s), verify_passes=len(cycles),
        prompt_text=prompt_text, output_text=None,
    )


@contextlib.contextmanager
def _progress(enabled: bool, total_tokens: int, n_requests: int
              ) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields ``advance(tokens, requests)``."""
    if not enabled:
        yield lambda tokens, requests: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=False)
    with bar:
        tok = bar.add_task("tokens  ", total=total_tokens)
        req = bar.add_task("requests", total=n_requests)

        def advance(tokens: int, requests: int) -> None:
            bar.advance(tok, tokens)
            bar.advance(req, requests)

        yield advance


def capture(config: CaptureConfig, *, progress: bool = True, target: Any = None,
            draft: Any = None) -> CaptureResult:
    """Decode every prompt with the live speculative decoder and stream the trace to ``out``.

    ``target`` (a LoadedModel) and ``draft`` may be passed in to reuse loaded models; otherwise
    they are loaded from ``config``. Returns what was written; a Ctrl-C ends the run early with
    a valid trace and ``interrupted=True``.
    """
    from live.models import load_model
    from live.prompts import encode_prompt, load_prompts, workload_name
    from sim.policies import make_policy

    prompts = load_prompts(config.prompts, config.limit)
    policy = make_policy(config.policy)
    if target is None:
        target = load_model(config.target, config.device, config.dtype)
    from live.decode import SamplingConfig, speculative_generate
    from live.drafts import make_draft

    if draft is None:
        draft = make_draft(config.draft, target)
    sampling = SamplingConfig(temperature=config.temperature, top_p=config.top_p,
                              seed=config.seed)
    import torch

    if config.seed is not None:
        torch.manual_seed(config.seed)

    meta = RunMeta(
        source="live", target_model=target.name, draft_model=config.draft,
        device=target.device_name, dtype=target.dtype, temperature=config.temperature,
        top_p=config.top_p, seed=config.seed, policy=policy.name, policy_params=policy.params(),
        library_versions=library_versions(),
        extra={"workload": workload_name(config.prompts), "prompts": config.prompts,
               "max_new_tokens": config.max_new_tokens,
               "target_n_params": target.n_params, "draft_n_params": _draft_params(draft),
               "config": asdict(config)},
    )
    fmt = trace_format(config.out)
    jsonl_path = config.out if fmt == ".jsonl" else f"{config.out}.capture.jsonl"
    stops = eos_ids(target.tokenizer, target.model)
    result = CaptureResult(path=config.out, requests=0, cycles=0, tokens=0)
    if config.warmup_tokens and prompts:
        # First calls pay one-off costs (kernel selection, allocator growth, lazy init) that
        # would land in request 0's cycles and skew every latency fitted from the trace.
        speculative_generate(
            target, draft, make_policy(config.policy),
            encode_prompt(target.tokenizer, prompts[0]).to(target.device),
            max_new_tokens=config.warmup_tokens, sampling=sampling, eos_token_ids=stops)
        if config.seed is not None:
            torch.manual_seed(config.seed)
    t0 = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - t0

    with TraceWriter(jsonl_path, meta) as writer, _progress(
        progress, len(prompts) * config.max_new_tokens, len(prompts)
    ) as advance:
        for rid, prompt in enumerate(prompts):
            input_ids = encode_prompt(target.tokenizer, prompt).to(target.device)
            seen: list[CycleRecord] = []

            def on_cycle(c: CycleRecord, seen: list[CycleRecord] = seen) -> None:
                writer.write_cycle(c)
                seen.append(c)
                advance(c.emitted, 0)

            policy.reset(rid)
            start_s = clock()
            try:
                out = speculative_generate(
                    target, draft, policy, input_ids, max_new_tokens=config.max_new_tokens,
                    sampling=sampling, eos_token_ids=stops, request_id=rid, clock=clock,
                    on_cycle=on_cycle)
            except KeyboardInterrupt:
                if seen:
                    writer.write_request(_partial_request(
                        rid, start_s, clock(), int(input_ids.shape[1]), seen, prompt.text))
                    result.requests += 1
                    result.request_ids.append(rid)
                    result.cycles += len(seen)
                    result.tokens += sum(c.emitted for c in seen)
                result.interrupted = True
                break
            end_s = clock()
            tokens = [int(t) for t in out.tokens]
            emitted = sum(c.emitted for c in seen)
            writer.write_request(RequestRecord(
                request_id=rid, arrival_s=start_s, start_s=start_s,
                first_token_s=min(max(out.first_token_s, start_s), end_s), end_s=end_s,
                prompt_tokens=int(input_ids.shape[1]), output_tokens=emitted,
                prefill_s=out.prefill_s, verify_passes=out.verify_passes,
                prompt_text=prompt.text,
                output_text=target.tokenizer.decode(tokens, skip_special_tokens=True),
            ))
            result.requests += 1
            result.request_ids.append(rid)
            result.cycles += len(seen)
            result.tokens += emitted
            advance(0, 1)
    result.wall_s = clock()
    if fmt != ".jsonl":
        try:
            convert_trace(jsonl_path, config.out)
        finally:
            with contextlib.suppress(OSError):
                os.remove(jsonl_path)
    return result
