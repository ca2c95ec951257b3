"""llama-server's log (``specsim import llamacpp-log LOG...``): the lines it prints when a
request (a *task* on a slot) finishes::

    slot print_timing: id  0 | task 5 | prompt eval time =   12.34 ms /    20 tokens (...)
    slot print_timing: id  0 | task 5 |        eval time =  456.78 ms /    32 tokens (...)
    slot print_timing: id  0 | task 5 | draft acceptance = 0.40000 (    8 accepted /    20 generated), mean len =  1.80

(the prefix before ``slot`` -- a timestamp, a level letter -- may vary). Each task becomes a
response-shaped record (``prompt_n``, ``prompt_ms``, ``predicted_n``, ``predicted_ms``,
``draft_n``, ``draft_n_accepted``) read as :mod:`tracing.importers.llamacpp` reads responses;
its request id is ``task-N``. The "mean len" (1 + accepted / verify steps) is kept per request
under ``extra.log_mean_len``: rounded to 2 decimals, it does not give the steps exactly. A task
whose lines are incomplete (a log cut mid-request) is an error naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tracing.errors import TraceError
from tracing.importers.common import read_text
from tracing.importers.llamacpp import Located, import_responses
from tracing.importers.profile import ImportResult

_TASK = re.compile(r"\bid\s+(\d+) \| task (\d+) \| (.*)$")
_PROMPT = re.compile(r"^prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_EVAL = re.compile(r"^eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_DRAFT = re.compile(r"^draft acceptance =\s*[\d.]+ \(\s*(\d+) accepted /\s*(\d+) generated\), "
                    r"mean len =\s*([\d.]+)")


def log_entries(path: str, lens: dict[str, float]) -> Iterator[Located]:
    """One response-shaped object per finished task (module docstring), at its eval line."""
    open_tasks: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    done: list[tuple[str, int, dict[str, Any]]] = []
    for i, raw in enumerate(read_text(path).splitlines(), start=1):
        m = _TASK.search(raw)
        if m is None:
            continue
        task, text = f"task-{m.group(2)}", m.group(3).strip()
        if p := _PROMPT.match(text):
            if task in open_tasks and "predicted_n" not in open_tasks[task]:
                raise TraceError(path, f"{task}: a second 'prompt eval time' before its "
                                 "'eval time' line", line=i)
            open_tasks[task] = {"prompt_ms": float(p.group(1)), "prompt_n": int(p.group(2))}
            lines[task] = i
        elif e := _EVAL.match(text):
            if task not in open_tasks:
                raise TraceError(path, f"{task}: 'eval time' without its 'prompt eval time' "
                                 "line", line=i)
            open_tasks[task].update(predicted_ms=float(e.group(1)), predicted_n=int(e.group(2)))
            done.append((task, i, open_tasks[task]))
        elif d := _DRAFT.match(text):
            if task not in open_tasks or "predicted_n" not in open_tasks[task]:
                raise TraceError(path, f"{task}: 'draft acceptance' before its 'eval time' "
                                 "line", line=i)
            open_tasks[task].update(draft_n_accepted=int(d.group(1)), draft_n=int(d.group(2)))
            lens[task] = float(d.group(3))
    cut = [t for t, timings in open_tasks.items() if "predicted_n" not in timings]
    if cut:
        raise TraceError(path, f"{cut[0]}: its 'eval time' line is missing (a log cut "
                         "mid-request?)", line=lines[cut[0]])
    for task, line, timings in done:
        yield path, line, {"id": task, "timings": timings}


def import_llamacpp_log(paths: list[str]) -> ImportResult:
    """Read llama-server logs into a trace (module docstring)."""
    lens: dict[str, float] = {}
    entries = [e for path in paths for e in log_entries(path, lens)]
    result = import_responses(entries, paths, "llamacpp-log")
    if result.trace is not None:
        result.trace.meta.extra["log_mean_len"] = lens
    result.missing["arrival_s"] = "not in the log: requests laid end to end in log order"
    return result
