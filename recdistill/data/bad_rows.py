"""Rows a reader could not read: how they are named, counted and tolerated.

Every format module reports unreadable rows the same way, so a user sees one message shape
(file, 1-based row, field, value, fix) whatever the format, and ``max_bad_rows_fraction``
means the same thing for CSV, Parquet and TFRecord.

Imports nothing from recdistill.
"""

import dataclasses
import logging
from typing import Sequence

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """A data file cannot be read as the data_config describes (names file, row, field)."""


@dataclasses.dataclass(frozen=True)
class BadRow:
    """One row that could not be read.

    Attributes:
        uri: the file.
        row: 1-based line number for CSV (header included), record number otherwise.
        field: the input field at fault ('' when the whole row is malformed).
        value: the offending text or value, as a string.
        reason: what is wrong and how to fix it.
    """

    uri: str
    row: int
    field: str
    value: str
    reason: str

    def message(self) -> str:
        where = f"{self.uri}: row {self.row}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: {self.reason}, got {self.value!r}."


@dataclasses.dataclass
class ReadReport:
    """What a read saw; pass one as ``report=`` to learn which rows were skipped.

    Streaming callers may remove entries from ``bad_rows`` after each batch (e.g. to
    write them to a dead-letter file); ``bad_row_count`` keeps the total.

    Attributes:
        rows_read: data rows seen, good and bad (blank CSV lines are not rows).
        bad_row_count: rows skipped as bad.
        bad_rows: the skipped rows, in reading order.
        files: the data files read.
        blank_lines: CSV lines without any value (skipped, not counted as rows).
    """

    rows_read: int = 0
    blank_lines: int = 0
    bad_row_count: int = 0
    bad_rows: list[BadRow] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    @property
    def bad_fraction(self) -> float:
        return self.bad_row_count / self.rows_read if self.rows_read else 0.0


class BadRowPolicy:
    """Applies max_bad_rows_fraction: raise at once, or record and check at the end."""

    def __init__(self, max_fraction: float, report: ReadReport):
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_bad_rows_fraction must be in [0, 1], got {max_fraction}.")
        self.max_fraction = max_fraction
        self.report = report

    def rows(self, good: int, bad: Sequence[BadRow]) -> None:
        """Counts ``good`` readable rows and ``bad`` ones; raises on the first bad at 0."""
        self.report.rows_read += good + len(bad)
        for row in sorted(bad, key=lambda r: r.row):
            if self.max_fraction == 0.0:
                raise DataError(
                    f"{row.message()} Fix or remove the row, or allow a fraction of bad rows "
                    "with max_bad_rows_fraction > 0."
                )
            logger.warning("Skipping bad row: %s", row.message())
            self.report.bad_rows.append(row)
            self.report.bad_row_count += 1

    def finish(self, uri: str) -> None:
        """Raises DataError when the bad rows of the whole read exceed the fraction."""
        report = self.report
        if report.bad_fraction > self.max_fraction:
            first = report.bad_rows[0].message() if report.bad_rows else ""
            raise DataError(
                f"{uri}: {report.bad_row_count} of {report.rows_read} rows are bad "
                f"({report.bad_fraction:.2%}), more than max_bad_rows_fraction="
                f"{self.max_fraction}. First: {first} Fix the data or raise the limit."
            )
