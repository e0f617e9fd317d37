"""Training into a ``model_dir`` on a store TensorFlow cannot write (``s3://``, ``minio://``).

TF 2.21's ``tf.io.gfile`` (checkpoints, summaries, early-stopping state, SavedModel export)
has no S3, yet a default Kubeflow install gives every artifact a ``minio://`` (or ``s3://``)
URI. :func:`staged_model_dir` therefore lets training write a local staging folder and
publishes it to ``model_dir`` through ``recdistill.data.filesystems`` (``atomic_dir``), so
``model_dir`` ends with the layout of a local run (plus the ``_SUCCESS`` marker).

Resume across pods: a retried step is a new pod with an empty disk, so the staging folder
starts as a copy of what ``model_dir`` already holds (its checkpoints), and a failed run
publishes its checkpoints before the error propagates. A pod killed outright (SIGKILL, node
loss) publishes nothing: its retry resumes from the last published run, not the last step.

Local paths and ``gs://`` (which ``tf.io.gfile`` writes) are used as they are.
"""

import contextlib
import logging
import shutil
import tempfile
from typing import Iterator

from recdistill.data import filesystems, stores

logger = logging.getLogger(__name__)

# Stores ``tf.io.gfile`` cannot write in TF 2.21.
UNWRITABLE_BY_TF = ("s3", "minio")


def needs_staging(model_dir: str) -> bool:
    """Whether TensorFlow cannot write ``model_dir`` itself (an ``s3://`` or ``minio://`` URI)."""
    location = stores.locate(model_dir)
    return location is not None and location.scheme in UNWRITABLE_BY_TF


@contextlib.contextmanager
def staged_model_dir(model_dir: str) -> Iterator[str]:
    """Yields the folder training should write for ``model_dir``, published on exit.

    For a ``model_dir`` TF writes itself, yields it unchanged. Otherwise yields a local
    folder holding a copy of ``model_dir``'s current content, and publishes that folder to
    ``model_dir`` when the block ends, whether it succeeded or raised (the checkpoints of a
    failed run are what its retry resumes from); the local folder is then deleted.

    Raises:
      IncompleteOutputError: ``model_dir`` is an interrupted publish (run the step again).
      StoreError: the store cannot be reached (see ``recdistill.data.stores``).
    """
    if not needs_staging(model_dir):
        yield model_dir
        return
    existed = filesystems.exists(model_dir)
    local = (filesystems.localize(model_dir) if existed
             else tempfile.mkdtemp(prefix="recdistill-model-"))
    if existed:
        logger.info("Restored %s into the local staging folder %s", model_dir, local)
    try:
        try:
            yield local
        finally:
            _publish(local, model_dir)
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _publish(local: str, model_dir: str) -> None:
    """Replaces ``model_dir`` with the staging folder (which started as its copy)."""
    with filesystems.atomic_dir(model_dir) as tmp:
        filesystems.copy_tree(local, tmp)
    logger.info("Published the local staging folder %s to %s", local, model_dir)
