"""Which ``tf.distribute`` strategy a training run uses, and which worker writes.

* ``TF_CONFIG`` naming several tasks (``chief`` / ``worker``): MultiWorkerMirroredStrategy,
  synchronous data parallelism across machines (what a Kubeflow Trainer / Training Operator
  ``TFJob`` sets up). Each step all-reduces the gradients, so every worker holds the same
  weights; the chief (``chief`` task, else ``worker`` 0) writes checkpoints, events and the
  export into ``model_dir``, the others write theirs into a private folder deleted at the end
  (TF asks every worker to save, since saving may take part in collectives).
* several local GPUs: MirroredStrategy;
* otherwise the default strategy.

MultiWorkerMirroredStrategy must be created before TensorFlow runs its first op in the
process, which :func:`choose_strategy` is, when called first thing by the trainer.
"""

import json
import logging
import os

import tensorflow as tf

logger = logging.getLogger(__name__)

_WORKER_DIR = ".worker-{}"


def cluster_size() -> int:
    """How many chief/worker tasks ``TF_CONFIG`` names (1 without a cluster)."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def choose_strategy():
    """MultiWorkerMirroredStrategy for a TF_CONFIG cluster, MirroredStrategy across several
    local GPUs, else the default strategy."""
    workers = cluster_size()
    if workers > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        logger.info("Training on %d workers with MultiWorkerMirroredStrategy (this is %s %d)",
                    workers, resolver.task_type, resolver.task_id)
        return strategy
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        logger.info("Training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files (always, outside a multi-worker cluster)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def write_dir(strategy, model_dir: str) -> str:
    """Where this process writes: ``model_dir`` for the chief, a private folder inside it for
    the other workers (delete it with :func:`clean_up` when done)."""
    if is_chief(strategy):
        return model_dir
    resolver = strategy.cluster_resolver
    return os.path.join(model_dir, _WORKER_DIR.format(f"{resolver.task_type}-{resolver.task_id}"))


def clean_up(strategy, model_dir: str) -> None:
    """Deletes a non-chief worker's private folder (nothing for the chief)."""
    private = write_dir(strategy, model_dir)
    if private != model_dir and tf.io.gfile.exists(private):
        tf.io.gfile.rmtree(private)
