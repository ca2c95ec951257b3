"""Importers: serving engines' output -> specsim's schema (one module per engine).

Each is a pure function of its input files returning an :class:`ImportResult`: a trace when the
input has requests (vLLM, SGLang, llama.cpp responses), an acceptance profile always (vLLM logs
and Prometheus scrapes give only that), and ``missing``: what the input lacked and how it was
filled -- never invented silently.
"""

from tracing.importers.cli import FORMATS, run_import, write_output
from tracing.importers.profile import AcceptanceProfile, ImportResult

__all__ = ["FORMATS", "AcceptanceProfile", "ImportResult", "run_import", "write_output"]
