"""The client trace of ``specsim load``, written as requests end, so no stop loses what finished.

Each request that ends is appended at once to a JSONL trace (its cycles, then its request line,
flushed): ``--out`` itself when it is ``.jsonl``, else ``OUT.partial.jsonl`` beside it. A SIGINT
(handled: :func:`live.load.run_load` marks the requests in flight ``interrupted``) or a normal end
then rewrites ``--out`` whole from every record, with the run's figures in its metadata
(``tau_basis``, ``errors``, batch sizes, which the streamed lines leave out because the schema
takes them on every cycle or none; the streamed run line carries the first request's); a SIGKILL
leaves the streamed lines, a valid trace of what
completed (``trace validate --salvage`` keeps them when the last line was cut).

Only traces the reader accepts are written: each record is checked as a one-request trace before
its lines go out; one the reader would refuse (whatever the server sent) becomes an error of
that request, its cycles dropped -- never a trace ``trace validate`` rejects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tracing.errors import SpecsimError, TraceError

if TYPE_CHECKING:  # annotations only: live.load imports this module
    from live.load import ClientRecord, LoadConfig


class StreamedTrace:
    """The run's trace on disk, one finished request at a time; a context manager."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        jsonl = config.out.lower().endswith(".jsonl")
        self.path = config.out if jsonl else config.out + ".partial.jsonl"
        self.writer: Any = None  # tracing.jsonl.TraceWriter, opened with the first request
        self.ids: set[Any] = set()

    def __enter__(self) -> StreamedTrace:
        if self.path != self.config.out:
            from tracing.outputs import claim

            claim(self.path, self.config.force, flag="--out (its partial trace)")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def add(self, rec: ClientRecord, model: str) -> None:
        """Append one finished request (its cycles, then its request line)."""
        trace = self._checked(rec, model)
        if self.writer is None:
            from tracing.jsonl import TraceWriter

            self.writer = TraceWriter(self.path, trace.meta)
            self.writer.open()
        for cycle in trace.cycle_records():
            cycle.batch_size = None  # every cycle or none: the final rewrite restores them
            self.writer.write_cycle(cycle)
        for request in trace.request_records():
            self.writer.write_request(request)

    def finish(self, records: list[ClientRecord], model: str,
               annotate: Callable[[Any], None] | None = None) -> None:
        """Rewrite ``--out`` whole from ``records`` (validated), with the run's metadata
        (``annotate`` adds what the engine said to the trace's run line first)."""
        from live.load_trace import client_trace
        from tracing.io import write_trace
        from tracing.validate import validate_trace

        self.__exit__(None, None, None)
        for rec in records:
            if rec.request_id not in self.ids:
                self._checked(rec, model)
        trace = client_trace(records, self.config, model)
        if annotate is not None:
            annotate(trace)
        try:
            validate_trace(trace)
        except TraceError as exc:  # a bug of ours: keep what was streamed, say so
            raise SpecsimError(f"--out {self.config.out}: the run's trace did not validate "
                               f"({exc}); the requests streamed so far are in {self.path}"
                               ) from None
        write_trace(trace, self.config.out)
        if self.path != self.config.out:
            Path(self.path).unlink(missing_ok=True)

    def _checked(self, rec: ClientRecord, model: str) -> Any:
        """``rec`` as a one-request trace the reader accepts (an id of its own; a record whose
        reply makes an invalid trace becomes an error without cycles)."""
        from live.load_trace import client_trace
        from tracing.validate import validate_trace

        rid = rec.request_id or f"client-{rec.index}"
        if rid in self.ids:
            rid = f"{rid}#{rec.index}"  # the server reused an id (or sent none twice)
        rec.request_id = rid
        self.ids.add(rid)
        trace = client_trace([rec], self.config, model)
        try:
            validate_trace(trace)
        except TraceError as exc:
            rec.error = rec.error or f"malformed reply: {str(exc)[:200]}"
            rec.chunks, rec.metrics = [], None
            trace = client_trace([rec], self.config, model)
            validate_trace(trace)
        return trace
