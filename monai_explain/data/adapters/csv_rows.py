"""One CSV reader for every annotation table: header check, row iteration with line tracking, error wrapping.

Every CSV adapter reads its file through :class:`CSVAnnotationReader`, so all of them share one behaviour:

- column names are matched after stripping surrounding white space, on both sides (SIIM's ``" EncodedPixels"``
  and ``"EncodedPixels"`` are the same column, and a header written with spaces after the commas, e.g.
  ``Image Index, Finding Label, Bbox [x, y, w, h]``, reads as the published one); otherwise exactly (case,
  brackets: ``"Bbox [x"``). A missing column raises :class:`AnnotationFormatError` listing the header found,
  the close matches that differ only by case, and the adapter's own hint (e.g. which adapter reads that
  header); two columns with the same stripped name raise;
- cell values are stripped of surrounding white space;
- a row with fewer fields than the header (a truncated line) is an error, unless only header columns with an
  empty name are missing (NIH's trailing ``,,,``); extra fields are allowed only when they are empty;
- lines with no content (blank, or only commas) are skipped, counted and logged;
- exact duplicate rows are dropped (counted and logged, the default), kept, or raise, as asked;
- any other problem of a row (non-numeric value, unknown class, ...) is raised by the adapter through
  :meth:`CSVRow.error`, which names the file, the physical line (header = line 1) and the data row.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence

from monai.utils import StrEnum, look_up_option

from .errors import AnnotationFormatError

__all__ = ["CSVAnnotationReader", "CSVRow", "DuplicatePolicy"]

logger = logging.getLogger(__name__)


class DuplicatePolicy(StrEnum):
    """What to do with a data row identical (every cell) to an earlier one.

    - ``drop``: keep the first, drop the copies; the count and line numbers are logged (default).
    - ``keep``: keep every copy (a duplicated box then appears twice).
    - ``error``: raise :class:`AnnotationFormatError` naming both lines.
    """

    DROP = "drop"
    KEEP = "keep"
    ERROR = "error"


class CSVRow:
    """One data row of an annotation CSV file, with its location for error messages.

    Attributes:
        cells: the stripped cell values, padded to the header length.
        line: physical 1-based line number in the file (header = line 1).
        row: 1-based data row number (first row after the header = 1).
    """

    __slots__ = ("_reader", "cells", "line", "row")

    @property
    def path(self) -> str:
        """The CSV file this row comes from."""
        return self._reader.path

    def __init__(self, cells: list[str], line: int, row: int, reader: CSVAnnotationReader) -> None:
        self.cells = cells
        self.line = line
        self.row = row
        self._reader = reader

    def __getitem__(self, column: str) -> str:
        """Return the stripped text of ``column`` (which must be one of the reader's columns)."""
        return self.cells[self._reader.columns[column.strip()]]

    def get(self, column: str | None, default: str = "") -> str:
        """Return the text of ``column``, or ``default`` when the column is ``None`` or absent from the header."""
        idx = self._reader.columns.get(column.strip()) if column is not None else None
        return default if idx is None else self.cells[idx]

    def require(self, column: str) -> str:
        """Return the text of ``column``, raising when it is empty."""
        value = self[column]
        if not value:
            raise self.error(f"empty value in column {column!r}.")
        return value

    def float(self, column: str) -> float:
        """Return ``column`` as a finite float; empty, non-numeric, NaN or infinite values raise."""
        text = self[column]
        try:
            value = float(text)
        except ValueError:
            raise self.error(f"column {column!r}: {text!r} is not a number.") from None
        if not math.isfinite(value):
            raise self.error(f"column {column!r}: {text!r} is not a finite number.")
        return value

    def int(self, column: str) -> int:
        """Return ``column`` as an integer (``"3"`` or ``"3.0"``); anything else raises."""
        try:
            return int(self[column])
        except ValueError:
            pass
        value = self.float(column)
        if value != int(value):
            raise self.error(f"column {column!r}: {self[column]!r} is not an integer.")
        return int(value)

    def error(self, message: str, cls: type[AnnotationFormatError] = AnnotationFormatError) -> AnnotationFormatError:
        """Build (not raise) an error of class ``cls`` located at this row: ``raise row.error("...")``."""
        return cls(message, self._reader.path, line=self.line, row=self.row)


class CSVAnnotationReader:
    """Iterate over the data rows of an annotation CSV file, checking the header and every row's shape.

    Args:
        path: the CSV file.
        required_columns: column names that must be in the header, spelled exactly as published.
        optional_columns: column names read when present (``CSVRow.get`` returns ``""`` otherwise).
        duplicates: a :class:`DuplicatePolicy` for rows identical to an earlier row.
        delimiter: field separator.
        encoding: text encoding; the default ``"utf-8-sig"`` also accepts a leading byte-order mark.
        missing_hint: called with the header (stripped names) when required columns are missing; the text it
            returns is appended to the error (e.g. "this is the x,y,w,h variant: read it with GenericCSVAdapter").

    Attributes:
        columns: stripped header name -> field index (non-empty names only).
        header: the header fields as read.
        num_rows: data rows yielded so far.
        duplicate_lines: line numbers of the dropped duplicate rows (``duplicates="drop"``).
        blank_lines: line numbers of the skipped empty lines.

    Raises:
        AnnotationFormatError: (when iterating) empty file, missing or repeated column, truncated row, extra
            non-empty fields, a duplicate with ``duplicates="error"``, undecodable text or broken quoting.

    Example:
        .. code-block:: python

            reader = CSVAnnotationReader("train.csv", ["image_id", "class_name"])
            for row in reader:
                image_id, x = row["image_id"], row.float("x_min")
    """

    def __init__(
        self,
        path: str | os.PathLike,
        required_columns: Sequence[str],
        optional_columns: Sequence[str] = (),
        duplicates: DuplicatePolicy | str = DuplicatePolicy.DROP,
        delimiter: str = ",",
        encoding: str = "utf-8-sig",
        missing_hint: Callable[[list[str]], str] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.missing_hint = missing_hint
        self.required_columns = tuple(required_columns)
        self.optional_columns = tuple(optional_columns)
        self.duplicates = look_up_option(duplicates, DuplicatePolicy)
        self.delimiter = delimiter
        self.encoding = encoding
        self.columns: dict[str, int] = {}
        self.header: list[str] = []
        self.num_rows = 0
        self.duplicate_lines: list[int] = []
        self.blank_lines: list[int] = []

    def has(self, column: str | None) -> bool:
        """Whether ``column`` is in the header (known once iteration has started)."""
        return column is not None and column.strip() in self.columns

    def error(self, message: str, line: int | None = None, row: int | None = None) -> AnnotationFormatError:
        """Build an error located in this file."""
        return AnnotationFormatError(message, self.path, line=line, row=row)

    def _check_header(self, header: list[str]) -> None:
        self.header = header
        columns: dict[str, int] = {}
        for idx, raw in enumerate(header):
            name = raw.strip()
            if not name:
                continue
            if name in columns:
                raise self.error(f"column {name!r} appears twice in the header {header}.", line=1)
            columns[name] = idx
        missing = [c for c in self.required_columns if c.strip() not in columns]
        if missing:
            hints = []
            for name in missing:
                close = [h for h in columns if h.casefold() == name.strip().casefold()]
                if close:
                    hints.append(f"{name!r} ~ found {close[0]!r}")
            hint = (
                f" Close matches (names are compared case-sensitively, pass the column name): {'; '.join(hints)}."
                if hints
                else ""
            )
            if self.missing_hint is not None:
                extra = self.missing_hint([h.strip() for h in header])
                hint += f" {extra}" if extra else ""
            raise self.error(f"missing column(s) {missing} in the header {header}.{hint}", line=1)
        self.columns = columns

    def __iter__(self) -> Iterator[CSVRow]:
        """Yield one :class:`CSVRow` per data row (see the class docstring for what raises)."""
        self.num_rows = 0
        self.duplicate_lines = []
        self.blank_lines = []
        seen: dict[tuple[str, ...], int] = {}
        check_duplicates = self.duplicates != DuplicatePolicy.KEEP
        try:
            with open(self.path, newline="", encoding=self.encoding) as f:
                reader = csv.reader(f, delimiter=self.delimiter, strict=True)
                try:
                    header = next(reader)
                except StopIteration:
                    raise self.error("empty file: no header line.") from None
                self._check_header(header)
                width = len(header)
                # the shortest row accepted: every field up to the last non-empty header name
                min_width = max(i for i, h in enumerate(header) if h.strip()) + 1 if self.columns else width
                row_no = 0
                for fields in reader:
                    line = reader.line_num
                    cells = [c.strip() for c in fields]
                    if not any(cells):
                        self.blank_lines.append(line)
                        continue
                    row_no += 1
                    n = len(cells)
                    if n != width:
                        if n < min_width:
                            missing = [h for h in header[n:] if h.strip()]
                            raise self.error(
                                f"truncated row: {n} field(s) where the header has {width}; missing {missing}.",
                                line=line,
                                row=row_no,
                            )
                        if n > width:
                            if any(cells[width:]):
                                raise self.error(
                                    f"row has {n} fields where the header has {width}, extra values {cells[width:]}.",
                                    line=line,
                                    row=row_no,
                                )
                            cells = cells[:width]
                        else:
                            cells.extend([""] * (width - n))
                    if check_duplicates:
                        key = tuple(cells)
                        first = seen.get(key)
                        if first is not None:
                            if self.duplicates == DuplicatePolicy.ERROR:
                                raise self.error(f"duplicate of line {first}.", line=line, row=row_no)
                            self.duplicate_lines.append(line)
                            continue
                        seen[key] = line
                    self.num_rows += 1
                    yield CSVRow(cells, line, row_no, self)
        except csv.Error as e:
            raise self.error(f"malformed CSV ({e}).", line=reader.line_num) from e
        except UnicodeDecodeError as e:
            raise self.error(f"cannot decode the file as {self.encoding} ({e}).") from e
        if self.blank_lines:
            logger.info("%s: skipped %d empty line(s): %s", self.path, len(self.blank_lines), _head(self.blank_lines))
        if self.duplicate_lines:
            logger.warning(
                "%s: dropped %d duplicate row(s) at line(s) %s",
                self.path,
                len(self.duplicate_lines),
                _head(self.duplicate_lines),
            )


def _head(items: list[int], n: int = 10) -> str:
    text = ", ".join(str(i) for i in items[:n])
    return text + (f", ... ({len(items) - n} more)" if len(items) > n else "")
