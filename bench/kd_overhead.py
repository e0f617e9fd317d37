"""Throughput cost of distillation: student examples/s with each kd loss / without kd.

Every variant trains the same DSSM student on the same sample rows (plus a ``kd_soft`` column
of random teacher logits and a ``session`` column of ``--session-rows`` consecutive rows, so a
batch of 4096 holds about 50 sessions) through the trainer's input pipeline
(``recdistill.data.datasets.make_dataset``) and a step like the trainer's that also hands the
input columns to :class:`recdistill.kd.KdTask` (sessions). Variants: no kd, the sample's
pointwise kd, pairwise hinge kd, listwise rank kd and the calibrated listwise kd, the last
three per session. Timing windows alternate between variants in one process, so machine
noise hits all alike; the medians are compared. Goal: every ratio >= 0.9. The last line
printed is the smallest ratio.

    .venv/bin/python bench/kd_overhead.py [--rows 25000] [--batch-size 4096] [--steps 30]
"""

import argparse
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import glob  # noqa: E402

import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

import _common  # noqa: E402  (bench/ is on sys.path when a script here runs)
from recdistill import kd as kd_lib  # noqa: E402
from recdistill import training  # noqa: E402
from recdistill.data import datasets  # noqa: E402
from recdistill.protos import pipeline_pb2  # noqa: E402

SESSION = "session"


def _with_sessions(cfg, folder: str, session_rows: int) -> None:
    """Appends a ``session`` column (``session_rows`` consecutive rows each) to the data."""
    names = [field.input_name for field in cfg.data_config.input_fields]
    offset = 0
    for path in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        frame = pd.read_csv(path, header=None, names=names, keep_default_na=False)
        frame[SESSION] = (offset + pd.RangeIndex(len(frame))) // session_rows
        offset += len(frame)
        frame.to_csv(path, header=False, index=False)
    cfg.data_config.input_fields.add(input_name=SESSION,
                                     input_type=pipeline_pb2.DatasetConfig.INT64)


def _ranking_block(loss_type, field: str) -> pipeline_pb2.KD:
    block = pipeline_pb2.KD(pred_name="logits", soft_label_name="kd_soft", loss_type=loss_type)
    getattr(block, field).session_name = SESSION
    return block


def _step(cfg, model, task, first_features):
    """The trainer's step (loss, gradients, Adam) with the input columns passed to kd."""
    model(first_features, training=False)
    optimizer = training.build_optimizer(cfg.train_config)
    variables = model.trainable_variables + list(task.trainable_variables)
    optimizer.build(variables)

    @tf.function
    def step(iterator):
        features, labels = next(iterator)
        with tf.GradientTape() as tape:
            predictions = model(features, training=True)
            regularization = tf.add_n(model.losses) if model.losses else None
            parts = task(predictions, labels, regularization=regularization, features=features)
        optimizer.apply_gradients(zip(tape.gradient(parts[kd_lib.LOSS_KEY], variables),
                                      variables))
        return parts, tf.shape(next(iter(labels.values())))[0]

    return step


def _variant(cfg, path, kd_blocks, seed, batch_size):
    """A fresh student and its compiled step, reading its own iterator over the same files."""
    model = _common.new_student(cfg, seed)
    columns = dict(model.input_columns)
    columns.setdefault(SESSION, tf.int64)
    dataset = datasets.make_dataset(path, cfg, columns=columns,
                                    labels=_common.label_names(cfg, model),
                                    batch_size=batch_size, shuffle=False, num_epochs=0,
                                    seed=seed)
    iterator = iter(dataset)
    task = kd_lib.KdTask(model.targets, kd_blocks, model.prediction_names)
    return _step(cfg, model, task, next(iterator)[0]), iterator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--session-rows", type=int, default=82,
                        help="consecutive rows per session (4096 / 82 = 50 per batch)")
    parser.add_argument("--steps", type=int, default=30, help="steps per timing window")
    parser.add_argument("--repeats", type=int, default=3, help="windows per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cfg, path = _common.soft_labelled_sample(args.rows, args.seed)
    _with_sessions(cfg, path, args.session_rows)
    blocks = {
        "pointwise": list(cfg.model_config.kd),
        "pairwise_hinge": [_ranking_block(pipeline_pb2.PAIRWISE_HINGE_LOSS,
                                          "pairwise_hinge_loss")],
        "listwise_rank": [_ranking_block(pipeline_pb2.LISTWISE_RANK_LOSS,
                                         "listwise_rank_loss")],
        "listwise_calibrated": [_ranking_block(pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS,
                                               "listwise_calibrated_distill_loss")],
    }
    variants = {"no_kd": _variant(cfg, path, [], args.seed, args.batch_size)}
    for name, kd_blocks in blocks.items():
        variants[name] = _variant(cfg, path, kd_blocks, args.seed, args.batch_size)
    rates = _common.alternate(variants, args.steps, args.repeats)
    medians = _common.report(rates, args.steps, args.batch_size)
    ratios = {name: medians[name] / medians["no_kd"] for name in blocks}
    for name, ratio in ratios.items():
        print(f"{name} / no_kd: {ratio:.3f}")
    print(f"{min(ratios.values()):.3f}")


if __name__ == "__main__":
    main()
