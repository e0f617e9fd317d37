"""CSV shards (``CSVInput``, ``CSVInputV2``, ``CSVInputEx``) as typed, numbered Arrow batches.

Columns come from the header when ``data_config.with_header`` is set (matched by name, any
order, extra columns ignored), else from ``input_fields`` by position. Rows are numbered by
their line in the file (header included), so an error points at the line a user opens. A line
without any value (blank, or separators only) is not a row: it is skipped and counted in
``ReadReport.blank_lines``. A file whose name ends in ``.gz`` is read through gzip.

The first line is checked before any row: a gzip file without the ``.gz`` name, a Parquet or
binary file, a header row while ``with_header`` is false and a line with fewer columns than
``input_fields`` each fail with the file and the fix, not with a puzzling error at row one.

Imports from recdistill: ``recdistill.data`` (filesystems, bad_rows, formats, schema) only.
"""

import contextlib
import csv
import io
from typing import Collection, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from recdistill.data import filesystems, formats
from recdistill.data import schema as schema_lib
from recdistill.data.bad_rows import BadRow, BadRowPolicy, DataError
from recdistill.protos import pipeline_pb2

_Config = pipeline_pb2.DatasetConfig
_GZIP_MAGIC = b"\x1f\x8b"
_HEAD_BYTES = 1 << 16
_BLOCK_BYTES = 1 << 20
_PLAN_BLOCK_BYTES = 1 << 20  # read per step of the line count that plans ranges
_SEEK_BYTES = 1 << 12  # read per step looking for the next line start
_NEWLINE = ord("\n")
_QUOTE = ord('"')


def file_columns(uri: str, data_config: _Config,
                 optional: Collection[str] = ()) -> tuple[list[str], str]:
    """The columns a CSV file holds, and a note on why one may look missing.

    With a header: its names. Without: the columns of :func:`column_names` its first line
    has values for, by position (an empty file is taken to have them all).

    Raises:
        DataError: the file is not CSV text (see :func:`first_line`).
    """
    values = first_line(uri, data_config)
    names = column_names(uri, data_config, optional, values)
    if values is None or data_config.with_header:
        return names, ""
    return names[:len(values)], _position_note(values, data_config)


def column_names(uri: str, data_config: _Config, optional: Collection[str] = (),
                 first: list[str] | None = None) -> list[str]:
    """The name of each column of a CSV file, in file order.

    With a header: the header. Without: the input fields, less the ``optional`` ones when
    the first line has exactly that many fewer values (an eval table without the soft-label
    columns a training table has, say).

    Args:
        uri: the file.
        data_config: its layout.
        optional: input fields a file may lack.
        first: the first line's values when already read (:func:`first_line`).
    """
    first = first_line(uri, data_config) if first is None else first
    if data_config.with_header:
        return first or []
    names = [f.input_name for f in data_config.input_fields]
    without = [n for n in names if n not in set(optional)]
    return without if first is not None and len(first) == len(without) < len(names) else names


def first_line(uri: str, data_config: _Config) -> list[str] | None:
    """The values of a CSV file's first line (``None`` for an empty file), after checking
    that the file is (optionally gzipped) text and that it does not start with an unexpected
    header.

    Raises:
        DataError: naming the file and the fix.
    """
    head = _head(uri, data_config)
    line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    if not line:
        return None
    values = next(csv.reader([line], delimiter=data_config.separator))
    names = {f.input_name for f in data_config.input_fields}
    filled = [v.strip() for v in values if v.strip()]
    if not data_config.with_header and len(filled) > 1 and all(v in names for v in filled):
        raise DataError(
            f"{uri}: line 1 is a header ({', '.join(values)}) but data_config.with_header is "
            "false, so it would be read as data. Set with_header: true (columns are then "
            "matched by name), or remove the header line.")
    return values


def read(uri: str, data_config: _Config, schema: schema_lib.Schema, policy: BadRowPolicy,
         optional: Collection[str] = ()) -> Iterator[schema_lib.Numbered]:
    """Yields the typed rows of one CSV file, numbered by line (header included).

    ``optional`` names input fields the file may lack (see :func:`column_names`).
    """
    names, note = _columns(uri, data_config, schema, optional)
    header_lines = 1 if data_config.with_header else 0
    with _open(uri) as f:
        yield from _parse(uri, f, data_config, schema, policy, names, note,
                          skip=header_lines, lines_before=0)


def plan_ranges(uri: str, data_config: _Config,
                rows_per_split: int) -> tuple[list[formats.ByteRange], str]:
    """Cuts a CSV file into byte ranges of ``rows_per_split`` rows (the last may be shorter).

    One sequential pass over the file counts its rows (numbered as :func:`read` numbers
    them: by the parser's rows, header and blank lines included), so each range knows the
    number of its first row and bad rows keep the file's numbers (:func:`read_range`).
    Quoted values may hold line breaks: a line end is a row end only when an even number of
    quote characters precede it. That count holds for the parser only while every quote is
    where the parser reads it as one (opening a value, closing it before a separator or
    line end, or doubled inside it), which the pass checks.

    A file is read whole, and the reason returned (ranges empty), when its row ends cannot
    be found so: it is gzip-compressed (a stream cannot be entered in the middle), or it
    holds a quote character the parser may take literally, an unclosed quote, or a lone
    carriage return (a line end to the parser). A file of at most ``rows_per_split`` rows (or
    empty) is one range: none and no reason; so is one whose first MiB's rows project to at
    most that many (a folder of small shards costs the launcher a MiB each, not a pass).
    """
    if uri.endswith(".gz"):
        return [], "gzip-compressed (a gzip stream cannot be entered in the middle)"
    rows = _RowEnds(data_config.separator, rows_per_split)
    carry = b""
    with filesystems.open_input(uri) as f:
        size = f.size()
        while data := f.read(_PLAN_BLOCK_BYTES):
            block = carry + data
            end = block.rfind(b"\n") + 1  # whole lines only: no quote run spans two blocks
            carry = block[end:]
            if end and not rows.add(block[:end]):
                return [], rows.problem
            if formats.few_rows(rows.rows, f.tell(), size, rows_per_split):
                return [], ""
        if carry and not rows.add(carry):
            return [], rows.problem
    if rows.quoted:
        return [], "has a quoted value that is never closed"
    starts = rows.starts
    if starts[-1] == rows.size:  # the last row end closes a range: no rows after it
        starts.pop()
    if len(starts) == 1:
        return [], ""
    return [formats.ByteRange(a, b, rows_per_split * i)
            for i, (a, b) in enumerate(zip(starts, starts[1:] + [rows.size]))], ""


class _RowEnds:
    """The row count of :func:`plan_ranges`, fed whole lines a block at a time."""

    def __init__(self, separator: str, rows_per_split: int):
        self._bound = np.zeros(256, dtype=bool)  # byte -> whether it ends or separates values
        self._bound[np.frombuffer((separator + "\r\n").encode(), dtype=np.uint8)] = True
        self._per_split = rows_per_split
        self.starts = [0]  # the byte where each range starts: a row start
        self.size = 0  # bytes fed
        self.quoted = False  # inside a quoted value at the end of what was fed
        self.problem = ""
        self.rows = 0  # row ends fed

    def add(self, block: bytes) -> bool:
        """Counts the row ends of ``block`` (whole lines, but for the file's last); False
        (and ``problem`` set) when they cannot be told from its bytes."""
        if block.count(b"\r") != block.count(b"\r\n"):
            self.problem = "has a carriage return that does not end a CRLF line end"
            return False
        # A line end before and after the block: what precedes it, and the end of the file.
        data = np.frombuffer(b"\n" + block + b"\n", dtype=np.uint8)
        quotes = np.flatnonzero(data == _QUOTE)  # positions in data: the block's + 1
        if len(quotes) and not self._quotes_parse(data, quotes):
            return False
        newlines = np.flatnonzero(data[1:-1] == _NEWLINE) + 1
        outside = (np.searchsorted(quotes, newlines) + self.quoted) & 1 == 0
        ends = newlines[outside] - 1
        cut = len(self.starts) * self._per_split  # the row (0-based) the next range starts with
        while cut - self.rows <= len(ends):  # row `cut` starts after the cut-th row end
            self.starts.append(self.size + int(ends[cut - self.rows - 1]) + 1)
            cut += self._per_split
        self.rows += len(ends)
        self.size += len(block)
        self.quoted = bool((self.quoted + len(quotes)) % 2)
        return True

    def _quotes_parse(self, data: np.ndarray, quotes: np.ndarray) -> bool:
        """Whether each run of quote characters is where the parser reads it as quoting: one
        that starts outside a value's quotes follows a separator or line start, one that
        ends outside them precedes a separator or line end."""
        new_run = np.empty(len(quotes), dtype=bool)
        new_run[0] = True
        np.greater(np.diff(quotes), 1, out=new_run[1:])
        first = np.flatnonzero(new_run)  # index in quotes of each run's first
        end = np.append(first[1:], len(quotes))  # ...and of the quote after its last
        before = (first + self.quoted) & 1 == 0  # the run starts outside quotes
        after = (end + self.quoted) & 1 == 0  # ...ends outside them
        wrong = ((before & ~self._bound[data[quotes[first] - 1]])
                 | (after & ~self._bound[data[quotes[end - 1] + 1]]))
        if wrong.any():
            at = self.size + int(quotes[first[np.argmax(wrong)]]) - 1
            self.problem = (f"has a quote character the CSV parser may read literally (at byte "
                            f"{at}), so its row ends are not known before parsing")
            return False
        return True


def read_range(uri: str, data_config: _Config, schema: schema_lib.Schema,
               policy: BadRowPolicy, optional: Collection[str],
               byte_range: formats.ByteRange) -> Iterator[schema_lib.Numbered]:
    """:func:`read` of the rows that start in ``byte_range`` of an uncompressed file.

    Its first row is the first line starting at or after ``byte_range.start`` (a range not
    starting at 0 skips to the next line start: a row start unless a quoted value holds a
    line break, so use the starts :func:`plan_ranges` gives); ``byte_range.rows_before``
    must be the number of rows before that one. The columns come from the file's first
    line, as for the whole file; a range starting at 0 skips the header.

    Raises:
        ValueError: the file is gzip-compressed (it can only be read whole).
    """
    if uri.endswith(".gz"):
        raise ValueError(f"{uri}: a gzip-compressed CSV file can only be read whole.")
    names, note = _columns(uri, data_config, schema, optional)
    with filesystems.open_input(uri) as f:
        start = _line_start(f, byte_range.start)
        stop = _line_start(f, byte_range.stop)
        if stop == start:  # no row starts in the range (the parser refuses empty text)
            return
        f.seek(start)
        skip = 1 if data_config.with_header and start == 0 else 0
        yield from _parse(uri, _Window(f, stop - start), data_config, schema, policy, names,
                          note, skip=skip, lines_before=byte_range.rows_before)


def _columns(uri: str, data_config: _Config, schema: schema_lib.Schema,
             optional: Collection[str]) -> tuple[list[str], str]:
    """The file's column names and the note for a wrong column count, checked against the
    fields ``schema`` reads."""
    if len(data_config.separator) != 1:
        raise ValueError(f"data_config.separator must be one character for CSV input, got "
                         f"{data_config.separator!r}.")
    values = first_line(uri, data_config)
    names = column_names(uri, data_config, optional, values)
    missing = [n for n in schema.arrow.names if n not in names]
    if missing:
        where = "header" if data_config.with_header else "file (without a header)"
        raise DataError(
            f"{uri}: {where} has no column {', '.join(missing)}; it has {', '.join(names)}. "
            "Fix the data or data_config.input_fields (or the fields requested).")
    note = "" if data_config.with_header else _position_note(values or names, data_config)
    return names, note


def _parse(uri: str, stream, data_config: _Config, schema: schema_lib.Schema,
           policy: BadRowPolicy, names: list[str], note: str, *, skip: int,
           lines_before: int) -> Iterator[schema_lib.Numbered]:
    """Typed rows of the CSV text in ``stream``, after its first ``skip`` lines; its first
    line is line ``lines_before + 1`` of the file ``uri``."""
    lines_before += skip
    skipped: list[int] = []  # parser row numbers (header excluded) it dropped
    pending: list[BadRow] = []

    def on_invalid(row) -> str:
        skipped.append(row.number)
        pending.append(BadRow(
            uri, row.number + lines_before, "", row.text,
            f"has {row.actual_columns} columns, expected {row.expected_columns} "
            f"({', '.join(names)}); check data_config.separator "
            f"{data_config.separator!r} and quoting" + (f". {note}" if note else ""),
        ))
        return "skip"

    # Blank lines are kept by the parser (so its row numbers stay line numbers) and
    # dropped below; all columns are read as strings and typed by schema.typed_batch.
    read_options = pacsv.ReadOptions(column_names=names, skip_rows=skip,
                                     use_threads=False, block_size=_BLOCK_BYTES)
    parse_options = pacsv.ParseOptions(delimiter=data_config.separator,
                                       invalid_row_handler=on_invalid, ignore_empty_lines=False)
    convert_options = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=True)
    parsed = 0  # rows the parser has produced so far
    reader = pacsv.open_csv(stream, read_options=read_options, parse_options=parse_options,
                            convert_options=convert_options)
    for batch in reader:
        lines = _line_numbers(parsed, batch.num_rows, skipped) + lines_before
        parsed += batch.num_rows
        blank = np.logical_and.reduce(
            [col.is_null().to_numpy(zero_copy_only=False) for col in batch.columns])
        policy.report.blank_lines += int(blank.sum())
        values = batch.filter(pa.array(~blank)).select(schema.arrow.names)
        typed, bad = schema_lib.typed_batch(uri, values, schema, lines[~blank])
        policy.rows(typed.batch.num_rows, pending + bad)
        pending.clear()
        yield typed
    policy.rows(0, pending)


def _line_start(f, offset: int) -> int:
    """The first line start at or after ``offset`` in the seekable file ``f`` (its size when
    none): ``offset`` itself when 0 or just after a line end."""
    if offset == 0:
        return 0
    f.seek(offset - 1)
    position = offset - 1
    while chunk := f.read(_SEEK_BYTES):
        end = chunk.find(b"\n")
        if end >= 0:
            return position + end + 1
        position += len(chunk)
    return position


class _Window(io.RawIOBase):
    """The next ``size`` bytes of a file, as a stream the CSV reader can read to its end."""

    def __init__(self, f, size: int):
        super().__init__()
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._f.read(min(len(buffer), self._left))
        buffer[:len(data)] = data
        self._left -= len(data)
        return len(data)


def write(table: pa.Table, uri: str, data_config: _Config) -> None:
    """Writes ``table`` (all input fields, in order) as one CSV file without a header."""
    options = pacsv.WriteOptions(include_header=False, delimiter=data_config.separator)
    with filesystems.open_output(uri) as sink:
        pacsv.write_csv(table, sink, write_options=options)


def _head(uri: str, data_config: _Config) -> bytes:
    """The first bytes of the (decompressed) file, checked to be text."""
    with _open(uri) as f:
        head = f.read(_HEAD_BYTES)
    found = formats.kind(head)
    if found == "not-utf8":
        raise DataError(f"{uri}: the file is not UTF-8 text. Re-encode it as UTF-8 (e.g. "
                        "iconv -f latin1 -t utf-8 < in.csv > out.csv).")
    if found != "text":
        raise DataError(formats.mismatch(uri, data_config, head))
    return head


@contextlib.contextmanager
def _open(uri: str) -> Iterator[io.RawIOBase]:
    """Opens ``uri`` for reading, through gzip when its name ends in ``.gz``."""
    with filesystems.open_input(uri) as raw:
        magic = raw.read(2)
        raw.seek(0)
        gzipped = uri.endswith(".gz")
        if gzipped != (magic == _GZIP_MAGIC):
            fix = ("is gzip-compressed but its name does not end in .gz; rename it to "
                   f"{uri.rsplit('/', 1)[-1]}.gz (it is then read through gzip)" if not gzipped
                   else "ends in .gz but is not gzip-compressed; drop the .gz from its name")
            raise DataError(f"{uri}: the file {fix}.")
        if not gzipped:
            yield raw
            return
        with pa.CompressedInputStream(raw, "gzip") as stream:
            yield stream


def _position_note(values: list[str], data_config: _Config) -> str:
    """For a headerless file with fewer columns than input_fields: which may be missing."""
    fields = list(data_config.input_fields)
    if len(values) >= len(fields):
        return ""
    note = (f"Without a header, columns are matched by position: line 1 has {len(values)} "
            f"values for {len(fields)} input_fields, so the missing column may be any of "
            "them, not only the last")
    if len(fields) - len(values) == 1:
        fits = [fields[p].input_name for p in range(len(fields))
                if all(_fits(v, f) for v, f in zip(values, fields[:p] + fields[p + 1:]))]
        if 0 < len(fits) < len(fields):
            note += f"; judging by line 1's values it is one of {', '.join(fits)}"
    return note + ". Write a header and set with_header: true to match columns by name."


def _fits(value: str, field) -> bool:
    """Whether a CSV value parses as its field's type (empty is the default: fits)."""
    value = value.strip()
    if not value or field.input_type == _Config.STRING:
        return True
    if field.input_type == _Config.BOOL:
        return value.lower() in ("true", "false", "0", "1")
    try:
        (float if field.input_type in (_Config.FLOAT, _Config.DOUBLE) else int)(value)
    except ValueError:
        return False
    return True


def _line_numbers(first: int, count: int, skipped: list[int]) -> np.ndarray:
    """Parser row numbers (1-based) of parsed rows first..first+count-1 (0-based).

    The parser numbers every row, including those it skipped; parsed row k is therefore
    the (k+1)-th number not in ``skipped``. Skipped rows after the batch do not matter.
    """
    gaps = np.sort(np.asarray(skipped, dtype=np.int64))
    gaps -= np.arange(len(gaps))
    m = np.arange(first + 1, first + count + 1)
    return m + np.searchsorted(gaps, m, side="right")
