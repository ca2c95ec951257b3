"""Values and tables as a person reads them: the report's HTML tables and the CLI's wording.

* :func:`value_text` -- one value: ``unlimited`` for a verify budget of 0, ``x1.32`` for a
  speedup, 4 significant digits, short lists;
* :func:`table` -- a labelled HTML table; a nested mapping (a scenario's sections, a finding's
  evidence, the run metadata) becomes a sub-table under its label, never a ``key=value`` dump;
* :func:`settings_text` -- a few settings in one line (``tau 3, verify budget unlimited``);
* :data:`SEVERITY_NOTE` -- what a finding's severity means.

No numpy, pandas or plotly here: the CLI uses it too.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

# verify budgets (scenario keys, run policy parameters): 0 means no budget at all
BUDGET_KEYS = ("max_verify_per_request", "mean_verify_per_request", "max_verify", "mean_verify")
LIST_SHOWN = 12  # items of a list written out before "..."
MAX_DEPTH = 4  # nesting of sub-tables; deeper mappings are written on one line

SEVERITY_NOTE = (
    "Severity (0 to 1) says how far past its detector's threshold a finding is, by a formula "
    "per kind (docs/design.md, 'Diagnosis'): high from 0.6, medium from 0.3, else low. It orders "
    "the findings; it is not a probability nor a share of latency. What a fix would change is "
    "the simulated prediction under each finding."
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def is_budget(key: str) -> bool:
    """A verify-budget key (``budget.max_verify_per_request``, a policy's ``max_verify``)."""
    return str(key).rpartition(".")[2] in BUDGET_KEYS


def value_text(value: Any, key: str = "") -> str:
    """``value`` as the report writes it (``key`` says what it is: a budget, a speedup)."""
    if is_budget(key) and isinstance(value, int | float) and not isinstance(value, bool):
        return "unlimited" if value == 0 else f"{value:g}"
    if "speedup" in str(key) and isinstance(value, int | float) and not isinstance(value, bool):
        return "-" if isinstance(value, float) and math.isnan(value) else f"x{float(value):.2f}"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item") and not isinstance(value, list | tuple | dict):
        value = value.item()  # a numpy scalar
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return settings_text(value)
    if isinstance(value, list | tuple):
        shown = ", ".join(value_text(v) for v in list(value)[:LIST_SHOWN])
        return f"[{shown}{', ...' if len(value) > LIST_SHOWN else ''}]"
    if hasattr(value, "tolist"):
        return value_text(value.tolist(), key)
    return str(value)


def settings_text(items: Mapping[str, Any]) -> str:
    """A few settings on one line: ``policy.tau 3; budget.max_verify_per_request unlimited``."""
    return "; ".join(f"{k} {value_text(v, str(k))}" for k, v in items.items()) or "-"


def table(items: Mapping[str, Any], *, caption: str = "", limit: int = 600,
          _depth: int = 0) -> str:
    """``items`` as a two-column HTML table (label, value); a nested mapping becomes a
    labelled sub-table, a list of mappings a table with one row each."""
    rows = []
    for key, value in items.items():
        label = _e(key)
        if isinstance(value, Mapping) and value and _depth < MAX_DEPTH:
            cell = table(value, limit=limit, _depth=_depth + 1)
        elif (isinstance(value, list | tuple) and value and _depth < MAX_DEPTH
              and all(isinstance(v, Mapping) for v in value)):
            cell = _rows_table(list(value), limit)
        else:
            text = value_text(value, str(key))
            cell = _e(text if len(text) <= limit else text[:limit] + " ...")
        rows.append(f"<tr><th>{label}</th><td>{cell}</td></tr>")
    head = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f"<table class='kv'>{head}{''.join(rows)}</table>"


def _rows_table(rows: list[Mapping[str, Any]], limit: int) -> str:
    columns: list[str] = []
    for row in rows[:LIST_SHOWN]:
        columns += [str(k) for k in row if str(k) not in columns]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(value_text(row.get(c), c)[:limit])}</td>" for c in columns)
        + "</tr>" for row in rows[:LIST_SHOWN])
    more = (f"<tr><td colspan='{len(columns)}'>... {len(rows) - LIST_SHOWN} more</td></tr>"
            if len(rows) > LIST_SHOWN else "")
    return f"<table class='rows'><tr>{head}</tr>{body}{more}</table>"


__all__ = ["SEVERITY_NOTE", "is_budget", "settings_text", "table", "value_text"]
