"""The teacher as a Beam ModelHandler, and turning its outputs into soft-label columns.

A :class:`TeacherModelHandler` is a small picklable recipe (the export's URI and a batch size):
``load_model`` runs on each worker and loads the export through
:func:`recdistill.exported.load_exported`, which imports the custom ops a teacher needs (YDF's
for a GBDT teacher) before reading the graph; ``run_inference`` takes whole columnar batches
(``pyarrow.RecordBatch``) and calls the model once per batch, because per-row overhead, not
the model, dominates Beam inference on small rows. It keeps to Beam's ModelHandler contract
(``load_model``, ``run_inference``, ``batch_elements_kwargs``): the job runs it through
``RunInference`` (transforms.ScoreWithTeacher), which owns batching, sharing the loaded model
and metrics; dead letters are the job's transforms' business.

:class:`SoftLabelSpec` says, for one kd block, which teacher output fills which column and
whether to convert between logits and probabilities; :func:`soft_label_specs` builds and checks
them against the teacher before any row is read.

This module must not import ``kfp``.
"""

import dataclasses
import logging
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pyarrow as pa
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from recdistill import exported, outputs
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 65536
"""Rows per columnar batch. Large, so the model call and not Beam's per-element work dominates."""

METRICS_NAMESPACE = "recdistill_soft_labels"

RAW = "raw"
"""The kind of a teacher output that is neither logits nor probs (``recdistill.outputs.kind``)."""

_PROB_EPSILON = 1e-7
"""Probabilities are clipped to [eps, 1 - eps] before taking logits, so 0 and 1 stay finite."""

_FieldType = pipeline_pb2.DatasetConfig.FieldType
_DTYPE_KIND = {  # what kind of tensor the export contract feeds for each input_type
    _FieldType.STRING: "string", _FieldType.INT32: "integer", _FieldType.INT64: "integer",
    _FieldType.BOOL: "integer", _FieldType.FLOAT: "floating", _FieldType.DOUBLE: "floating",
}
_SOFT_LABEL_DTYPES = {_FieldType.FLOAT: np.float32, _FieldType.DOUBLE: np.float64}


class TeacherModelHandler(ModelHandler[pa.RecordBatch, dict, exported.ExportedModel]):
    """Runs an exported teacher on whole ``pyarrow.RecordBatch`` elements.

    Each element already holds ``batch_size`` rows, so Beam's own batching is told to pass
    elements one by one (min = max = 1 element); the batch size that matters is the rows per
    RecordBatch, which readers take from :attr:`batch_size`.

    Example::

        handler = TeacherModelHandler("gs://bkt/teacher/export")
        preds = record_batches | RunInference(handler)   # PredictionResult(batch, {"logits": ...})
    """

    def __init__(self, teacher_uri: str, *, batch_size: int = DEFAULT_BATCH_SIZE):
        """Args:
          teacher_uri: an export folder or model_dir (local or gs://) readable by workers.
          batch_size: rows per RecordBatch that readers should produce.

        Raises:
          ValueError: batch_size is not positive.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}. Use "
                             f"{DEFAULT_BATCH_SIZE} (rows per columnar batch).")
        super().__init__(min_batch_size=1, max_batch_size=1)
        self.teacher_uri = teacher_uri
        self.batch_size = batch_size

    def load_model(self) -> exported.ExportedModel:
        """Loads the teacher (custom ops first); Beam calls this once per worker."""
        model = exported.load_exported(self.teacher_uri)
        logger.info("Loaded teacher %s: inputs %s, outputs %s", self.teacher_uri,
                    sorted(model.inputs), model.outputs)
        return model

    def run_inference(self, batch: Sequence[pa.RecordBatch], model: exported.ExportedModel,
                      inference_args: Optional[dict[str, Any]] = None
                      ) -> Iterable[PredictionResult]:
        """One model call per RecordBatch; yields PredictionResult(record_batch, outputs)."""
        return [PredictionResult(record_batch, predict_batch(model, record_batch),
                                 model_id=self.teacher_uri) for record_batch in batch]

    def get_num_bytes(self, batch: Sequence[pa.RecordBatch]) -> int:
        return sum(record_batch.nbytes for record_batch in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


def predict_batch(model: exported.ExportedModel, record_batch: pa.RecordBatch) -> dict:
    """Runs ``model`` on the columns of ``record_batch`` it needs; returns output -> numpy."""
    columns = {name: column_tensor(record_batch.column(name), dtype)
               for name, dtype in model.inputs.items()}
    return model.predict(columns)


def column_tensor(column: pa.Array, dtype):
    """One Arrow column in the form ``ExportedModel.predict`` feeds fastest.

    A string column for a string input becomes the string tensor itself, cut out of the
    column's data buffer by its offsets in one ``tf.strings.substr``: converting through
    numpy would make (and then convert) one Python object per row, the job's costliest step
    after the model. Other columns become numpy (zero-copy for numbers without nulls); the
    model casts them to its dtype.
    """
    import tensorflow as tf

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    large = pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type)
    stringy = large or pa.types.is_string(column.type) or pa.types.is_binary(column.type)
    if dtype != tf.string or not stringy or column.null_count:
        return column.to_numpy(zero_copy_only=False)
    offset_type = np.int64 if large else np.int32
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, offset_type, count=len(column) + 1,
                            offset=column.offset * np.dtype(offset_type).itemsize)
    first, last = int(offsets[0]), int(offsets[-1])
    data = data_buffer.slice(first, last - first).to_pybytes() if data_buffer else b""
    return tf.strings.substr(tf.constant(data), offsets[:-1] - first, np.diff(offsets))


def check_teacher_inputs(model: exported.ExportedModel, fields, source: str) -> None:
    """Fails unless the data's fields give every input the teacher reads, with a usable dtype.

    Args:
      model: the loaded teacher.
      fields: the ``DatasetConfig.Field`` entries the data is read with.
      source: where the data is (named in the error).

    Raises:
      ValueError: a teacher input is missing from ``fields`` or has the wrong kind of type
        (strings vs integers vs floats); the message lists what the teacher expects and what
        the data has.
    """
    present = {field.input_name: field.input_type for field in fields}
    model.check_columns(present)
    wrong = [f"{name} (teacher {dtype.name}, data {_FieldType.Name(present[name])})"
             for name, dtype in sorted(model.inputs.items())
             if _DTYPE_KIND[present[name]] != _tensor_kind(dtype)]
    if wrong:
        expected = ", ".join(f"{k}:{v.name}" for k, v in sorted(model.inputs.items()))
        has = ", ".join(f"{k}:{_FieldType.Name(v)}" for k, v in present.items())
        raise ValueError(
            f"{source}: input columns {', '.join(wrong)} have the wrong type for teacher "
            f"{model.uri}. The teacher expects [{expected}]; the data has [{has}]. Declare the "
            "fields in data_config.input_fields with the types the teacher was trained with.")


def _tensor_kind(dtype) -> str:
    if dtype.is_integer or dtype.is_bool:
        return "integer"
    if dtype.is_floating:
        return "floating"
    return "string"


@dataclasses.dataclass(frozen=True)
class SoftLabelSpec:
    """How one kd block's soft-label column is made from the teacher's outputs.

    Attributes:
      column: the soft-label column (kd.soft_label_name).
      teacher_output: the teacher output it is taken from (kd.teacher_pred_name or pred_name).
      teacher_kind: outputs.LOGITS, outputs.PROBS or RAW (neither; copied unchanged).
      as_logits: write logits (kd.label_is_logits) rather than probabilities.
      dtype: numpy dtype of the column (FLOAT -> float32, DOUBLE -> float64).
    """

    column: str
    teacher_output: str
    teacher_kind: str
    as_logits: bool
    dtype: Any = np.float32

    def values(self, predictions: dict) -> np.ndarray:
        """The soft-label column for a batch of teacher outputs.

        Raises:
          ValueError: the output is not one value per row (shape [n] or [n, 1]).
        """
        values = np.asarray(predictions[self.teacher_output])
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise ValueError(
                f"teacher output {self.teacher_output!r} has shape {values.shape}, but soft "
                f"label {self.column!r} needs one value per row. Pick a [n] or [n, 1] output "
                "with kd.teacher_pred_name.")
        from scipy import special

        values = values.astype(np.float64)
        if self.teacher_kind == outputs.LOGITS and not self.as_logits:
            values = special.expit(values)
        elif self.teacher_kind == outputs.PROBS and self.as_logits:
            values = special.logit(np.clip(values, _PROB_EPSILON, 1.0 - _PROB_EPSILON))
        return values.astype(self.dtype)

    def describe(self) -> dict:
        """What stats.json records about where the column came from."""
        return {"teacher_output": self.teacher_output, "teacher_output_kind": self.teacher_kind,
                "label_is_logits": self.as_logits}


def soft_label_specs(cfg, model: exported.ExportedModel) -> list[SoftLabelSpec]:
    """One SoftLabelSpec per soft-label column of the student config ``cfg``.

    Raises:
      ValueError: the config has no kd block; a block names a teacher output the teacher does
        not have; or a soft-label field is declared with a non-float input_type.
    """
    blocks = cfg.model_config.kd
    if not blocks:
        raise ValueError("model_config has no kd block, so there is no soft label to write. "
                         "Pass the student's config (with kd { soft_label_name: ... }).")
    declared = {field.input_name: field.input_type for field in cfg.data_config.input_fields}
    specs = {}
    for i, block in enumerate(blocks):
        output = block.teacher_pred_name or block.pred_name
        if output not in model.outputs:
            raise ValueError(
                f"model_config.kd[{i}]: teacher output {output!r} (teacher_pred_name, else "
                f"pred_name) is not an output of teacher {model.uri}; valid: "
                f"{', '.join(model.outputs)}. Set kd.teacher_pred_name to one of them.")
        field_type = declared.get(block.soft_label_name, _FieldType.FLOAT)
        if field_type not in _SOFT_LABEL_DTYPES:
            raise ValueError(
                f"data_config.input_fields {block.soft_label_name!r} has input_type "
                f"{_FieldType.Name(field_type)}, but soft label values are real numbers. "
                "Declare it FLOAT or DOUBLE.")
        kind = outputs.kind(output) or RAW
        if kind == RAW:
            logger.warning("kd[%d]: teacher output %r is neither logits* nor probs*; %r gets "
                           "its values unchanged (label_is_logits is not applied).", i, output,
                           block.soft_label_name)
        spec = SoftLabelSpec(column=block.soft_label_name, teacher_output=output,
                             teacher_kind=kind, as_logits=block.label_is_logits,
                             dtype=_SOFT_LABEL_DTYPES[field_type])
        if specs.setdefault(spec.column, spec) != spec:
            raise ValueError(
                f"model_config.kd[{i}]: soft label {spec.column!r} is already filled from "
                f"teacher output {specs[spec.column].teacher_output!r} (label_is_logits "
                f"{specs[spec.column].as_logits}); got {output!r} (label_is_logits "
                f"{spec.as_logits}). Give each distinct teacher prediction its own "
                "soft_label_name.")
    return list(specs.values())
