"""``specsim serve``: load the models, profile batched verify passes, run the engine and uvicorn.

Start-up, in order: load target and draft; an untimed warm-up decode; the batched verify
profile (:mod:`live.batch_profile`, batch 1..max_batch x tokens 1..tau+1) into the trace's run
metadata; open the server trace (refusing to overwrite without ``force``); start the engine
thread; serve HTTP. SIGINT/SIGTERM: the engine ends every request in flight as
``interrupted`` (their streams get ``finish_reason: "abort"``), uvicorn closes the connections,
the trace is closed and stays valid; a second SIGINT exits at once. Should the engine thread
die (a failure it cannot recover from; one request's failure never does that), ``/health`` turns
503, the server shuts down and ``serve`` returns 1, so a supervisor restarts it.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tracing.errors import SpecsimError


@dataclass
class ServeConfig:
    """Everything ``specsim serve`` resolves from its flags; recorded in the run metadata."""

    target: str
    trace_out: str
    draft: str = "none"
    policy: str = "fixed:tau=4"
    max_batch: int = 8
    max_step_tokens: int = 512
    max_queue: int = 64
    max_body_bytes: int = 1 << 20
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None
    profile_tokens: int | None = None  # None: tau + 1; 0: no profile
    profile_rounds: int = 3
    profile_context: int = 0  # tokens of context in each profiled row (0: the warm-up prompt's)
    warmup_tokens: int = 8
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_step_tokens", "profile_rounds", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise SpecsimError(f"--{name.replace('_', '-')} must be >= 1, "
                                   f"got {getattr(self, name)}")
        if self.max_queue < 0:
            raise SpecsimError(f"--max-queue must be >= 0, got {self.max_queue}")
        if not 0 <= self.port < 65536:
            raise SpecsimError(f"--port must be in 0..65535, got {self.port}")
        if self.threads is not None and self.threads < 1:
            raise SpecsimError(f"--threads must be >= 1, got {self.threads}")
        if self.profile_context < 0:
            raise SpecsimError(f"--profile-context must be >= 0, got {self.profile_context}")
        if self.profile_tokens is not None and self.profile_tokens < 0:
            raise SpecsimError(f"--profile-tokens must be >= 0, got {self.profile_tokens}")
        if not self.trace_out.endswith(".jsonl"):
            raise SpecsimError(f"--trace-out {self.trace_out}: the server streams JSONL "
                               "(use a .jsonl name; convert later with specsim trace convert)")
        check_output(self.trace_out, self.force, "--trace-out")


def _max_positions(target: Any) -> int:
    """The target's longest context (2048 when its config does not say)."""
    return int(getattr(target.model.config, "max_position_embeddings", 0) or 2048)


def check_output(path: str, force: bool, flag: str) -> None:
    """Refuse to overwrite ``path`` without ``force`` (:func:`tracing.outputs.claim`); its
    directory must exist."""
    from tracing.outputs import claim

    claim(path, force, flag=flag)
    out = Path(path)
    if not out.resolve().parent.is_dir():
        raise SpecsimError(f"{flag} {path}: directory {out.resolve().parent} does not exist")


def max_draft_tokens(policy: Any) -> int:
    """The most tokens ``policy`` may draft in one step (vLLM's ``num_speculative_tokens``)."""
    inner = getattr(policy, "inner", policy)
    return int(max(getattr(inner, "max_tau", 0) or 0, getattr(inner, "tau", 0) or 0,
                   getattr(policy, "max_tau", 0) if inner is not policy else 0))


@dataclass
class Served:
    """A started service: what the routes use, and the engine to stop."""

    service: Any  # live.server.Service
    engine: Any  # live.engine.Engine
    config: ServeConfig


def start_service(config: ServeConfig, target: Any = None) -> Served:
    """Load, warm up, profile, open the trace and start the engine (no HTTP yet); each step
    says on stderr that it starts (a bar on a terminal, plain lines when piped)."""
    from tracing.progress import steps

    with steps(5, label="serve: starting") as step:
        return _start_service(config, target, step)


def _start_service(config: ServeConfig, target: Any, step: Any) -> Served:
    import torch

    from live.batch import BatchRequest
    from live.batch_drafts import make_batch_draft
    from live.batch_profile import (
        BATCH_PROFILE_KEY,
        ProfiledStepCost,
        profile_batched_verify,
        single_stream_profile,
    )
    from live.capture import _draft_params, eos_ids, library_versions
    from live.engine import Engine
    from live.models import load_model
    from live.profile import PROFILE_KEY
    from live.prompts import encode_prompt, load_prompts
    from live.sampling import SamplingConfig
    from live.server import Service
    from live.server_metrics import ServerMetrics
    from sim.policies.library import make_policy
    from tracing.jsonl import TraceWriter
    from tracing.schema import RunMeta

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    policy = make_policy(config.policy)
    step(f"serve: loading {config.target}" + ("" if target is None else " (given)"))
    target = target if target is not None else load_model(config.target, config.device,
                                                          config.dtype)
    step(f"serve: loading draft {config.draft}")
    draft = make_batch_draft(config.draft, target)
    spec_tokens = max_draft_tokens(policy) if draft is not None else None
    stops = eos_ids(target.tokenizer, target.model)
    name = config.served_model_name or target.name
    metrics = ServerMetrics(name)
    engine = Engine(target, draft, policy=config.policy, eos_token_ids=stops, writer=None,
                    max_batch=config.max_batch, max_step_tokens=config.max_step_tokens,
                    max_queue=config.max_queue, metrics=metrics)
    warm = encode_prompt(target.tokenizer, load_prompts("builtin:chat", 1)[0])
    step(f"serve: warming up ({config.warmup_tokens} tokens)")
    if config.warmup_tokens:  # untimed: kernel selection and allocator growth
        dec = engine.decoder
        dec.policy = None  # the warm-up teaches the run's policy nothing
        dec.add(BatchRequest(-1, warm, config.warmup_tokens, SamplingConfig(),
                             make_policy(config.policy).fork(), stops))
        while dec.rows:
            dec.step()
        dec.policy = engine.policy
    extra: dict[str, Any] = {
        "workload": "server", "target_n_params": target.n_params,
        "draft_n_params": _draft_params(draft), "config": asdict(config),
        "server": {"max_batch": config.max_batch, "max_step_tokens": config.max_step_tokens,
                   "max_queue": config.max_queue, "served_model_name": name,
                   "torch_threads": torch.get_num_threads()}}
    n_tokens = config.profile_tokens if config.profile_tokens is not None else (
        (spec_tokens or 0) + 1)
    step(f"serve: profiling verify passes (batch 1..{config.max_batch} x tokens 1..{n_tokens}, "
         f"{config.profile_rounds} rounds)" if n_tokens else "serve: profiling off")
    if n_tokens:
        profile = profile_batched_verify(target, warm, max_batch=config.max_batch,
                                         max_tokens=n_tokens, rounds=config.profile_rounds,
                                         context=min(config.profile_context,
                                                     _max_positions(target) - n_tokens))
        extra[BATCH_PROFILE_KEY] = profile
        extra[PROFILE_KEY] = single_stream_profile(profile)
        engine.decoder.step_cost = ProfiledStepCost(profile["seconds"])
    from live.hostprobe import host_probe

    extra["host_probe"] = host_probe(target.device)  # the server process's dispatch speed
    meta = RunMeta(source="live", target_model=target.name, draft_model=config.draft,
                   device=target.device_name, dtype=target.dtype, policy=policy.name,
                   policy_params=policy.params(), library_versions=library_versions(),
                   extra=extra)
    step(f"serve: opening {config.trace_out} and starting the engine")
    writer = TraceWriter(config.trace_out, meta)
    writer.open()
    engine.writer = writer
    engine.start()
    max_len = _max_positions(target)
    service = Service(engine=engine, tokenizer=target.tokenizer, model_name=name,
                      max_model_len=max_len, num_spec_tokens=spec_tokens,
                      max_body_bytes=config.max_body_bytes)
    return Served(service, engine, config)


def make_server(served: Served, *, log_level: str = "warning") -> Any:
    """A uvicorn server for ``served`` whose signal handler stops the engine the moment SIGINT
    or SIGTERM arrives (so streams in flight end as interrupted instead of being waited for)
    and does not re-raise the signal after shutdown (``serve`` closes the trace and returns);
    a second SIGINT exits at once."""
    import uvicorn

    from live.server import create_app

    engine = served.engine

    class SpecsimServer(uvicorn.Server):
        async def on_tick(self, counter: int) -> bool:
            if engine.error is not None and not self.should_exit:
                print(f"specsim serve: the engine failed ({engine.error!r}); shutting down",
                      file=sys.stderr, flush=True)
                self.should_exit = True
            return await super().on_tick(counter)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            engine.stop()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    config = served.config
    return SpecsimServer(uvicorn.Config(
        create_app(served.service), host=config.host, port=config.port, log_level=log_level,
        timeout_graceful_shutdown=10, access_log=False))


def serve(config: ServeConfig, *, log_level: str = "warning") -> int:
    """Run the server until SIGINT/SIGTERM (returns 0) or until the engine fails (returns 1)."""
    served = start_service(config)
    server = make_server(served, log_level=log_level)
    print(f"specsim serve: http://{config.host}:{config.port}/v1 ({served.service.model_name}, "
          f"draft {config.draft}, policy {config.policy}, max batch {config.max_batch}); "
          f"trace {config.trace_out}", file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        served.engine.shutdown()
    if served.engine.error is not None:
        print(f"specsim serve: stopped after an engine failure; trace {config.trace_out}",
              file=sys.stderr, flush=True)
        return 1
    print(f"specsim serve: stopped; trace {config.trace_out}", file=sys.stderr, flush=True)
    return 0
