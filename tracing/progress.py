"""Progress of long commands on stderr: a rich bar on a terminal, plain lines when piped.

Every long command (``whatif``, ``validate``, ``demo``, ``capture``, ``profile``, ``serve``'s
start-up, ``simulate``) reports through :class:`Bar` or :func:`say`, so a run whose stderr goes
to a file or a pipe still says what it is doing: a line when it starts, one per 10% of the work
(at most one per :data:`PLAIN_MIN_GAP_S`, and at least one a minute) and one when it is done,
``specsim: LABEL: 12/40 (30%), 85 s``. ``SPECSIM_PROGRESS=plain`` forces the plain
lines on a terminal too; ``=off`` silences both.

Light on purpose (no rich at import): building the ``specsim`` parser imports this module.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

PLAIN_STEP = 0.10  # a plain line each time this fraction of the work more is done
PLAIN_EVERY_S = 60.0  # ... or when this long has passed since the last line
PLAIN_MIN_GAP_S = 2.0  # but no closer than this (a quick job: its first and last line only)


def mode(stream: TextIO | None = None) -> str:
    """``"bar"`` (a terminal), ``"plain"`` (a pipe or a file) or ``"off"``."""
    forced = os.environ.get("SPECSIM_PROGRESS", "").strip().lower()
    if forced in ("off", "plain"):
        return forced
    stream = stream if stream is not None else sys.stderr
    try:
        return "bar" if stream.isatty() else "plain"
    except (AttributeError, ValueError):  # a closed or odd stream
        return "plain"


def say(message: str) -> None:
    """One line of news on stderr (``specsim: MESSAGE``), unless progress is off."""
    if mode() != "off":
        print(f"specsim: {message}", file=sys.stderr, flush=True)


class Bar:
    """Progress over ``total`` units of work: ``advance(n)`` as they are done, ``close()`` at
    the end (or use it as a context manager). A rich bar that disappears when done on a
    terminal; plain lines on stderr otherwise."""

    def __init__(self, label: str, total: int, *, transient: bool = True,
                 announce: bool = True) -> None:
        self.label, self.total, self.done = label, max(int(total), 0), 0
        self._mode = mode()
        self._start = self._last_time = time.monotonic()
        self._last_frac = 0.0
        self._rich: Any = None
        if self._mode == "bar":
            from rich.console import Console
            from rich.progress import Progress

            self._rich = Progress(console=Console(stderr=True), transient=transient)
            self._rich.start()
            self._task = self._rich.add_task(label, total=self.total)
        elif self._mode == "plain" and announce:
            self._line()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._rich is not None:
            self._rich.advance(self._task, n)
        elif self._mode == "plain":
            frac = self.done / self.total if self.total else 1.0
            now = time.monotonic()
            gap = now - self._last_time
            if ((frac - self._last_frac >= PLAIN_STEP - 1e-9 and gap >= PLAIN_MIN_GAP_S)
                    or gap >= PLAIN_EVERY_S or (frac >= 1.0 > self._last_frac)):
                self._last_frac, self._last_time = frac, now
                self._line()

    def describe(self, label: str) -> None:
        """Change what the bar says it is doing (a plain line says it at once)."""
        self.label = label
        if self._rich is not None:
            self._rich.update(self._task, description=label)
        elif self._mode == "plain":
            self._line()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def _line(self) -> None:
        pct = f" ({self.done / self.total:.0%})" if self.total else ""
        took = time.monotonic() - self._start
        print(f"specsim: {self.label}: {self.done}/{self.total}{pct}, {took:.0f} s",
              file=sys.stderr, flush=True)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def steps(total: int, *, label: str = "starting") -> Iterator[Callable[[str], None]]:
    """Named steps of one job: yields ``step(message)``, which marks the previous step done and
    names the next (a plain line per step when piped)."""
    started = False
    with Bar(label, total, announce=False) as bar:

        def step(message: str) -> None:
            nonlocal started
            if bar._mode == "plain":  # one line per step: what is starting now
                if started:
                    bar.done += 1
                print(f"specsim: {message} ({bar.done + 1}/{total}, "
                      f"{time.monotonic() - bar._start:.0f} s)", file=sys.stderr, flush=True)
            else:
                if started:
                    bar.advance()
                bar.describe(message)
            started = True

        yield step


__all__ = ["Bar", "mode", "say", "steps"]
