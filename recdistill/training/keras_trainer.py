"""The training loop of Keras models (DSSM student, DCN / DeepFM teacher).

A model from ``recdistill.models.build_model`` is trained with a custom ``tf.function`` step
whose loss is :class:`recdistill.kd.KdTask`: the hard-label loss of each target, plus every kd
block's loss, plus the model's regularisation. Each component is logged on its own (console
and TensorBoard), so a kd run shows whether the student follows the teacher or the clicks.
Checkpoints and warm start are ``recdistill.training.checkpoints``'; the loss-curve page is
``recdistill.training.report``'s.
"""

import logging
import os
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from recdistill import config as config_lib
from recdistill import exported
from recdistill import kd as kd_lib
from recdistill.data import datasets
from recdistill.protos import pipeline_pb2
from recdistill.training import checkpoints, distribution, report
from recdistill.training.early_stopping import EarlyStopping
from recdistill.training.eval_metrics import KerasEvaluator
from recdistill.training.result import TrainResult, export_metadata

logger = logging.getLogger(__name__)

_DIVERGED_FIX = ("Nothing of the diverged state was saved; the last checkpoint (if any) is "
                 "finite. Check the training data for NaN/inf or extreme values, lower the "
                 "learning rate or set train_config.gradient_clipping_by_norm, then rerun.")


class NonFiniteLossError(ValueError):
    """Training stopped because the loss or the weights became NaN / inf."""


def _decaying_learning_rate(decay):
    """EasyRec's exponential decay, floored at ``min_learning_rate`` when that is set."""
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


class KerasTrainer:
    """One training run of a Keras model: build, restore, loop, checkpoint, export."""

    def __init__(self, cfg, model_dir: str, mixed_precision: bool, exclude_fold=None):
        self.cfg = cfg
        self.model_dir = model_dir
        self.mixed_precision = mixed_precision
        self.exclude_fold = exclude_fold  # a cross-fitting fold teacher's left-out fold

    def run(self, train_uri, eval_uri, *, steps: int, warm_start: Optional[str]) -> TrainResult:
        """Trains ``steps`` steps (0: ``num_epochs`` passes), evaluates and exports."""
        previous_policy = keras.mixed_precision.global_policy()
        if self.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            return self._run(train_uri, eval_uri, steps, warm_start)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)

    def _run(self, train_uri, eval_uri, steps, warm_start) -> TrainResult:
        train_config = self.cfg.train_config
        if train_config.HasField("early_stopping") and not eval_uri:
            raise ValueError("train_config.early_stopping needs eval data: set eval_input_path "
                             "in the config or pass the eval table (--eval / eval_uri), or "
                             "remove early_stopping.")
        strategy = distribution.choose_strategy()
        if distribution.is_multi_worker(strategy) and train_config.HasField("early_stopping"):
            raise ValueError(f"train_config.early_stopping is not supported with several "
                             f"workers (TF_CONFIG names {distribution.cluster_size()}); remove "
                             "it or train on one worker.")
        distribution.clean_up(strategy, self.model_dir)  # a killed run's leftovers
        try:
            return self._train(strategy, distribution.write_dir(strategy, self.model_dir),
                               train_uri, eval_uri, steps, warm_start)
        finally:
            distribution.clean_up(strategy, self.model_dir)

    def _train(self, strategy, out_dir, train_uri, eval_uri, steps, warm_start) -> TrainResult:
        """Builds, restores (from ``model_dir``), trains, evaluates and exports; writes into
        ``out_dir`` (``model_dir``, or a non-chief worker's private folder)."""
        from recdistill.models.export import export_model

        train_config = self.cfg.train_config
        model, optimizer, task, dataset = self._build(strategy, train_uri)
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        checkpoint = tf.train.Checkpoint(
            model=checkpoints.variables_by_path(model.variables), task=task,
            optimizer=checkpoints.variables_by_path(optimizer.variables), step=global_step)
        manager = tf.train.CheckpointManager(
            checkpoint, out_dir, max_to_keep=train_config.keep_checkpoint_max or None,
            checkpoint_name=checkpoints.CHECKPOINT_NAME)
        evaluator = KerasEvaluator(self.cfg, model, eval_uri) if eval_uri else None
        stopper = (EarlyStopping(train_config.early_stopping,
                                 train_config.save_checkpoints_steps, out_dir, model, evaluator)
                   if train_config.HasField("early_stopping") else None)
        latest = tf.train.latest_checkpoint(self.model_dir)
        if latest:
            self._resume(checkpoint, latest, model, global_step)
            if stopper:
                stopper.resume()
        elif warm_start:
            checkpoints.restore_warm_start(model, warm_start)

        step_fn = make_train_step(strategy, model, optimizer, task, self.mixed_precision)
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        train_metrics = self._loop(step_fn, iterator, manager, model, global_step, steps,
                                   stopper, out_dir, resumed=bool(latest))

        report.write_training_report(self.cfg, out_dir)
        extra = {"cross_fit": self.exclude_fold.describe()} if self.exclude_fold else {}
        if stopper:
            eval_metrics = stopper.restore_best()
            extra["early_stopping"] = stopper.summary()
            train_metrics["best_step"] = stopper.best["step"]
        else:
            eval_metrics = evaluator() if evaluator else {}
        export_path = exported.export_dir(out_dir)
        labels = [label for _, label, _ in model.targets]
        export_model(model, export_path,
                     export_metadata(self.cfg, labels, train_metrics, eval_metrics, **extra))
        checkpoints.write_warm_start(model, export_path)
        logger.info("Exported %s to %s", self.cfg.model_config.model_class, export_path)
        return TrainResult(model_dir=self.model_dir, export_dir=exported.export_dir(self.model_dir),
                           steps=train_metrics["steps"], metrics={**train_metrics, **eval_metrics})

    def _resume(self, checkpoint, path: str, model, global_step) -> None:
        """Restores the last checkpoint, refusing one whose weights are not finite.

        Such a checkpoint is what a diverged run left before training checked its loss: resuming
        it would train on from NaN (0 steps when it had reached num_steps) and export NaN.

        Raises:
          ValueError: the checkpoint holds NaN or inf.
        """
        checkpoint.restore(path).assert_existing_objects_matched()
        step = int(global_step.numpy())
        bad = checkpoints.nonfinite_paths(model.variables)
        if bad:
            raise ValueError(
                f"{path} (step {step}): the checkpoint to resume from holds NaN or inf in "
                f"{len(bad)} variable(s), e.g. {bad[0]!r}: the run that wrote it diverged. "
                f"Resuming would train on from NaN. Delete {self.model_dir} (or pass a new "
                "model_dir) to train from scratch, after fixing the cause (NaN/inf in the "
                "data, a too high learning rate).")
        logger.info("Resumed from %s at step %d", path, step)

    def _build(self, strategy, train_uri):
        """Model and optimizer with their variables created under ``strategy``, and the data.

        The global batch is ``batch_size`` per replica, so each GPU (and worker) sees the
        configured batch.
        """
        from recdistill.models import build_model

        cfg = self.cfg
        with strategy.scope():
            model = build_model(cfg)
            optimizer = build_optimizer(cfg.train_config, self.mixed_precision)
            # Checks every kd block's pred_name against the model's outputs before any tracing;
            # in the scope because kd's scale_logits weights are trained with the model.
            task = kd_lib.KdTask(model.targets, cfg.model_config.kd, model.prediction_names)
        labels = list(dict.fromkeys(
            [label for _, label, _ in model.targets] + config_lib.soft_label_fields(cfg)))
        multi_worker = distribution.is_multi_worker(strategy)
        dataset = datasets.make_dataset(
            train_uri, cfg, columns=list(dict.fromkeys([*model.input_columns, *task.feature_names])),
            labels=labels, batch_size=cfg.data_config.batch_size * strategy.num_replicas_in_sync,
            shuffle=cfg.data_config.shuffle, num_epochs=cfg.data_config.num_epochs,
            seed=0 if multi_worker else None, session_column=_session_column(task),
            exclude_fold=self.exclude_fold)
        if multi_worker:
            # Every worker reads the same (same-seed shuffled) rows and keeps its share of each
            # global batch: a partition whatever the number of files.
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = \
                tf.data.experimental.AutoShardPolicy.DATA
            dataset = dataset.with_options(options)
        with strategy.scope():
            first_features, _ = next(iter(dataset.take(1)))
            model(_model_inputs(model, first_features), training=False)  # creates the variables
            optimizer.build(trainable_variables(model, task))
        return model, optimizer, task, dataset

    def _loop(self, step_fn, iterator, manager, model, global_step, steps: int,
              stopper: Optional[EarlyStopping], out_dir: str, *, resumed: bool) -> dict:
        """Runs steps until ``steps`` (or the data ends when it is 0, or ``stopper`` says so),
        checkpointing every ``save_checkpoints_steps``, at every evaluation and at the end;
        returns the training metrics.

        The input position is not checkpointed: a resumed job starts reading its (shuffled)
        data from the beginning, which for repeated, shuffled input only changes the order.

        Raises:
          NonFiniteLossError: the loss or the weights became NaN / inf; no checkpoint of that
            state is written, so neither a rerun nor the export picks it up.
        """
        train_config = self.cfg.train_config
        loop = StepLog(out_dir, train_config, start=int(global_step.numpy()), total=steps)
        saved = loop.step if resumed else None

        def save():
            loop.check_finite()
            bad = checkpoints.nonfinite_paths(model.variables)
            if bad:
                raise NonFiniteLossError(
                    f"training diverged: after step {loop.step} {len(bad)} variable(s) hold NaN "
                    f"or inf, e.g. {bad[0]!r} ({self.model_dir}). {_DIVERGED_FIX}")
            global_step.assign(loop.step)
            manager.save(checkpoint_number=loop.step)
            return loop.step

        def evaluate() -> bool:
            stop = stopper.evaluate(loop.step)
            loop.write_scalars({f"eval/{name}": value
                                for name, value in stopper.history[-1].items() if name != "step"})
            return stop

        while (loop.step < steps or steps == 0) and not (stopper and stopper.stopped):
            try:
                parts, examples = step_fn(iterator)
            except tf.errors.OutOfRangeError:
                logger.info("Training data exhausted after %d epoch(s) at step %d",
                            self.cfg.data_config.num_epochs, loop.step)
                break
            loop.record(parts, examples)
            at_eval = stopper is not None and loop.step % stopper.every == 0
            if at_eval or loop.step % max(train_config.save_checkpoints_steps, 1) == 0:
                saved = save()
            if at_eval and evaluate():
                break
        if saved != loop.step:
            saved = save()
        if stopper and not stopper.stopped and stopper.last_step != loop.step:
            evaluate()  # the last weights compete too
        return loop.finish()


def trainable_variables(model, task) -> list:
    """The model's weights plus the kd task's own (``scale_logits`` blocks' scale and bias)."""
    return model.trainable_variables + list(task.trainable_variables)


def _model_inputs(model, features) -> dict:
    """The columns the model reads; the batch may also hold kd-only ones (sessions, weights)."""
    return {name: features[name] for name in model.input_columns}


def _session_column(task) -> str:
    """The session column of the task's ranking kd blocks, so batches keep sessions whole.

    Raises:
      ValueError: ranking blocks name different session columns (one batching cannot keep
        both kinds of session whole).
    """
    names = list(dict.fromkeys(block.session_name for block in task.kd_params
                               if block.session_name))
    if len(names) > 1:
        raise ValueError(f"kd blocks group rows by different session_name columns {names}; "
                         "batches can keep only one kind of session whole. Use one column.")
    return names[0] if names else ""


def make_train_step(strategy, model, optimizer, task, mixed_precision):
    """The compiled training step :func:`train` runs (also timed by bench/kd_overhead.py).

    Args:
      strategy: the ``tf.distribute`` strategy the model and optimizer were built under.
      model: a built Keras model from ``build_model``.
      optimizer: from :func:`build_optimizer`, built on :func:`trainable_variables`.
      task: the ``KdTask`` giving the loss components.
      mixed_precision: scale the loss for a ``LossScaleOptimizer``.

    Returns:
      A ``tf.function`` taking a (distributed) dataset iterator and returning
      ``(loss components averaged over replicas, examples in the global batch)``.
    """
    replicas = strategy.num_replicas_in_sync

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            predictions = model(_model_inputs(model, features), training=True)
            regularization = tf.add_n(model.losses) if model.losses else None
            parts = task(predictions, labels, regularization=regularization, features=features)
            loss = parts[kd_lib.LOSS_KEY] / replicas
            if mixed_precision:
                loss = optimizer.scale_loss(loss)
        variables = trainable_variables(model, task)
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


class StepLog:
    """Step counting and reporting: console lines and TensorBoard scalars every
    ``log_step_count_steps``, without a device-to-host copy on the other steps."""

    def __init__(self, model_dir: str, train_config, *, start: int, total: int):
        self.model_dir = model_dir
        self.step = start
        self.start = start
        self.total = total
        self.every = max(train_config.log_step_count_steps, 1)
        self.writer = tf.summary.create_file_writer(
            os.path.join(model_dir, report.EVENTS_SUBDIR))
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

    def check_finite(self) -> None:
        """Raises if a loss of the window is NaN / inf, naming the first such step.

        Called at each report and before each checkpoint, so it costs no device-to-host copy
        beyond those; the window keeps every step's loss, so the step named is exact.

        Raises:
          NonFiniteLossError: a step's loss was not finite.
        """
        if not self.window:
            return
        losses = tf.stack([parts[kd_lib.LOSS_KEY] for parts, _ in self.window]).numpy()
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            first = self.step - len(self.window) + 1 + int(bad[0])
            components = {name: float(value.numpy())
                          for name, value in self.window[int(bad[0])][0].items()}
            raise NonFiniteLossError(
                f"training diverged: the loss is {losses[bad[0]]} at step {first} "
                f"({self.model_dir}; components {components}). {_DIVERGED_FIX}")

    def _report(self) -> None:
        if not self.window:
            return
        self.check_finite()
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
        self.write_scalars(scalars)
        self.last = means
        self.window = []
        self.window_start = now

    def write_scalars(self, scalars: dict) -> None:
        """Writes ``tag -> number`` as TensorBoard scalars at the current step."""
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="scalars")).SerializeToString()
        with self.writer.as_default(step=self.step):
            for tag, value in scalars.items():
                # tf.summary.scalar lives in the tensorboard package, which is not installed;
                # tf.summary.write with the scalars plugin tag writes the same event.
                tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)

    def finish(self) -> dict:
        """Reports the last partial window and returns the training metrics."""
        self._report()
        self.writer.flush()
        seconds = max(time.perf_counter() - self.run_start, 1e-9)
        return {**self.last, "steps": self.step,
                "examples_per_sec": self.examples / seconds if self.step > self.start else 0.0}
