"""Trace records built by keyword across schema versions (no torch: the load generator uses it).

Schema v2 keeps engines' string request ids and adds cycle ``batch_size``/``cycle_s`` and request
``stop_reason``; :func:`make_cycle` and :func:`make_request` drop the fields the installed schema
lacks, so the writers work on either side of the change.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tracing.schema import REQUEST_COLUMNS, CycleRecord, RequestRecord

# Schema v2 keeps engines' string ids; v1 takes integers only.
STRING_IDS = REQUEST_COLUMNS["request_id"][0] != "int"
_CYCLE_FIELDS = {f.name for f in fields(CycleRecord)}
_REQUEST_FIELDS = {f.name for f in fields(RequestRecord)}


def make_cycle(**values: Any) -> CycleRecord:
    """A CycleRecord from keyword values; fields this schema version lacks are dropped."""
    return CycleRecord(**{k: v for k, v in values.items() if k in _CYCLE_FIELDS})


def make_request(**values: Any) -> RequestRecord:
    """A RequestRecord from keyword values; fields this schema version lacks are dropped."""
    return RequestRecord(**{k: v for k, v in values.items() if k in _REQUEST_FIELDS})
