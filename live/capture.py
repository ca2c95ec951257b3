"""Capture: run the live speculative decoder over a prompt set and stream a schema-v1 trace.

Requests run one after another (``arrival_s == start_s`` = when each began). Each cycle is
written (and flushed) the moment the decoder reports it; a request line follows when the request
completes. Before the first request the verify pass is profiled for every token count
(:mod:`live.profile`) and the profile is kept in the run metadata. :class:`LiveRun` runs one
request at a time, so a recorder can interleave several configurations on one loaded model.
On Ctrl-C the request in flight is closed with what it has (its cycles are already on disk, so
its request line sums exactly their ``emitted``) and the trace stays valid. A ``.parquet``
output is captured as JSONL beside it and converted at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError
from tracing.io import convert_trace, trace_format
from tracing.jsonl import TraceWriter, token_ids_path
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
    profile_tokens: int = 17  # verify passes profiled for 1..N scored tokens (0: no profile)
    compile: bool = False  # static KV cache + torch.compile'd decode/verify steps (live.static)
    record_tokens: bool = False  # also write OUT.tokens.ndjson: each request's token ids

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise SpecsimError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0.0:
            raise SpecsimError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise SpecsimError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.warmup_tokens < 0:
            raise SpecsimError(f"--warmup-tokens must be >= 0, got {self.warmup_tokens}")
        if self.profile_tokens < 0:
            raise SpecsimError(f"--profile-tokens must be >= 0, got {self.profile_tokens}")
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


def static_length(target: Any, prompts: list[Any], config: CaptureConfig) -> int:
    """Positions a static cache needs for this run: the longest prompt plus the most tokens any
    pass adds after it (new tokens, warm-up, the profile's longest pass), plus one."""
    from live.prompts import encode_prompt

    longest = max((int(encode_prompt(target.tokenizer, p).shape[1]) for p in prompts), default=1)
    return longest + max(config.max_new_tokens, config.warmup_tokens, config.profile_tokens) + 1


def compile_seconds(target_lm: Any, draft: Any) -> float:
    """Seconds spent compiling (first calls of each compiled step), target and draft."""
    lms = (target_lm, getattr(draft, "lm", None))
    return float(sum(getattr(lm, "compile_s", 0.0) for lm in lms))


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
        stop_reason="interrupted",  # schema v2: counted, left out of latency figures
    )


@contextlib.contextmanager
def _progress(enabled: bool, total_tokens: int, n_requests: int
              ) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields ``advance(tokens, requests)``."""
    from tracing.progress import Bar, mode

    if not enabled or mode() == "off":
        yield lambda tokens, requests: None
        return
    if mode() == "plain":  # piped: plain lines over the tokens
        with Bar("capture tokens", total_tokens) as plain:
            yield lambda tokens, requests: plain.advance(tokens)
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


class RunClock:
    """Seconds a run has been running: started once, and paused between its requests when
    several runs take turns on one machine (interleaved recording), so each trace's timeline
    is its own requests laid end to end, as if it had run alone."""

    def __init__(self) -> None:
        self._banked = 0.0
        self._since: float | None = None

    def resume(self) -> None:
        """Start (or go on) counting."""
        if self._since is None:
            self._since = time.perf_counter()

    def pause(self) -> None:
        """Stop counting until the next :meth:`resume`."""
        if self._since is not None:
            self._banked += time.perf_counter() - self._since
            self._since = None

    def __call__(self) -> float:
        running = 0.0 if self._since is None else time.perf_counter() - self._since
        return self._banked + running


class LiveRun:
    """One capture in progress: models, policy and the open trace. Requests run one at a time
    through :meth:`run_request`; :func:`capture` runs them all in order, and a recorder may
    interleave the requests of several runs on one loaded target (``pause_between``).

    Opening it warms up (an untimed decode: first calls pay kernel selection and allocator
    growth that would skew request 0) and profiles the verify pass (``profile_tokens``; see
    :mod:`live.profile`) unless ``verify_profile`` is given; the profile goes into the run
    metadata, which is the trace's first line; ``extra`` is added to the metadata's extra.
    """

    def __init__(self, config: CaptureConfig, *, target: Any = None, draft: Any = None,
                 verify_profile: dict[str, Any] | None = None,
                 pause_between: bool = False, extra: dict[str, Any] | None = None,
                 target_lm: Any = None) -> None:
        from live.decode import SamplingConfig
        from live.drafts import make_draft
        from live.models import load_model, status
        from live.prompts import load_prompts, workload_name
        from sim.policies.library import make_policy

        self.config = config
        self.prompts = load_prompts(config.prompts, config.limit)
        self.policy = make_policy(config.policy)
        self.target = target if target is not None else load_model(
            config.target, config.device, config.dtype)
        # --compile: the target (and a model draft) on a static cache with compiled steps;
        # ``target_lm`` may be shared by interleaved runs (one compilation for all)
        self.static_len = static_length(self.target, self.prompts, config) \
            if config.compile else None
        if config.compile and target_lm is None:
            from live.static import StaticLM

            target_lm = StaticLM(self.target.model, int(self.static_len or 0))
        self.target_lm = target_lm
        self.draft = draft if draft is not None else make_draft(config.draft, self.target,
                                                                static_len=self.static_len)
        self.sampling = SamplingConfig(temperature=config.temperature, top_p=config.top_p,
                                       seed=config.seed)
        self.stops = eos_ids(self.target.tokenizer, self.target.model)
        self.pause_between = pause_between
        t0 = time.perf_counter()
        with status(f"warming up ({config.warmup_tokens} tokens)"
                    + (", compiling" if config.compile else "")):
            self._warm_up()
        warmup_s = time.perf_counter() - t0
        if verify_profile is None and config.profile_tokens and self.prompts:
            with status(f"profiling verify passes of 1..{config.profile_tokens} tokens"):
                verify_profile = self.profile()
        self.verify_profile = verify_profile  # what the run metadata records (None: none)
        more_extra = extra
        extra = {
            "workload": workload_name(config.prompts), "prompts": config.prompts,
            "max_new_tokens": config.max_new_tokens, "target_n_params": self.target.n_params,
            "draft_n_params": _draft_params(self.draft), "config": asdict(config),
            "warmup_s": round(warmup_s, 6)}
        if config.compile:  # compilation happens in the warm-up, never in a timed request
            extra["compile_s"] = round(compile_seconds(self.target_lm, self.draft), 6)
        if verify_profile:
            from live.profile import PROFILE_KEY

            extra[PROFILE_KEY] = verify_profile
        from live.hostprobe import host_probe

        # this process's dispatch speed after the warm-up: what tells two captures' levels
        # apart from their host's speed (live.hostprobe)
        extra["host_probe"] = host_probe(self.target.device)
        if pause_between:
            extra["clock"] = "paused between requests (interleaved with other runs)"
        extra.update(more_extra or {})
        meta = RunMeta(
            source="live", target_model=self.target.name, draft_model=config.draft,
            device=self.target.device_name, dtype=self.target.dtype,
            temperature=config.temperature, top_p=config.top_p, seed=config.seed,
            policy=self.policy.name, policy_params=self.policy.params(),
            library_versions=library_versions(), extra=extra)
        self.format = trace_format(config.out)
        self.jsonl_path = (config.out if self.format == ".jsonl"
                           else f"{config.out}.capture.jsonl")
        self.result = CaptureResult(path=config.out, requests=0, cycles=0, tokens=0)
        self.clock = RunClock()
        self.writer = TraceWriter(self.jsonl_path, meta)
        self.writer.open()
        # --record-tokens: prompt and output ids per request, for an exact replay of a
        # deterministic draft over a greedy run (sim.calibrate.ngram_replay)
        self.tokens_file = open(token_ids_path(config.out), "w") if config.record_tokens else None  # noqa: SIM115
        if not pause_between:
            self.clock.resume()  # else it starts with this run's first request

    def _warm_up(self) -> None:
        import torch

        from live.decode import speculative_generate
        from live.prompts import encode_prompt
        from sim.policies.library import make_policy

        config = self.config
        if config.compile and self.prompts:  # compile every step kind now, untimed
            ids = encode_prompt(self.target.tokenizer, self.prompts[0]).to(self.target.device)
            for lm in (self.target_lm, getattr(self.draft, "lm", None)):
                warm = getattr(lm, "warm", None)
                if callable(warm):
                    warm(ids)
        if config.warmup_tokens and self.prompts:
            speculative_generate(
                self.target, self.draft, make_policy(config.policy),
                encode_prompt(self.target.tokenizer, self.prompts[0]).to(self.target.device),
                max_new_tokens=config.warmup_tokens, sampling=self.sampling,
                eos_token_ids=self.stops, target_lm=self.target_lm)
        if config.seed is not None:
            torch.manual_seed(config.seed)

    def profile(self) -> dict[str, Any]:
        """The verify-cost profile on the first prompt's context (:mod:`live.profile`)."""
        from live.profile import profile_verify
        from live.prompts import encode_prompt

        ids = encode_prompt(self.target.tokenizer, self.prompts[0])
        return profile_verify(self.target, ids, max_tokens=self.config.profile_tokens,
                              lm=self.target_lm)

    def run_request(self, rid: int, advance: Callable[[int, int], None] | None = None) -> bool:
        """Decode prompt ``rid`` and write its cycles and request line. Returns False when a
        Ctrl-C cut it off (its request line then covers the cycles already written)."""
        from live.decode import speculative_generate
        from live.prompts import encode_prompt

        prompt = self.prompts[rid]
        step = advance or (lambda tokens, requests: None)
        input_ids = encode_prompt(self.target.tokenizer, prompt).to(self.target.device)
        seen: list[CycleRecord] = []
        writer, clock, result = self.writer, self.clock, self.result

        def on_cycle(c: CycleRecord) -> None:
            writer.write_cycle(c)
            seen.append(c)
            step(c.emitted, 0)

        clock.resume()  # (speculative_generate resets the policy for the request)
        start_s = clock()
        try:
            out = speculative_generate(
                self.target, self.draft, self.policy, input_ids,
                max_new_tokens=self.config.max_new_tokens, sampling=self.sampling,
                eos_token_ids=self.stops, request_id=rid, clock=clock, on_cycle=on_cycle,
                target_lm=self.target_lm)
        except KeyboardInterrupt:
            if seen:
                writer.write_request(_partial_request(
                    rid, start_s, clock(), int(input_ids.shape[1]), seen, prompt.text))
                self._count(rid, seen)
            result.interrupted = True
            return False
        end_s = clock()
        if self.pause_between:
            clock.pause()
        tokens = [int(t) for t in out.tokens]
        writer.write_request(RequestRecord(
            request_id=rid, arrival_s=start_s, start_s=start_s,
            first_token_s=min(max(out.first_token_s, start_s), end_s), end_s=end_s,
            prompt_tokens=int(input_ids.shape[1]), output_tokens=sum(c.emitted for c in seen),
            prefill_s=out.prefill_s, verify_passes=out.verify_passes, prompt_text=prompt.text,
            output_text=self.target.tokenizer.decode(tokens, skip_special_tokens=True),
        ))
        if self.tokens_file is not None:
            self.tokens_file.write(json.dumps({
                "request_id": rid, "prompt_ids": input_ids[0].tolist(), "output_ids": tokens,
            }) + "\n")
            self.tokens_file.flush()
        self._count(rid, seen)
        step(0, 1)
        return True

    def _count(self, rid: int, seen: list[CycleRecord]) -> None:
        self.result.requests += 1
        self.result.request_ids.append(rid)
        self.result.cycles += len(seen)
        self.result.tokens += sum(c.emitted for c in seen)

    def close(self) -> CaptureResult:
        """Close the trace (and convert it to Parquet when ``out`` asks for it)."""
        self.result.wall_s = self.clock()
        self.writer.close()
        if self.tokens_file is not None:
            self.tokens_file.close()
        if self.format != ".jsonl":
            try:
                convert_trace(self.jsonl_path, self.config.out)
            finally:
                with contextlib.suppress(OSError):
                    os.remove(self.jsonl_path)
        return self.result


def capture(config: CaptureConfig, *, progress: bool = True, target: Any = None,
            draft: Any = None) -> CaptureResult:
    """Decode every prompt with the live speculative decoder and stream the trace to ``out``.

    ``target`` (a LoadedModel) and ``draft`` may be passed in to reuse loaded models; otherwise
    they are loaded from ``config``. Returns what was written; a Ctrl-C ends the run early with
    a valid trace and ``interrupted=True``.
    """
    t0 = time.perf_counter()
    run = LiveRun(config, target=target, draft=draft)
    if progress:  # after the inputs are checked: bad input stays one line on stderr
        from tracing.progress import say

        say(f"capture: {config.target} and draft {config.draft} loaded, warmed up and profiled "
            f"in {time.perf_counter() - t0:.0f} s; decoding {len(run.prompts)} prompts")
    try:
        with _progress(progress, len(run.prompts) * config.max_new_tokens,
                       len(run.prompts)) as advance:
            for rid in range(len(run.prompts)):
                if not run.run_request(rid, advance):
                    break
    finally:
        result = run.close()
    return result
