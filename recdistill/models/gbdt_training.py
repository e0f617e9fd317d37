"""Training a GBDT teacher from data files: read, fit, evaluate, export.

``recdistill.models.gbdt`` fits and exports a YDF model from numpy columns and reads no files;
this module is its trainer, the GBDT counterpart of ``recdistill.training.keras_trainer``:
it reads the tables (``recdistill.data``), checks them, and reports the same metrics. There
are no steps, checkpoints or warm start: YDF trains in one call on the whole table.
"""

import logging
import time

import pyarrow as pa

from recdistill import exported
from recdistill.data import datasets, tables
from recdistill.models import gbdt
from recdistill.training.eval_metrics import classification_metrics
from recdistill.training.result import TrainResult, export_metadata

logger = logging.getLogger(__name__)


def train_gbdt_model(cfg, train_uri: str, eval_uri, model_dir: str, *,
                     exclude_fold=None) -> TrainResult:
    """Trains and exports the GBDT teacher ``cfg`` describes.

    ``exclude_fold`` (a ``datasets.ExcludedFold``) leaves one cross-fitting fold's rows out.

    Raises:
      ValueError: bad data (see ``datasets.check_inputs``) or a config without one hard label.
    """
    if cfg.train_config.HasField("early_stopping"):
        logger.warning("train_config.early_stopping does not apply to a GBDT: YDF keeps the "
                       "trees up to the lowest loss on its own 10%% validation split.")
    columns = list(gbdt.input_columns(cfg))
    label = gbdt.hard_label(cfg)
    if exclude_fold is not None:
        exclude_fold.check(cfg)
    datasets.check_inputs(train_uri, cfg, columns=columns, labels=[label])
    if eval_uri:  # fail before the fit, not after it
        datasets.check_inputs(eval_uri, cfg, columns=columns, labels=[label])
    started = time.perf_counter()
    table = tables.read_table(train_uri, cfg.data_config,
                              fields=list(dict.fromkeys(columns + [label] + (
                                  [exclude_fold.key] if exclude_fold else []))))
    extra = {}
    if exclude_fold is not None:
        table = table.filter(pa.array(exclude_fold.keeps(table.column(exclude_fold.key))))
        extra["cross_fit"] = exclude_fold.describe()
    model = gbdt.train_gbdt(cfg, _numpy_columns(table, columns),
                            table.column(label).to_numpy(zero_copy_only=False))
    seconds = max(time.perf_counter() - started, 1e-9)
    train_metrics = {"steps": model.num_trees(), "examples_per_sec": table.num_rows / seconds}
    eval_metrics = {}
    if eval_uri:
        table = tables.read_table(eval_uri, cfg.data_config, fields=columns + [label])
        probs = gbdt.predict_probs(cfg, model, _numpy_columns(table, columns))
        eval_metrics = classification_metrics(
            table.column(label).to_numpy(zero_copy_only=False), probs, label, primary=True,
            several=False)
        logger.info("Eval on %s: %s", eval_uri, eval_metrics)
    export_path = exported.export_dir(model_dir)
    gbdt.export_gbdt(cfg, model, export_path,
                     export_metadata(cfg, [label], train_metrics, eval_metrics, **extra))
    return TrainResult(model_dir=model_dir, export_dir=export_path, steps=model.num_trees(),
                       metrics={**train_metrics, **eval_metrics})


def _numpy_columns(table, names) -> dict:
    """``{name: numpy array}`` for the named columns of a pyarrow table."""
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in names}
