"""Errors raised by the dataset adapters, each naming the annotation file and the record at fault.

Row numbers follow one convention everywhere: ``line`` is the physical line number in the CSV file, 1-based,
the header being line 1 (what a text editor shows); ``row`` is the 1-based index of the data row (the first row
after the header is row 1). For a quoted field that spans several lines, ``line`` is the last line of the row.
JSON annotation files are located by their key path instead (``cxr_id``, class name, polygon index).
"""

from __future__ import annotations

__all__ = ["AnnotationFormatError", "MissingImageError", "PathEscapeError", "format_location"]


def format_location(file: str, line: int | None = None, row: int | None = None, key: str | None = None) -> str:
    """Return a human readable location such as ``"train.csv, line 7 (data row 6)"``.

    Args:
        file: the annotation file.
        line: physical 1-based line number (header = line 1), if known.
        row: 1-based data row number, if known.
        key: a key path inside a JSON file, if that is how the record is found.

    Returns:
        The location string.
    """
    parts = [str(file)]
    if line is not None:
        parts.append(f"line {line}" + (f" (data row {row})" if row is not None else ""))
    elif row is not None:
        parts.append(f"data row {row}")
    if key is not None:
        parts.append(f"key {key}")
    return ", ".join(parts)


class AnnotationFormatError(ValueError):
    """A record of an annotation file cannot be read: bad header, malformed row, unknown class, inverted box...

    Args:
        message: what is wrong.
        file: the annotation file.
        line: physical 1-based line number (header = line 1).
        row: 1-based data row number.
        key: key path inside a JSON file.

    Attributes:
        file, line, row, key: the location, also written at the start of the message.
    """

    def __init__(
        self, message: str, file: str, line: int | None = None, row: int | None = None, key: str | None = None
    ) -> None:
        self.file, self.line, self.row, self.key = str(file), line, row, key
        self.reason = message
        super().__init__(f"{format_location(self.file, line, row, key)}: {message}")


class PathEscapeError(AnnotationFormatError):
    """An image path read from an annotation file is absolute or contains ``..`` (would leave ``dataset_dir``)."""


class MissingImageError(AnnotationFormatError, FileNotFoundError):
    """An image referenced by an annotation file does not exist (raised when ``check_files=True``)."""
