"""train() under faults: bad step counts, divergence, poisoned checkpoints, a changed config
for warm start, and a training process killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import training
from recdistill.data import sample
from recdistill.models import build_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample.write_sample_data(str(tmp_path_factory.mktemp("faults")), rows=400)


def _config(data, **train):
    """The baseline student (raw train.csv), small batches, steady order."""
    cfg = config_lib.load_config(data.student_nokd_config)
    cfg.data_config.batch_size = 16
    cfg.data_config.shuffle = False
    cfg.train_config.log_step_count_steps = 5
    for name, value in train.items():
        setattr(cfg.train_config, name, value)
    return cfg


def _set_learning_rate(cfg, rate: float) -> None:
    cfg.train_config.optimizer_config[0].adam_optimizer.learning_rate \
        .constant_learning_rate.learning_rate = rate


@pytest.mark.parametrize("steps", [-5, 2.5, True])
def test_a_bad_num_steps_is_refused_before_any_work(data, tmp_path, steps):
    with pytest.raises(ValueError, match=rf"num_steps must be a whole number >= 0.*{steps!r}"):
        training.train(_config(data), model_dir=str(tmp_path / "m"), num_steps=steps)
    assert not (tmp_path / "m").exists()


def test_train_takes_a_loaded_config_only(data, tmp_path):
    with pytest.raises(TypeError, match="load_config"):
        training.train(data.student_nokd_config, model_dir=str(tmp_path / "m"))


def _checkpoint_values(path: str) -> dict:
    reader = tf.train.load_checkpoint(path)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key.startswith("model/")}


@pytest.mark.slow
def test_a_diverging_run_stops_naming_the_step_and_saves_no_nan(data, tmp_path):
    cfg = _config(data, save_checkpoints_steps=1)
    _set_learning_rate(cfg, 1e38)  # the first update overflows the weights
    model_dir = tmp_path / "model"
    with pytest.raises(training.NonFiniteLossError,
                       match=r"training diverged: .* step \d+ .*learning rate"):
        training.train(cfg, model_dir=str(model_dir), num_steps=30)
    assert not (model_dir / "export").exists()
    saved = tf.train.get_checkpoint_state(str(model_dir)).all_model_checkpoint_paths
    assert saved  # the steps before the divergence were checkpointed ...
    for path in saved:  # ... and every checkpoint is finite
        for key, value in _checkpoint_values(path).items():
            assert np.isfinite(value).all(), (path, key)


def _poison_latest_checkpoint(cfg, model_dir: str, step: int) -> None:
    """Writes ``ckpt-<step>``: the latest checkpoint with one kernel set to NaN, as a diverged
    run saved them before training checked its loss."""
    model = build_model(cfg)
    model({name: tf.constant([""]) if dtype == tf.string else tf.zeros([1], dtype)
           for name, dtype in model.input_columns.items()}, training=False)
    optimizer = training.build_optimizer(cfg.train_config)
    optimizer.build(model.trainable_variables)
    global_step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=training.variables_by_path(model.variables),
                                     optimizer=training.variables_by_path(optimizer.variables),
                                     step=global_step)
    checkpoint.restore(tf.train.latest_checkpoint(model_dir)).assert_existing_objects_matched()
    kernel = next(v for v in model.trainable_variables if "kernel" in v.path)
    kernel.assign(tf.fill(kernel.shape, float("nan")))
    global_step.assign(step)
    tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=None,
                               checkpoint_name=training.CHECKPOINT_NAME).save(
        checkpoint_number=step)


@pytest.mark.slow
def test_a_nan_checkpoint_is_never_resumed(data, tmp_path):
    cfg = _config(data)
    model_dir = str(tmp_path / "model")
    training.train(cfg, model_dir=model_dir, num_steps=10)
    _poison_latest_checkpoint(cfg, model_dir, 20)
    with pytest.raises(ValueError, match=r"ckpt-20 \(step 20\): .*NaN or inf.*Delete .*model"):
        training.train(cfg, model_dir=model_dir, num_steps=20)


def _dnn_width(cfg, width: int) -> None:
    for tower in (cfg.model_config.dssm.user_tower, cfg.model_config.dssm.item_tower):
        tower.dnn.hidden_units[-1] = width


@pytest.mark.slow
def test_warm_start_after_a_config_change_restores_what_fits(data, tmp_path, caplog):
    yesterday = training.train(_config(data), model_dir=str(tmp_path / "day1"), num_steps=20)
    changed = _config(data)
    _dnn_width(changed, 16)  # the champion's last tower layers were 32 wide
    _set_learning_rate(changed, 1e-9)
    with caplog.at_level("WARNING", logger="recdistill.training.checkpoints"):
        today = training.train(changed, model_dir=str(tmp_path / "day2"), num_steps=2,
                               warm_start=yesterday.export_dir)
    assert "shape changed" in caplog.text and "(32,) -> (16,)" in caplog.text
    before = _checkpoint_values(os.path.join(yesterday.export_dir, "warm_start", "model"))
    after = _checkpoint_values(os.path.join(today.export_dir, "warm_start", "model"))
    kernels = [key for key in before if "kernel" in key and key in after]
    kept = [key for key in kernels if before[key].shape == after[key].shape]
    resized = [key for key in kernels if before[key].shape != after[key].shape]
    assert kept and resized
    for key in kept:  # yesterday's weights, moved by 2 steps of a 1e-9 learning rate only
        np.testing.assert_allclose(after[key], before[key], atol=1e-5, err_msg=key)


_KILLED_RUN = """
import sys
from recdistill import config as config_lib, training
cfg = config_lib.load_config(sys.argv[1])
cfg.data_config.batch_size = 16
cfg.train_config.save_checkpoints_steps = 10
cfg.train_config.log_step_count_steps = 10
training.train(cfg, model_dir=sys.argv[2], num_steps=100000)
"""


@pytest.mark.slow
def test_a_training_process_killed_with_sigkill_resumes(data, tmp_path, caplog):
    model_dir = str(tmp_path / "model")
    process = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, data.student_nokd_config,
                                model_dir], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            latest = tf.train.latest_checkpoint(model_dir)
            if latest and int(latest.rsplit("-", 1)[1]) >= 30:
                break
            time.sleep(0.2)
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert tf.train.latest_checkpoint(model_dir), "no checkpoint within 240 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    reached = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])

    cfg = _config(data, save_checkpoints_steps=10)
    with caplog.at_level("INFO", logger="recdistill.training.keras_trainer"):
        result = training.train(cfg, model_dir=model_dir, num_steps=reached + 10)
    assert f"Resumed from {model_dir}/ckpt-{reached} at step {reached}" in caplog.text
    assert result.steps == reached + 10
    assert result.metrics["examples_per_sec"] > 0  # it ran the 10 steps, not 0
