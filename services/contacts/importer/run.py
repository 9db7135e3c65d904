"""An import: rows read, mapped, sent in batches, counted, and the rejected ones written to a file.

Only one batch is in memory at a time, and batches go one after another, in the file's order, so rows
that share an email apply in order across batches too. A batch holds at most `batch_size` records and
about `MAX_BATCH_BYTES` of JSON, well under the API's default body limit of 1 MiB.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from services.contacts.importer.api import ContactsApi, ImportRefused
from services.contacts.importer.mapping import ColumnMapping, Record, RowProblem
from services.contacts.importer.reading import CsvRow, CsvSource

MAX_BATCH_RECORDS = 1000
MAX_BATCH_BYTES = 512 * 1024
ERROR_COLUMNS = ["line", "column", "field", "code", "message", "existing_id"]


@dataclass
class Summary:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors_path: Path | None = None

    def count(self, status: str) -> None:
        if status == "created":
            self.created += 1
        elif status == "updated":
            self.updated += 1
        elif status == "unchanged":
            self.unchanged += 1
        else:
            self.failed += 1


class ImportStopped(Exception):
    """The server refused a batch as a whole: rows from `line` on were not imported."""

    def __init__(self, reason: str, summary: Summary, line: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.summary = summary
        self.line = line


class ErrorsFile:
    """The rejected rows, each with its line, column, field and reason, then its cells as they were:
    fix them there and import the file again (with `--ignore-unmapped`, or the five columns mapped to
    nothing). Opened at the first rejected row, so a clean import leaves no file behind."""

    def __init__(self, path: Path, headers: list[str]) -> None:
        self.path = path
        self.headers = headers
        self._file: TextIO | None = None
        self._writer: Any = None

    def add(self, row: CsvRow, column: str, field: str, code: str, message: str, existing_id: str) -> None:
        if self._writer is None:
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow([*ERROR_COLUMNS, *self.headers])
        self._writer.writerow([row.line, column, field, code, message, existing_id, *row.cells])

    @property
    def written(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass
class _Batch:
    rows: list[tuple[CsvRow, Record]] = field(default_factory=list)
    size: int = 0


def import_csv(
    source: CsvSource,
    mapping: ColumnMapping,
    api: ContactsApi,
    *,
    errors_path: Path,
    dry_run: bool = False,
    batch_size: int = MAX_BATCH_RECORDS,
    on_progress: Callable[[Summary], None] = lambda _summary: None,
) -> Summary:
    """Import every row of `source`; `on_progress` hears after each batch. Raises `ImportStopped` when
    the server refuses a batch as a whole, with what was done up to then."""
    summary = Summary()
    errors = ErrorsFile(errors_path, source.headers)
    batch = _Batch()

    def send() -> None:
        if not batch.rows:
            return
        try:
            results = api.upsert([record.values for _, record in batch.rows], dry_run=dry_run)
        except ImportRefused as exc:
            raise ImportStopped(str(exc), summary, batch.rows[0][0].line) from exc
        for (row, record), result in zip(batch.rows, results, strict=True):
            summary.count(result["status"])
            if result["status"] == "error":
                error = result["error"]
                errors.add(
                    row,
                    record.column_of(error.get("field")),
                    error.get("field") or "",
                    error["code"],
                    error["message"],
                    error.get("existing_id") or "",
                )
        batch.rows.clear()
        batch.size = 0
        on_progress(summary)

    try:
        for row in source.rows():
            summary.rows += 1
            mapped = mapping.record(row.cells)
            if isinstance(mapped, RowProblem):
                summary.failed += 1
                errors.add(row, mapped.column, mapped.field, "invalid", mapped.message, "")
                continue
            size = len(json.dumps(mapped.values, default=str))
            if batch.rows and (len(batch.rows) >= batch_size or batch.size + size > MAX_BATCH_BYTES):
                send()
            batch.rows.append((row, mapped))
            batch.size += size
        send()
    finally:
        errors.close()
        summary.errors_path = errors_path if errors.written else None
    return summary
