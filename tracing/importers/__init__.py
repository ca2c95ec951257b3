"""Importers: serving engines' output -> specsim's schema (one module per engine).

Each is a pure function of its input files returning an :class:`ImportResult`: a trace when the
input has requests (vLLM, SGLang, llama.cpp responses), an acceptance profile always (vLLM logs
and Prometheus scrapes give only that), and ``missing``: what the input lacked and how it was
filled -- never invented silently.

Public names load their module on first use, so the ``specsim`` parser (which imports
:mod:`tracing.importers.cli`) never loads pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracing.lazy import lazy_getattr

if TYPE_CHECKING:
    from tracing.importers.cli import FORMATS, run_import, write_output
    from tracing.importers.profile import AcceptanceProfile, ImportResult

_EXPORTS = {
    "FORMATS": "tracing.importers.cli",
    "run_import": "tracing.importers.cli",
    "write_output": "tracing.importers.cli",
    "AcceptanceProfile": "tracing.importers.profile",
    "ImportResult": "tracing.importers.profile",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = ["FORMATS", "AcceptanceProfile", "ImportResult", "run_import", "write_output"]
