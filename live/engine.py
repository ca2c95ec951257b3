"""The serving engine: continuous batching in its own thread, knowing nothing of HTTP.

Requests come in through :meth:`Engine.submit` (any thread; a bounded waiting queue, past
which it raises :class:`Overloaded`) and leave through their own ``asyncio.Queue``: after every
engine step each running request gets one :class:`StepEvent` (its new tokens and its cycle),
posted onto its event loop with ``call_soon_threadsafe``, and a last event when it finishes.
The loop (iteration-level scheduling, as vLLM and Orca): take in submissions and
cancellations, admit waiting requests while there are free rows (prefilling each), run one
:meth:`live.batch.BatchDecoder.step`, write every row's cycle to the trace (flushed per line)
and the request line of each request that ended. Each request gets its own policy object, built
from the spec. :meth:`Engine.shutdown` ends every request still waiting or running as
``interrupted`` and closes the trace, which stays valid.

Failures stay with the request that caused them: an exception while admitting (prefilling) one
request ends that request alone with ``stop_reason: "error"`` (its last event carries
``finish="error"`` and the message); an exception in a batched step ends the requests of that
step as ``error`` and the engine goes on with an empty batch. Only an exception the engine cannot
recover from (one while ending requests) stops the thread; ``error`` then says why (``/health``
fails and ``serve`` exits non-zero). The bound on requests is exact: at most ``max_queue``
waiting plus ``max_batch`` running (a request counts from :meth:`Engine.submit` until its request
line is written, so one being prefilled still holds its place).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from live.batch import BatchDecoder, BatchRequest, Row, StepOutcome
from live.batch_drafts import BatchDraft
from live.batch_profile import ProfiledStepCost
from live.sampling import SamplingConfig
from live.server_metrics import ServerMetrics
from sim.policies.library import make_policy
from tracing.errors import SpecsimError
from tracing.jsonl import TraceWriter
from tracing.schema import CycleRecord, RequestRecord


class Overloaded(SpecsimError):
    """The waiting queue is full: the caller should retry later (HTTP 503)."""


@dataclass
class StepEvent:
    """What one engine step gave a request; ``finish`` is set on its last event: ``stop``
    (EOS or a stop sequence), ``length``, ``budget``, ``abort`` (interrupted) or ``error``
    (the request failed in the engine; ``error`` says why)."""

    tokens: list[int]
    cycle: CycleRecord | None = None
    finish: str | None = None
    error: str | None = None


@dataclass
class EngineRequest:
    """One request as the engine sees it (built by the HTTP layer)."""

    request_id: str
    prompt_ids: list[int]
    max_tokens: int
    sampling: SamplingConfig
    stop: Callable[[list[int]], bool] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    events: asyncio.Queue[StepEvent] | None = None
    prompt_text: str | None = None
    ignore_eos: bool = False
    key: int = -1
    arrival_s: float = 0.0
    start_s: float | None = None
    prefill_s: float = 0.0
    first_token_s: float | None = None
    end_s: float | None = None
    tokens: list[int] = field(default_factory=list)
    cycles: list[CycleRecord] = field(default_factory=list)
    stop_reason: str | None = None  # the trace's: eos | length | budget | interrupted

    def post(self, event: StepEvent) -> None:
        """Hand ``event`` to the request's event loop (thread-safe); dropped when it is gone."""
        if self.loop is None or self.events is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)


_FINISH = {"eos": "stop", "length": "length", "budget": "length", "interrupted": "abort",
           "error": "error"}


class Engine:
    """Owns the batch decoder, its thread, the waiting queue and the server trace."""

    def __init__(self, target: Any, draft: BatchDraft | None, *, policy: str,
                 eos_token_ids: set[int], writer: TraceWriter | None, max_batch: int = 8,
                 max_step_tokens: int = 512, max_queue: int = 64,
                 metrics: ServerMetrics | None = None) -> None:
        if max_queue < 0:
            raise SpecsimError(f"--max-queue must be >= 0, got {max_queue}")
        self.policy = make_policy(policy)  # the run's policy; each request gets a fork
        self.policy_spec = policy
        self.eos = set(eos_token_ids)
        self.writer = writer
        self.max_queue = max_queue
        self._t0 = time.perf_counter()
        self.decoder = BatchDecoder(target, draft, max_batch=max_batch,
                                    max_step_tokens=max_step_tokens, policy=self.policy,
                                    clock=self.clock)
        self.metrics = metrics or ServerMetrics()
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._waiting: deque[EngineRequest] = deque()
        self._running: dict[int, EngineRequest] = {}
        self._queued = 0  # submitted, not yet admitted nor cancelled (guarded by _lock)
        self._inflight = 0  # submitted, request line not yet written (guarded by _lock)
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.error: BaseException | None = None

    def clock(self) -> float:
        """Seconds since the engine was made (the trace's time axis)."""
        return time.perf_counter() - self._t0

    # -- the HTTP side (any thread) ----------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread."""
        self._thread = threading.Thread(target=self._run, name="specsim-engine", daemon=True)
        self._thread.start()

    def submit(self, request: EngineRequest) -> None:
        """Queue ``request``; raises :class:`Overloaded` when the waiting queue is full."""
        if self._stopped.is_set():
            raise Overloaded("server is shutting down")
        with self._lock:
            if self._inflight >= self.max_queue + self.decoder.max_batch:
                raise Overloaded(f"waiting queue full ({self.max_queue} requests)")
            self._queued += 1
            self._inflight += 1
        request.key = next(self._keys)
        request.arrival_s = self.clock()
        self._inbox.put(("submit", request))

    def cancel(self, request: EngineRequest) -> None:
        """The client went away: free the request's slot (a no-op once it has finished)."""
        self._inbox.put(("cancel", request))

    def stop(self) -> None:
        """Ask the engine to end (without waiting): every request still waiting or running
        ends as interrupted, then the trace is closed."""
        self._stopped.set()
        self._inbox.put(("stop", None))

    def shutdown(self, timeout: float = 30.0) -> None:
        """:meth:`stop`, and wait for the engine thread to finish."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        elif self.writer is not None:  # never started
            self.writer.close()

    @property
    def waiting(self) -> int:
        """Requests queued and not yet running."""
        return self._queued

    @property
    def running(self) -> int:
        """Requests in the batch."""
        return len(self._running)

    # -- the engine thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                idle = not self._running and not self._waiting
                if not self._take_inbox(block=idle):
                    break
                self._admit()
                if self._running:
                    self._step()
                self.metrics.set_load(len(self._running), self._queued)
        except BaseException as exc:  # surfaced by /health; requests end as interrupted
            self.error = exc
            raise
        finally:
            self._stopped.set()
            self._interrupt_all("error" if self.error is not None else "interrupted")
            if self.writer is not None:
                self.writer.close()

    def _take_inbox(self, block: bool) -> bool:
        """Apply submissions and cancellations; False when told to stop."""
        while True:
            try:
                kind, item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
            except queue.Empty:
                if block:
                    continue
                return True
            block = False
            if kind == "stop":
                return False
            if kind == "submit":
                self._waiting.append(item)
            elif kind == "cancel":
                self._cancel(item)

    def _cancel(self, request: EngineRequest) -> None:
        if request in self._waiting:
            self._waiting.remove(request)
            with self._lock:
                self._queued -= 1
            self._finish(request, "interrupted")
        elif request.key in self._running:
            self.decoder.cancel(request.key)
            del self._running[request.key]
            self._finish(request, "interrupted")

    def _admit(self) -> None:
        """Waiting requests join while rows are free and their prompts fit the step's token
        budget (``max_step_tokens``, as vLLM's ``max_num_batched_tokens``; one at least)."""
        used = 0
        while self._waiting and self.decoder.free:
            n = len(self._waiting[0].prompt_ids)
            if used and used + n > self.decoder.max_step_tokens:
                break
            used += n
            request = self._waiting.popleft()
            with self._lock:
                self._queued -= 1
            import torch

            rows = len(self.decoder.rows)
            try:
                ids = torch.tensor([request.prompt_ids], dtype=torch.long)
                row = self.decoder.add(BatchRequest(
                    key=request.key, input_ids=ids, max_new_tokens=request.max_tokens,
                    sampling=request.sampling, policy=self.policy.fork(),
                    eos_token_ids=set() if request.ignore_eos else self.eos, stop=request.stop,
                    trace_id=request.request_id))
            except Exception as exc:  # this request fails; the batch is as it was
                if len(self.decoder.rows) != rows:
                    raise
                self._finish(request, "error", error=_describe(exc))
                continue
            request.start_s, request.prefill_s = row.start_s, row.prefill_s
            self._running[request.key] = request

    def _step(self) -> None:
        """One batched step; when it raises, the step's requests end as ``error`` (their rows
        leave the batch) and the engine goes on."""
        try:
            outcomes = self.decoder.step()
        except Exception as exc:
            message = _describe(exc)
            for key, request in list(self._running.items()):
                self.decoder.cancel(key)  # raising here is what stops the engine
                del self._running[key]
                self._finish(request, "error", error=message)
            return
        self._after_step(outcomes)

    def _after_step(self, outcomes: list[StepOutcome]) -> None:
        cost = self.decoder.step_cost
        cycles = [o.cycle for o in outcomes if o.cycle is not None]
        if isinstance(cost, ProfiledStepCost) and cycles:
            cost.observe(len(cycles), max(c.tau for c in cycles), cycles[0].draft_s or 0.0)
        for out in outcomes:
            request = self._running[out.row.request.key]
            if out.cycle is not None:
                request.cycles.append(out.cycle)
                request.tokens.extend(out.new_tokens)
                if request.first_token_s is None:
                    request.first_token_s = self.clock()
                if self.writer is not None:
                    self.writer.write_cycle(out.cycle)
                self.metrics.observe_cycle(out.cycle)
            if out.finished is None:
                request.post(StepEvent(out.new_tokens, out.cycle))
            else:
                del self._running[request.key]
                self._finish(request, out.finished, out.new_tokens, out.cycle, out.row)

    def _finish(self, request: EngineRequest, reason: str, tokens: list[int] | None = None,
                cycle: CycleRecord | None = None, row: Row | None = None,
                error: str | None = None) -> None:
        """Write the request line and send the last event."""
        with self._lock:
            self._inflight -= 1
        now = self.clock()
        request.end_s = now
        request.stop_reason = reason
        if request.start_s is None:  # never ran (cancelled or interrupted while waiting)
            request.start_s = now
        if self.writer is not None:
            self.writer.write_request(self._record(request))
        self.metrics.observe_request(request, reason)
        request.post(StepEvent(tokens or [], cycle, _FINISH.get(reason, "stop"), error))

    def _record(self, request: EngineRequest) -> RequestRecord:
        start = float(request.start_s or 0.0)
        end = float(request.end_s or start)
        first = request.first_token_s if request.first_token_s is not None else end
        values: dict[str, Any] = dict(
            request_id=request.request_id, arrival_s=request.arrival_s, start_s=start,
            first_token_s=min(max(first, start), end), end_s=end,
            prompt_tokens=len(request.prompt_ids),
            output_tokens=sum(c.emitted for c in request.cycles),
            prefill_s=request.prefill_s, verify_passes=len(request.cycles),
            prompt_text=request.prompt_text, stop_reason=request.stop_reason)
        return RequestRecord(**values)

    def _interrupt_all(self, reason: str) -> None:
        """Shutdown (``interrupted``) or an engine failure (``error``): every request still
        waiting or running ends with ``reason``."""
        for key, request in list(self._running.items()):
            with contextlib.suppress(Exception):  # a failed decoder may not cancel cleanly
                self.decoder.cancel(key)
            del self._running[key]
            self._finish(request, reason)
        while self._waiting:
            request = self._waiting.popleft()
            with self._lock:
                self._queued -= 1
            self._finish(request, reason)
        # submissions that raced the stop
        while True:
            try:
                kind, item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "submit":
                with self._lock:
                    self._queued -= 1
                self._finish(item, reason)


def _describe(exc: BaseException) -> str:
    """One line naming a failure (its type and message, cut to 200 characters)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__
