"""Errors that mean "the input is bad": the CLI prints them as one line and exits 2."""

from __future__ import annotations


class SpecsimError(Exception):
    """Bad input (a trace, a scenario, a flag, a model path).

    The message is one line that names what and where; the CLI prints it to stderr and exits 2.
    Every package of specsim raises this (or a subclass) for input it cannot accept.
    """


class TraceError(SpecsimError):
    """A trace that breaks the schema: names the file, the line (JSONL) or row (Parquet), the field."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path, self.line, self.row, self.field = path, line, row, field
        where = path
        if line is not None:
            where += f":{line}"
        elif row is not None:
            where += f" row {row}"
        if field is not None:
            where += f" field '{field}'"
        super().__init__(f"{where}: {message}")


class TruncatedTraceError(TraceError):
    """A JSONL trace cut off mid-line (a crash while writing). The complete records stay readable."""

    def __init__(self, path: str, line: int, records_read: int) -> None:
        self.records_read = records_read
        super().__init__(
            path,
            f"trace is cut off mid-line (last line incomplete); {records_read} complete records "
            "were read before it",
            line=line,
        )
