"""Typing of the training table: ``data_config.input_fields`` -> Arrow types and defaults.

=======  ========  ==========================  ===============
field    arrow     TFRecord feature            empty / missing
=======  ========  ==========================  ===============
INT32    int32     int64_list                  default_val or 0
INT64    int64     int64_list                  default_val or 0
FLOAT    float32   float_list                  default_val or 0
DOUBLE   float64   float_list (float32 bits)   default_val or 0
STRING   string    bytes_list (UTF-8)          default_val or ''
BOOL     bool      int64_list (0/1)            default_val or false
=======  ========  ==========================  ===============

Every format module reads its raw columns, then hands them to :func:`typed_batch`, so a
value is typed (and a bad one reported) the same way whatever the file format.

Imports from recdistill: ``recdistill.data.bad_rows`` and ``recdistill.protos`` only.
"""

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recdistill.data.bad_rows import BadRow
from recdistill.protos import pipeline_pb2

_Config = pipeline_pb2.DatasetConfig
_Field = pipeline_pb2.DatasetConfig.Field

ARROW_TYPES = {
    _Config.INT32: pa.int32(),
    _Config.INT64: pa.int64(),
    _Config.FLOAT: pa.float32(),
    _Config.DOUBLE: pa.float64(),
    _Config.STRING: pa.string(),
    _Config.BOOL: pa.bool_(),
}


@dataclasses.dataclass(frozen=True)
class Schema:
    """The fields being read: their config entries and the arrow schema they produce."""

    fields: list
    arrow: pa.Schema


class Numbered(NamedTuple):
    """A typed batch and, for each of its rows, the 1-based row number in its file."""

    batch: pa.RecordBatch
    rows: np.ndarray


def for_fields(data_config: _Config, fields: Sequence[str] | None) -> Schema:
    """The schema of ``fields`` (default: all input fields), validated against the config.

    Raises:
        ValueError: an unknown or repeated field name, or a bad default_val.
    """
    by_name = {f.input_name: f for f in data_config.input_fields}
    names = list(by_name) if fields is None else list(fields)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(
            f"fields {', '.join(map(repr, unknown))} are not in data_config.input_fields "
            f"({', '.join(by_name)}). Request input field names, or add the fields."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"fields lists a name twice: {names}. List each field once.")
    chosen = [by_name[n] for n in names]
    for field in chosen:
        default(field)  # validates default_val before any data is read
    return Schema(chosen, pa.schema([(f.input_name, ARROW_TYPES[f.input_type]) for f in chosen]))


def default(field: _Field) -> pa.Scalar:
    """The value of an empty cell / missing feature: default_val, else 0, '' or false."""
    arrow_type = ARROW_TYPES[field.input_type]
    if not field.default_val:
        return pa.scalar("" if field.input_type == _Config.STRING else
                         False if field.input_type == _Config.BOOL else 0).cast(arrow_type)
    try:
        return pa.scalar(field.default_val).cast(arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(
            f"data_config.input_fields '{field.input_name}': default_val "
            f"{field.default_val!r} is not a valid "
            f"{_Config.FieldType.Name(field.input_type)}. Fix the default_val."
        ) from None


def typed_batch(uri: str, batch: pa.RecordBatch, schema: Schema,
                rows: np.ndarray) -> tuple[Numbered, list[BadRow]]:
    """Casts each raw column to its field's type and fills defaults.

    Args:
        uri: the file, for bad-row messages.
        batch: raw columns named like the schema (strings for CSV, any type otherwise).
        schema: the fields wanted.
        rows: the row number reported for each row of ``batch``.

    Returns:
        The good rows, typed and numbered, and the bad rows.
    """
    columns, bad, bad_mask = [], [], np.zeros(batch.num_rows, dtype=bool)
    for field, arrow_field in zip(schema.fields, schema.arrow):
        raw = batch.column(arrow_field.name)
        column, bad_indices = _cast_column(raw, arrow_field.type)
        for i in bad_indices:
            bad_mask[i] = True
            bad.append(BadRow(uri, int(rows[i]), field.input_name, str(raw[i].as_py()),
                              f"not a valid {_Config.FieldType.Name(field.input_type)}; fix "
                              f"the value or input_type of '{field.input_name}' in "
                              "data_config.input_fields"))
        columns.append(column.fill_null(default(field)))
    typed = pa.RecordBatch.from_arrays(columns, schema=schema.arrow)
    if bad:
        typed = typed.filter(pa.array(~bad_mask))
        rows = rows[~bad_mask]
    return Numbered(typed, rows), bad


def _cast_column(column: pa.Array, arrow_type: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Casts safely; values that do not fit become null and their indices are returned."""
    try:
        return pc.cast(column, arrow_type), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Only on failure: find the offending values one by one.
    bad = []
    for i, value in enumerate(column):
        if value.is_valid:
            try:
                value.cast(arrow_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad.append(i)
    mask = np.zeros(len(column), dtype=bool)
    mask[bad] = True
    cleaned = pc.if_else(pa.array(mask), pa.nulls(len(column), column.type), column)
    return pc.cast(cleaned, arrow_type), bad


def conform(table: pa.Table, data_config: _Config, *, require_all: bool) -> pa.Table:
    """Orders ``table``'s columns as input_fields and casts them to the field types.

    Raises:
        ValueError: a column that is not an input field, a missing one (``require_all``),
            or values that do not fit their field's type.
    """
    order = [f.input_name for f in data_config.input_fields]
    extra = [n for n in table.column_names if n not in order]
    if extra:
        raise ValueError(
            f"columns {', '.join(extra)} are not in data_config.input_fields "
            f"({', '.join(order)}). Add them to input_fields or drop them before writing."
        )
    missing = [n for n in order if n not in table.column_names]
    if require_all and missing:
        raise ValueError(
            f"CSV needs every input field in order; the table lacks {', '.join(missing)}. "
            "Add the columns or remove the fields from data_config.input_fields."
        )
    wanted = for_fields(data_config, [n for n in order if n in table.column_names])
    columns = []
    for field, arrow_field in zip(wanted.fields, wanted.arrow):
        column = table.column(arrow_field.name)
        try:
            columns.append(pc.cast(column, arrow_field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise ValueError(
                f"column '{field.input_name}' ({column.type}) does not fit "
                f"{_Config.FieldType.Name(field.input_type)}: {err}. Fix the values or the "
                "field's input_type."
            ) from None
    return pa.Table.from_arrays(columns, schema=wanted.arrow)
