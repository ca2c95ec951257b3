"""``specsim report``: one self-contained, offline, interactive HTML file about a trace.

The file embeds plotly.js once (``plotly.offline.get_plotlyjs()``) and each figure as a JSON
data block; nothing is fetched from the network (a Content-Security-Policy forbids it, and only
the two scripts carrying this report's nonce may run). Every piece of text that comes from a
trace -- prompts, outputs, model names, metadata, finding texts -- goes through
:func:`html.escape`, and JSON placed inside ``<script>`` has ``<``, ``>`` and ``&`` written as
``\\u003c``-style escapes, so no string can close the tag or inject markup.

The what-if sweeps behind the report (through :mod:`sim`) are :func:`run_whatifs`
(:mod:`analysis.report_whatifs`); :func:`build_report` gathers everything
(:mod:`analysis.report_data`) and :func:`render_html` writes the page
(:mod:`analysis.report_html`, inside :mod:`analysis.html_page`'s shell). Every name of those
modules that callers use is importable from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.html_page import escape_json, page_shell, script_json
from analysis.metrics import first_requests
from analysis.report_data import (
    ReportConfig,
    ReportData,
    Step,
    build_report,
    findings_and_metrics,
    order_findings,
)
from analysis.report_html import _findings_html as _findings_html
from analysis.report_html import _whatif_html as _whatif_html
from analysis.report_html import page_caveat, render_html
from analysis.report_whatifs import HARDWARE, WhatIfConfig, WhatIfs, run_whatifs
from tracing.trace import Trace


def write_report(
    trace: Trace,
    path: str | Path,
    config: ReportConfig | None = None,
    **kwargs: Any,
) -> ReportData:
    """Build the report of ``trace`` (see :func:`build_report` for ``kwargs``) into ``path``."""
    data = build_report(trace, config, **kwargs)
    Path(path).write_text(render_html(data), encoding="utf-8")
    return data


__all__ = [
    "HARDWARE",
    "ReportConfig",
    "ReportData",
    "Step",
    "WhatIfConfig",
    "WhatIfs",
    "build_report",
    "escape_json",
    "findings_and_metrics",
    "first_requests",
    "order_findings",
    "page_caveat",
    "page_shell",
    "render_html",
    "run_whatifs",
    "script_json",
    "write_report",
]
