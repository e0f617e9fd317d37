"""The training report: the scalars a run logged, and the page that draws them.

Training logs every loss component, steps/s and examples/s as TensorBoard scalars under
``<model_dir>/events``; this module reads them back and writes ``training_report.html``
(``recdistill.report.render_training_report``), so the curves are there without TensorBoard.
"""

import logging
import os

import tensorflow as tf

from recdistill import report
from recdistill.data import filesystems

logger = logging.getLogger(__name__)

EVENTS_SUBDIR = "events"
TRAINING_REPORT = "training_report.html"


def read_scalars(model_dir: str) -> dict:
    """The scalars training logged to ``<model_dir>/events``: tag -> {step: value}.

    Every run into the same model_dir (a resumed job too) adds events; a step logged twice
    keeps its last value.
    """
    values = {}
    # tf.io.gfile, like the summary writer, so a gs:// model_dir is read too.
    for path in sorted(tf.io.gfile.glob(os.path.join(model_dir, EVENTS_SUBDIR, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = float(
                    tf.make_ndarray(value.tensor))
    return values


def write_training_report(cfg, model_dir: str) -> None:
    """Writes ``<model_dir>/training_report.html``: loss curves of every component."""
    page = report.render_training_report(
        read_scalars(model_dir), title=f"{cfg.model_config.model_class} training: {model_dir}")
    with filesystems.open_output(filesystems.join(model_dir, TRAINING_REPORT)) as f:
        f.write(page.encode())
    logger.info("Wrote %s", filesystems.join(model_dir, TRAINING_REPORT))
