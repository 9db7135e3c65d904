"""A CSV file read row by row, never whole, with the line each row starts on and the bytes read so far."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

if TYPE_CHECKING:
    from _csv import Reader

# Excel writes a byte order mark; `utf-8-sig` reads files with and without one.
DEFAULT_ENCODING = "utf-8-sig"


class CsvProblem(ValueError):
    """The file cannot be read as CSV (encoding, an empty file); the message says where."""


@dataclass(frozen=True)
class CsvRow:
    line: int  # where the row starts in the file, the header being line 1
    cells: list[str]


class _CountingReader(io.RawIOBase):
    """Counts the bytes handed to the text decoder: the progress through the file."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class CsvSource:
    """`with CsvSource(path) as source:` then `source.headers` and `for row in source.rows()`."""

    def __init__(self, path: Path, *, encoding: str = DEFAULT_ENCODING, delimiter: str = ",") -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.size = path.stat().st_size
        self.headers: list[str] = []
        self._raw: BinaryIO | None = None
        self._counter: _CountingReader | None = None
        self._reader: Reader | None = None

    def __enter__(self) -> Self:
        self._raw = self.path.open("rb")
        self._counter = _CountingReader(self._raw)
        # newline="": the csv module handles line ends itself, inside quoted cells too.
        text = io.TextIOWrapper(io.BufferedReader(self._counter), encoding=self.encoding, newline="")
        self._reader = csv.reader(text, delimiter=self.delimiter)
        header = self._next()
        if header is None:
            raise CsvProblem(f"{self.path}: the file is empty; it needs a header row")
        self.headers = [name.strip() for name in header]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._raw is not None:
            self._raw.close()

    @property
    def bytes_read(self) -> int:
        return self._counter.count if self._counter is not None else 0

    def _next(self) -> list[str] | None:
        assert self._reader is not None
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError as exc:
            raise CsvProblem(
                f"{self.path}: after line {self._reader.line_num}, bytes that are not {self.encoding} "
                "(pass --encoding, e.g. cp1252)"
            ) from exc
        except csv.Error as exc:
            raise CsvProblem(f"{self.path}: line {self._reader.line_num}: {exc}") from exc

    def rows(self) -> Iterator[CsvRow]:
        """Every row after the header; blank rows (no cell with text) are skipped."""
        assert self._reader is not None
        while True:
            start = self._reader.line_num + 1
            cells = self._next()
            if cells is None:
                return
            if any(cell.strip() for cell in cells):
                yield CsvRow(start, cells)
