"""One offline, self-contained HTML page (the report's and ``specsim compare``'s):
:func:`page_shell` embeds plotly.js once under a Content-Security-Policy that lets only the
page's own two scripts run; :func:`escape_json` / :func:`script_json` make JSON safe inside
``<script>``; :func:`escape_text` escapes any text for HTML.
"""

from __future__ import annotations

import html
import json
import secrets
from typing import Any


def script_json(obj: Any) -> str:
    """``obj`` as JSON that is safe to place inside ``<script>`` (see :func:`escape_json`)."""
    return escape_json(json.dumps(obj, allow_nan=False))


def escape_json(text: str) -> str:
    """JSON text made safe inside ``<script>``: ``<``, ``>`` and ``&`` become ``\\u00XX``.

    JSON has these characters only inside strings, where the escapes mean the same text; so
    no string can close the tag (``</script>``) or open a comment (``<!--``).
    """
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )



def escape_text(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)



_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 20px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}
.tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{background:#f5f7fa;padding:8px 14px;
border-radius:6px;min-width:110px}.tile b{display:block;font-size:1.3em}.tile span{color:#666}
.finding{border-left:6px solid #999;background:#fafafa;padding:6px 14px;margin:10px 0}
.sev-critical,.sev-high{border-color:#d62728}.sev-medium,.sev-warning{border-color:#ff7f0e}
.sev-low{border-color:#1f77b4}.tag{font-size:.7em;font-weight:normal;
background:#eee;border-radius:4px;padding:1px 6px;margin-left:8px}table{border-collapse:collapse}
table.kv th{text-align:left;padding-right:14px;color:#555;font-weight:normal}
td,th{vertical-align:top;padding:2px 6px}.samples td.text{white-space:pre-wrap;max-width:420px;
font-family:monospace;font-size:.85em}.plot{width:100%;min-height:320px}.warn{color:#b35c00}
table.kv table.kv{margin:2px 0}caption{text-align:left;font-weight:bold;padding:6px 0 2px}
table.rows th{text-align:right;color:#555;font-weight:normal}table.rows td{text-align:right}
.note{color:#555;font-size:.9em}
"""

_RENDER = """
document.querySelectorAll('script[type="application/json"][data-plot]').forEach(function (el) {
  var spec = JSON.parse(el.textContent);
  var div = document.getElementById(el.getAttribute('data-plot'));
  Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
});
"""


def page_shell(title: str, body: str) -> str:
    """One offline HTML page around ``body`` (already escaped HTML): plotly.js embedded once,
    a Content-Security-Policy that lets only this page's two scripts run, and the script that
    draws every ``<script type="application/json" data-plot=ID>`` figure into ``#ID``."""
    from plotly.offline import get_plotlyjs

    nonce = secrets.token_urlsafe(16)
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}' 'unsafe-eval'; "
           "style-src 'unsafe-inline'; img-src data: blob:; font-src data:")
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape_text(title)}</title><style>{_CSS}</style>
<script nonce="{nonce}">{plotly_js}</script>
</head><body>
<h1>{escape_text(title)}</h1>
{body}
<script nonce="{nonce}">{_RENDER}</script>
</body></html>
"""


__all__ = ["escape_json", "escape_text", "page_shell", "script_json"]
