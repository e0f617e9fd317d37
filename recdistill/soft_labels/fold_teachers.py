"""Cross-fitted soft labels: K fold teachers, each row scored by the one that never read it.

:class:`FoldTeachersModelHandler` is a :class:`~recdistill.soft_labels.handlers.TeacherModelHandler`
whose model is :class:`FoldTeachers`: the K exports of one cross-fitting split
(``recdistill.cross_fit``). Each columnar batch is routed by fold: the rows of fold k (a hash
of the key column, ``recdistill.data.folds``) form one sub-batch for teacher k, and the
outputs are put back in input order, so the rest of the job (soft-label columns, stats, the
leak guard) sees one teacher's outputs as before. There is one model call per teacher per
batch and no per-row Python.

This module must not import ``kfp``.
"""

import logging
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pyarrow as pa
from apache_beam.ml.inference.base import PredictionResult

from recdistill import cross_fit, exported
from recdistill.data import folds
from recdistill.soft_labels import handlers

logger = logging.getLogger(__name__)


class FoldTeachers:
    """The K fold teachers of one split, behaving as one teacher towards the job.

    Attributes:
      uri: the teachers' URIs, joined (for logs and errors).
      key: the key column that picks each row's fold.
      models: the loaded teachers; ``models[k]`` left fold k out and scores it.
      inputs, outputs: the serving signature they all share.
      metadata: the first teacher's ``recdistill.json`` with ``eval_metrics`` averaged over
        the K teachers: the eval AUC the leak guard compares the scored rows' AUC with.
    """

    def __init__(self, models: Sequence[exported.ExportedModel], key: str):
        """Raises ValueError naming both teachers when two have different signatures."""
        first = models[0]
        for model in models[1:]:
            if model.inputs != first.inputs or sorted(model.outputs) != sorted(first.outputs):
                raise ValueError(
                    f"fold teachers {first.uri} and {model.uri} have different signatures "
                    f"(inputs {_names(first.inputs)} vs {_names(model.inputs)}, outputs "
                    f"{sorted(first.outputs)} vs {sorted(model.outputs)}). Train every fold "
                    "teacher from the same config.")
        self.uri = " + ".join(model.uri for model in models)
        self.key = key
        self.models = list(models)
        self.inputs = first.inputs
        self.outputs = first.outputs
        self.metadata = {**first.metadata, "eval_metrics": _mean_metrics(
            [model.metadata.get("eval_metrics") or {} for model in models])}

    def check_columns(self, available) -> None:
        """Raises ValueError unless the teachers' inputs and the key are all ``available``."""
        self.models[0].check_columns(available)
        if self.key not in available:
            raise ValueError(f"{self.uri}: the cross-fit key column {self.key!r} is not in the "
                             f"data (columns {sorted(available)}). Add it to input_fields.")

    def predict_batch(self, record_batch: pa.RecordBatch) -> dict:
        """Each row's outputs from the teacher of its fold, in ``record_batch``'s row order."""
        if record_batch.num_rows == 0:
            return handlers.predict_batch(self.models[0], record_batch)
        fold = folds.buckets(record_batch.column(self.key), len(self.models),
                             salt=folds.FOLD_SALT, column=self.key)
        merged: dict = {}
        for k, model in enumerate(self.models):
            rows = np.flatnonzero(fold == k)
            if not rows.size:
                continue
            for name, values in handlers.predict_batch(
                    model, record_batch.take(pa.array(rows))).items():
                if name not in merged:
                    merged[name] = np.empty((record_batch.num_rows,) + values.shape[1:],
                                            values.dtype)
                merged[name][rows] = values
        return merged


class FoldTeachersModelHandler(handlers.TeacherModelHandler):
    """Loads the K fold teachers (ordered and checked by their ``cross_fit`` metadata) and
    runs each batch through :meth:`FoldTeachers.predict_batch`.

    Example::

        handler = FoldTeachersModelHandler(["gs://b/fold0", "gs://b/fold1"])
        preds = record_batches | RunInference(handler)
    """

    def __init__(self, teacher_uris: Sequence[str], *, key: str = "",
                 batch_size: int = handlers.DEFAULT_BATCH_SIZE):
        """Args:
          teacher_uris: the fold teachers' exports, in any order.
          key: the key column expected ('' = the one the teachers record).
          batch_size: rows per RecordBatch that readers should produce.
        """
        super().__init__(" + ".join(teacher_uris), batch_size=batch_size)
        self.teacher_uris = list(teacher_uris)
        self.key = key

    def load_model(self) -> FoldTeachers:
        """Loads every fold teacher; raises ValueError when they are not one split's K folds
        (``cross_fit.order_fold_teachers``) or their signatures differ."""
        models = [exported.load_exported(uri) for uri in self.teacher_uris]
        key, ordered = cross_fit.order_fold_teachers(
            self.teacher_uris, [model.metadata for model in models], self.key)
        by_uri = dict(zip(self.teacher_uris, models))
        teachers = FoldTeachers([by_uri[uri] for uri in ordered], key)
        logger.info("Loaded %d fold teachers by %r: %s", len(ordered), key, ordered)
        return teachers

    def run_inference(self, batch: Sequence[pa.RecordBatch], model: FoldTeachers,
                      inference_args: Optional[dict[str, Any]] = None
                      ) -> Iterable[PredictionResult]:
        """One call per teacher per RecordBatch; yields PredictionResult(record_batch, outputs)."""
        return [PredictionResult(record_batch, model.predict_batch(record_batch),
                                 model_id=self.teacher_uri) for record_batch in batch]


def make_handler(teacher_uri, *, cross_fit_key: str = "",
                 batch_size: int = handlers.DEFAULT_BATCH_SIZE) -> handlers.TeacherModelHandler:
    """One teacher URI: a :class:`~handlers.TeacherModelHandler`; several: the fold teachers.

    Raises:
      ValueError: ``cross_fit_key`` with a single teacher (nothing to route).
    """
    uris = [teacher_uri] if isinstance(teacher_uri, str) else list(teacher_uri)
    if len(uris) == 1:
        if cross_fit_key:
            raise ValueError(f"cross-fit key {cross_fit_key!r} given with one teacher "
                             f"({uris[0]}); cross-fitted soft labels need the K fold teachers "
                             "(one --teacher each).")
        return handlers.TeacherModelHandler(uris[0], batch_size=batch_size)
    return FoldTeachersModelHandler(uris, key=cross_fit_key, batch_size=batch_size)


def _names(inputs) -> list:
    return [f"{name}:{dtype.name}" for name, dtype in sorted(inputs.items())]


def _mean_metrics(metrics: list) -> dict:
    """The numeric metrics every teacher has, averaged."""
    shared = set.intersection(*(set(m) for m in metrics)) if metrics else set()
    return {name: float(np.mean([m[name] for m in metrics])) for name in sorted(shared)
            if all(isinstance(m[name], (int, float)) for m in metrics)}
