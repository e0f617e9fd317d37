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
    header_lines = 1 if data_config.with_header else 0
    skipped: list[int] = []  # parser row numbers (header excluded) it dropped
    pending: list[BadRow] = []

    def on_invalid(row) -> str:
        skipped.append(row.number)
        pending.append(BadRow(
            uri, row.number + header_lines, "", row.text,
            f"has {row.actual_columns} columns, expected {row.expected_columns} "
            f"({', '.join(names)}); check data_config.separator "
            f"{data_config.separator!r} and quoting" + (f". {note}" if note else ""),
        ))
        return "skip"

    # Blank lines are kept by the parser (so its row numbers stay line numbers) and
    # dropped below; all columns are read as strings and typed by schema.typed_batch.
    read_options = pacsv.ReadOptions(column_names=names, skip_rows=header_lines,
                                     use_threads=False, block_size=_BLOCK_BYTES)
    parse_options = pacsv.ParseOptions(delimiter=data_config.separator,
                                       invalid_row_handler=on_invalid, ignore_empty_lines=False)
    convert_options = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=True)
    parsed = 0  # rows the parser has produced so far
    with _open(uri) as f:
        reader = pacsv.open_csv(f, read_options=read_options, parse_options=parse_options,
                                convert_options=convert_options)
        for batch in reader:
            lines = _line_numbers(parsed, batch.num_rows, skipped) + header_lines
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
