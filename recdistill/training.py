"""Training: a config and data files in, checkpoints and a serving export out.

This module owns the training loop of every model recdistill trains. A Keras model
(DSSM student, DCN / DeepFM teacher; ``recdistill.models.build_model``) is trained with a
custom ``tf.function`` step whose loss is :class:`recdistill.kd.KdTask`: the hard-label loss of
each target, plus every kd block's loss, plus the model's regularisation. Each component is
logged on its own (console and TensorBoard), so a kd run shows whether the student follows the
teacher or the clicks. A GBDT teacher (``model_class: 'GBDT'``) is trained by
``recdistill.models.gbdt`` instead.

What a run leaves in ``model_dir``:

* ``ckpt-<step>`` checkpoints (model, optimizer, step) every ``save_checkpoints_steps``; a
  killed job restarted with the same ``model_dir`` continues from the last one.
* ``events/``: TensorBoard summaries of every loss component, steps/s and examples/s, and
  ``training_report.html``: the same loss curves as a self-contained page.
* ``export/``: the SavedModel (``recdistill.exported`` contract) with ``recdistill.json``
  holding the config, training metrics and eval metrics, and ``export/warm_start/``: a
  checkpoint of the model's weights only. ``train(..., warm_start=<export>)`` restores it into
  a freshly built model, which is how daily retraining starts from yesterday's student
  (restoring by variable path, see :func:`variables_by_path`, survives re-exports; matching
  the SavedModel's own variables by position would not).

``model_dir`` is written with ``tf.io.gfile`` (checkpoints, events), so it is a local path or
a real ``gs://`` bucket; the GCS emulator used in tests is reachable only for data inputs and
the export, which go through ``recdistill.data.filesystems``.

Soft-label columns and privileged features are read for training only: the export takes
exactly the columns the model reads (``model.input_columns``).

Does all IO through ``recdistill.data``; never imports ``kfp``.
"""

import dataclasses
import logging
import os
import re
import tempfile
import time
from typing import Optional

import numpy as np

from recdistill import config as config_lib
from recdistill import exported
from recdistill import kd as kd_lib
from recdistill import metrics as metrics_lib
from recdistill.data import datasets, filesystems, tables
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

EVENTS_SUBDIR = "events"
TRAINING_REPORT = "training_report.html"
WARM_START_SUBDIR = "warm_start"
CHECKPOINT_NAME = "ckpt"
_WARM_START_PREFIX = "model"
_EVAL_BATCH_SIZE = 4096


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
      model_dir: where checkpoints and TensorBoard events are.
      export_dir: the SavedModel export (``<model_dir>/export``).
      steps: the global step reached (trees for a GBDT).
      metrics: flat name -> number: the final loss components (means over the last logging
        window), ``steps``, ``examples_per_sec`` and, with eval data, ``eval_auc`` /
        ``eval_logloss`` (plus ``eval_auc_<label>`` / ``eval_logloss_<label>`` per target).
    """

    model_dir: str
    export_dir: str
    steps: int
    metrics: dict


def train(config, *, train_uri: Optional[str] = None, eval_uri: Optional[str] = None,
          model_dir: Optional[str] = None, warm_start: Optional[str] = None,
          mixed_precision: bool = False, num_steps: Optional[int] = None) -> TrainResult:
    """Trains the model a config describes, then exports it for serving.

    Args:
      config: a loaded ``EasyRecConfig`` or a config path / text for ``load_config``.
      train_uri: training data (file, folder of shards or glob; local or gs://); defaults to
        ``train_input_path``.
      eval_uri: eval data for AUC / logloss; defaults to ``eval_input_path`` (none: no eval).
      model_dir: checkpoints, events and export; defaults to the config's ``model_dir``.
      warm_start: an export folder (or pushed version) of a model built from the same config,
        whose weights initialise this run. Ignored when ``model_dir`` already holds a
        checkpoint (resuming wins).
      mixed_precision: compute in float16 with loss scaling (``mixed_float16``); for GPUs.
      num_steps: overrides ``train_config.num_steps``.

    Returns:
      A :class:`TrainResult`.

    Raises:
      ValueError: no training data / model_dir, bad data (see ``datasets.check_inputs``), or
        a warm start whose weights do not fit the model.
      FileNotFoundError: the training data or warm start does not exist.
    """
    cfg = (config if isinstance(config, pipeline_pb2.EasyRecConfig)
           else config_lib.load_config(config))
    train_uri = train_uri or cfg.train_input_path
    eval_uri = eval_uri or cfg.eval_input_path or None
    model_dir = model_dir or cfg.model_dir
    if not train_uri:
        raise ValueError("no training data: set train_input_path in the config or pass train_uri.")
    if not model_dir:
        raise ValueError("no model_dir: set model_dir in the config or pass model_dir.")
    steps = cfg.train_config.num_steps if num_steps is None else num_steps
    if cfg.model_config.model_class == "GBDT":
        return _train_gbdt(cfg, train_uri, eval_uri, model_dir)
    if steps == 0 and cfg.data_config.num_epochs == 0:
        raise ValueError("train_config.num_steps is 0 and data_config.num_epochs is 0, so "
                         "training would never end. Set num_steps or num_epochs.")
    return _KerasTrainer(cfg, model_dir, mixed_precision).run(
        train_uri, eval_uri, steps=steps, warm_start=warm_start)


# ---------------------------------------------------------------- Keras models


def _strategy():
    """MirroredStrategy across every local GPU when there are several, else the default."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        logger.info("Training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _decaying_learning_rate(decay):
    """EasyRec's exponential decay, floored at ``min_learning_rate`` when that is set."""
    import keras

    schedule = keras.optimizers.schedules.ExponentialDecay(
        decay.initial_learning_rate, decay.decay_steps, decay.decay_factor,
        staircase=decay.staircase)
    if not decay.min_learning_rate:
        return schedule

    class _Floored(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return keras.ops.maximum(schedule(step), decay.min_learning_rate)

    return _Floored()


def build_optimizer(train_config, mixed_precision: bool = False):
    """The Keras optimizer ``train_config`` describes.

    Adam with a constant or exponentially decaying learning rate (default: constant 0.002,
    EasyRec's default); ``gradient_clipping_by_norm`` clips the global gradient norm as
    EasyRec does. With ``mixed_precision`` the optimizer is wrapped in a
    ``LossScaleOptimizer`` (dynamic loss scaling, so float16 gradients do not underflow).

    Raises:
      ValueError: several optimizer_config entries (EasyRec's multi-optimizer setups are not
        supported).
    """
    import keras

    if len(train_config.optimizer_config) > 1:
        raise ValueError(f"train_config.optimizer_config has {len(train_config.optimizer_config)}"
                         " entries; recdistill supports one. Keep a single adam_optimizer.")
    adam = (train_config.optimizer_config[0].adam_optimizer if train_config.optimizer_config
            else pipeline_pb2.AdamOptimizer())
    rate = adam.learning_rate
    if rate.WhichOneof("learning_rate") == "exponential_decay_learning_rate":
        learning_rate = _decaying_learning_rate(rate.exponential_decay_learning_rate)
    else:
        learning_rate = rate.constant_learning_rate.learning_rate
    clip = train_config.gradient_clipping_by_norm or None
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=adam.beta1,
                                      beta_2=adam.beta2, global_clipnorm=clip)
    if mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class _KerasTrainer:
    """One training run of a Keras model: build, restore, loop, checkpoint, export."""

    def __init__(self, cfg, model_dir: str, mixed_precision: bool):
        self.cfg = cfg
        self.model_dir = model_dir
        self.mixed_precision = mixed_precision

    def run(self, train_uri, eval_uri, *, steps: int, warm_start: Optional[str]) -> TrainResult:
        import keras
        import tensorflow as tf

        previous_policy = keras.mixed_precision.global_policy()
        if self.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            return self._run(tf, train_uri, eval_uri, steps, warm_start)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)

    def _run(self, tf, train_uri, eval_uri, steps, warm_start) -> TrainResult:
        from recdistill.models.export import export_model

        strategy = _strategy()
        model, optimizer, dataset = self._build(tf, strategy, train_uri)
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        checkpoint = tf.train.Checkpoint(model=variables_by_path(model.variables),
                                         optimizer=variables_by_path(optimizer.variables),
                                         step=global_step)
        manager = tf.train.CheckpointManager(
            checkpoint, self.model_dir, max_to_keep=self.cfg.train_config.keep_checkpoint_max
            or None, checkpoint_name=CHECKPOINT_NAME)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            logger.info("Resumed from %s at step %d", manager.latest_checkpoint,
                        int(global_step.numpy()))
        elif warm_start:
            _restore_warm_start(model, warm_start)

        task = kd_lib.KdTask(model.targets, self.cfg.model_config.kd)
        step_fn = make_train_step(tf, strategy, model, optimizer, task, self.mixed_precision)
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        train_metrics = self._loop(tf, step_fn, iterator, manager, global_step, steps)

        _write_training_report(self.cfg, self.model_dir)
        eval_metrics = _evaluate(tf, self.cfg, model, eval_uri) if eval_uri else {}
        export_path = exported.export_dir(self.model_dir)
        export_model(model, export_path, _metadata(self.cfg, model.targets, train_metrics,
                                                   eval_metrics))
        _write_warm_start(tf, model, export_path)
        logger.info("Exported %s to %s", self.cfg.model_config.model_class, export_path)
        return TrainResult(model_dir=self.model_dir, export_dir=export_path,
                           steps=train_metrics["steps"], metrics={**train_metrics, **eval_metrics})

    def _build(self, tf, strategy, train_uri):
        """Model and optimizer with their variables created under ``strategy``, and the data.

        The global batch is ``batch_size`` per replica, so each GPU sees the configured batch.
        """
        from recdistill.models import build_model

        cfg = self.cfg
        with strategy.scope():
            model = build_model(cfg)
            optimizer = build_optimizer(cfg.train_config, self.mixed_precision)
        labels = list(dict.fromkeys(
            [label for _, label, _ in model.targets] + config_lib.soft_label_fields(cfg)))
        dataset = datasets.make_dataset(
            train_uri, cfg, columns=model.input_columns, labels=labels,
            batch_size=cfg.data_config.batch_size * strategy.num_replicas_in_sync,
            shuffle=cfg.data_config.shuffle, num_epochs=cfg.data_config.num_epochs)
        with strategy.scope():
            first_features, _ = next(iter(dataset.take(1)))
            model(first_features, training=False)  # creates the variables
            optimizer.build(model.trainable_variables)
        return model, optimizer, dataset

    def _loop(self, tf, step_fn, iterator, manager, global_step, steps: int) -> dict:
        """Runs steps until ``steps`` (or the data ends when it is 0), checkpointing every
        ``save_checkpoints_steps`` and at the end; returns the training metrics.

        The input position is not checkpointed: a resumed job starts reading its (shuffled)
        data from the beginning, which for repeated, shuffled input only changes the order.
        """
        train_config = self.cfg.train_config
        loop = _Loop(tf, self.model_dir, train_config, start=int(global_step.numpy()),
                     total=steps)
        saved = loop.step if manager.latest_checkpoint else None
        while loop.step < steps or steps == 0:
            try:
                parts, examples = step_fn(iterator)
            except tf.errors.OutOfRangeError:
                logger.info("Training data exhausted after %d epoch(s) at step %d",
                            self.cfg.data_config.num_epochs, loop.step)
                break
            loop.record(parts, examples)
            if loop.step % max(train_config.save_checkpoints_steps, 1) == 0:
                global_step.assign(loop.step)
                manager.save(checkpoint_number=loop.step)
                saved = loop.step
        if saved != loop.step:
            global_step.assign(loop.step)
            manager.save(checkpoint_number=loop.step)
        return loop.finish()


def make_train_step(tf, strategy, model, optimizer, task, mixed_precision):
    """The compiled training step :func:`train` runs (also timed by bench/kd_overhead.py).

    Args:
      tf: the tensorflow module (imported lazily by callers).
      strategy: the ``tf.distribute`` strategy the model and optimizer were built under.
      model: a built Keras model from ``build_model``.
      optimizer: from :func:`build_optimizer`, built on ``model.trainable_variables``.
      task: the ``KdTask`` giving the loss components.
      mixed_precision: scale the loss for a ``LossScaleOptimizer``.

    Returns:
      A ``tf.function`` taking a (distributed) dataset iterator and returning
      ``(loss components averaged over replicas, examples in the global batch)``.
    """
    replicas = strategy.num_replicas_in_sync

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            predictions = model(features, training=True)
            regularization = tf.add_n(model.losses) if model.losses else None
            parts = task(predictions, labels, regularization=regularization)
            loss = parts[kd_lib.LOSS_KEY] / replicas
            if mixed_precision:
                loss = optimizer.scale_loss(loss)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        rows = tf.shape(next(iter(labels.values())))[0]
        return parts, rows

    @tf.function
    def step(iterator):
        features, labels = next(iterator)
        parts, rows = strategy.run(replica_step, args=(features, labels))
        mean = tf.distribute.ReduceOp.MEAN
        return ({name: strategy.reduce(mean, value, axis=None) for name, value in parts.items()},
                strategy.reduce(tf.distribute.ReduceOp.SUM, rows, axis=None))

    return step


class _Loop:
    """Step counting and reporting: console lines and TensorBoard scalars every
    ``log_step_count_steps``, without a device-to-host copy on the other steps."""

    def __init__(self, tf, model_dir: str, train_config, *, start: int, total: int):
        self.tf = tf
        self.step = start
        self.start = start
        self.total = total
        self.every = max(train_config.log_step_count_steps, 1)
        self.writer = tf.summary.create_file_writer(os.path.join(model_dir, EVENTS_SUBDIR))
        self.window = []
        self.window_start = time.perf_counter()
        self.run_start = self.window_start
        self.examples = 0
        self.last = {}

    def record(self, parts, examples) -> None:
        self.step += 1
        self.window.append((parts, examples))
        if self.step % self.every == 0:
            self._report()

    def _report(self) -> None:
        if not self.window:
            return
        from tensorflow.core.framework import summary_pb2

        tf = self.tf
        now = time.perf_counter()
        seconds = max(now - self.window_start, 1e-9)
        names = list(self.window[0][0])
        means = {name: float(tf.add_n([parts[name] for parts, _ in self.window]).numpy())
                 / len(self.window) for name in names}
        examples = int(tf.add_n([rows for _, rows in self.window]).numpy())
        steps_per_sec = len(self.window) / seconds
        examples_per_sec = examples / seconds
        self.examples += examples
        eta = (self.total - self.step) / steps_per_sec if self.total else float("nan")
        logger.info("step %d: %.1f steps/s, %.0f examples/s, ETA %.0fs, %s", self.step,
                    steps_per_sec, examples_per_sec, eta,
                    ", ".join(f"{name} {value:.5f}" for name, value in means.items()))
        scalars = {f"loss/{name}": value for name, value in means.items()}
        scalars.update(steps_per_sec=steps_per_sec, examples_per_sec=examples_per_sec)
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="scalars")).SerializeToString()
        with self.writer.as_default(step=self.step):
            for tag, value in scalars.items():
                # tf.summary.scalar lives in the tensorboard package, which is not installed;
                # tf.summary.write with the scalars plugin tag writes the same event.
                tf.summary.write(tag, tf.constant(value, tf.float32),
                                 metadata=metadata)
        self.last = means
        self.window = []
        self.window_start = now

    def finish(self) -> dict:
        """Reports the last partial window and returns the training metrics."""
        self._report()
        self.writer.flush()
        seconds = max(time.perf_counter() - self.run_start, 1e-9)
        return {**self.last, "steps": self.step,
                "examples_per_sec": self.examples / seconds if self.step > self.start else 0.0}


def read_scalars(model_dir: str) -> dict:
    """The scalars training logged to ``<model_dir>/events``: tag -> {step: value}.

    Every run into the same model_dir (a resumed job too) adds events; a step logged twice
    keeps its last value.
    """
    import tensorflow as tf

    values = {}
    # tf.io.gfile, like the summary writer, so a gs:// model_dir is read too.
    for path in sorted(tf.io.gfile.glob(os.path.join(model_dir, EVENTS_SUBDIR, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = float(
                    tf.make_ndarray(value.tensor))
    return values


def _write_training_report(cfg, model_dir: str) -> None:
    """Writes ``<model_dir>/training_report.html``: loss curves of every component."""
    from recdistill import report

    page = report.render_training_report(
        read_scalars(model_dir), title=f"{cfg.model_config.model_class} training: {model_dir}")
    with filesystems.open_output(filesystems.join(model_dir, TRAINING_REPORT)) as f:
        f.write(page.encode())
    logger.info("Wrote %s", filesystems.join(model_dir, TRAINING_REPORT))


_SEED_STATE = "seed_generator_state"
_OWNER_SUFFIX = re.compile(r"^([^/]*?)(?:_\d+)?/")


def variables_by_path(variables) -> dict:
    """Keras variables keyed by their path without the owner's name, as checkpoints hold them.

    ``tf.train.Checkpoint(model=keras_model)`` does not see variables of Keras 3 sublayers
    (only those set directly on the model), so checkpoints hold this dict instead. The first
    path component (the model's or optimizer's name) loses the numeric suffix Keras adds to
    make it unique per process (``adam_3`` -> ``adam``), so the keys are the same for every
    model built from the same config, while a loss-scale optimizer's own variables stay
    apart from those of the optimizer it wraps.

    Raises:
      ValueError: two variables share a path (they would overwrite each other).
    """
    by_path = {}
    for variable in variables:
        if variable.name == _SEED_STATE:
            continue  # dropout's RNG state: numbered per process, and nothing to resume
        key = _OWNER_SUFFIX.sub(r"\1/", variable.path, count=1)
        if key in by_path:
            raise ValueError(f"two variables share the path {key!r}; give the layers distinct "
                             "names so checkpoints can tell them apart.")
        by_path[key] = variable
    return by_path


def _write_warm_start(tf, model, export_path: str) -> None:
    """Saves the model's weights beside the SavedModel for :func:`_restore_warm_start`."""
    with tempfile.TemporaryDirectory() as tmp:
        tf.train.Checkpoint(model=variables_by_path(model.variables)).write(
            os.path.join(tmp, _WARM_START_PREFIX))
        filesystems.copy_tree(tmp, filesystems.join(export_path, WARM_START_SUBDIR))


def _restore_warm_start(model, warm_start: str) -> None:
    """Initialises ``model`` from the weights an earlier run stored in its export.

    Raises:
      FileNotFoundError: ``warm_start`` holds no ``warm_start/`` checkpoint.
      ValueError: the checkpoint does not fit the model (different config).
    """
    import tensorflow as tf

    source = filesystems.join(warm_start, WARM_START_SUBDIR)
    if not filesystems.exists(filesystems.join(source, _WARM_START_PREFIX + ".index")):
        raise FileNotFoundError(
            f"{warm_start}: no {WARM_START_SUBDIR}/ checkpoint in this export. Pass the export "
            f"folder of a model trained by recdistill.training (<model_dir>/export).")
    local = filesystems.localize(source)
    try:
        tf.train.Checkpoint(model=variables_by_path(model.variables)).read(
            os.path.join(local, _WARM_START_PREFIX)).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise ValueError(f"{warm_start}: its weights do not fit this model ({error}). Warm-start "
                         "only from a model built from the same features and model_config.") \
            from None
    logger.info("Warm-started %s from %s", model.name, warm_start)


def _evaluate(tf, cfg, model, eval_uri: str) -> dict:
    """AUC and logloss of every target on the eval data (one pass, in memory).

    The eval table is the raw one, without soft-label columns (soft labels are a training
    signal; the pipeline labels only the training table), as ``recdistill.evaluation`` reads it.
    """
    label_names = [label for _, label, _ in model.targets]
    dataset = datasets.make_dataset(eval_uri, config_lib.without_kd(cfg),
                                    columns=model.input_columns,
                                    labels=label_names, batch_size=_EVAL_BATCH_SIZE,
                                    shuffle=False, num_epochs=1)
    predict = tf.function(lambda features: model(features, training=False))
    logits = {pred: [] for pred, _, _ in model.targets}
    labels = {label: [] for label in label_names}
    for features, batch_labels in dataset:
        outputs = predict(features)
        for pred, label, _ in model.targets:
            logits[pred].append(tf.reshape(tf.cast(outputs[pred], tf.float32), [-1]).numpy())
            labels[label].append(batch_labels[label].numpy())
    results = {}
    for index, (pred, label, _) in enumerate(model.targets):
        probs = 1.0 / (1.0 + np.exp(-np.concatenate(logits[pred])))
        results.update(_classification(np.concatenate(labels[label]), probs, label,
                                       primary=index == 0, several=len(model.targets) > 1))
    logger.info("Eval on %s: %s", eval_uri, results)
    return results


def _classification(labels, probs, label: str, *, primary: bool, several: bool) -> dict:
    """``eval_auc`` / ``eval_logloss`` for the first target, suffixed copies per target.

    An eval split whose labels hold one class has no AUC; that is logged and the AUC left
    out rather than failing a finished training run before its export.
    """
    values = {"logloss": metrics_lib.logloss(labels, probs)}
    try:
        values["auc"] = metrics_lib.auc(labels, probs)
    except ValueError as error:
        logger.warning("No eval AUC for %s: %s", label, error)
    out = {}
    for name, value in values.items():
        if primary:
            out[f"eval_{name}"] = value
        if several:
            out[f"eval_{name}_{label}"] = value
    return out


def _metadata(cfg, targets, train_metrics: dict, eval_metrics: dict) -> dict:
    """The ``recdistill.json`` entries training owns (export adds inputs, outputs, versions)."""
    return {"config": config_lib.to_text(cfg), "training_metrics": train_metrics,
            "eval_metrics": eval_metrics, "label_fields": [label for _, label, _ in targets]}


# ---------------------------------------------------------------- GBDT


def _train_gbdt(cfg, train_uri, eval_uri, model_dir) -> TrainResult:
    """Trains and exports a GBDT teacher (no steps, checkpoints or warm start: YDF trains in
    one call on the whole table)."""
    from recdistill.models import gbdt

    columns = list(gbdt.input_columns(cfg))
    label = gbdt.hard_label(cfg)
    datasets.check_inputs(train_uri, cfg, columns=columns, labels=[label])
    started = time.perf_counter()
    table = tables.read_table(train_uri, cfg.data_config, fields=columns + [label])
    model = gbdt.train_gbdt(cfg, _numpy_columns(table, columns),
                            table.column(label).to_numpy(zero_copy_only=False))
    seconds = max(time.perf_counter() - started, 1e-9)
    train_metrics = {"steps": model.num_trees(), "examples_per_sec": table.num_rows / seconds}
    eval_metrics = {}
    if eval_uri:
        datasets.check_inputs(eval_uri, cfg, columns=columns, labels=[label])
        table = tables.read_table(eval_uri, cfg.data_config, fields=columns + [label])
        probs = gbdt.predict_probs(cfg, model, _numpy_columns(table, columns))
        eval_metrics = _classification(table.column(label).to_numpy(zero_copy_only=False), probs,
                                       label, primary=True, several=False)
        logger.info("Eval on %s: %s", eval_uri, eval_metrics)
    export_path = exported.export_dir(model_dir)
    gbdt.export_gbdt(cfg, model, export_path,
                     _metadata(cfg, [(None, label, 1.0)], train_metrics, eval_metrics))
    return TrainResult(model_dir=model_dir, export_dir=export_path, steps=model.num_trees(),
                       metrics={**train_metrics, **eval_metrics})


def _numpy_columns(table, names) -> dict:
    """``{name: numpy array}`` for the named columns of a pyarrow table."""
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in names}
