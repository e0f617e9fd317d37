"""train() into a model_dir on S3 / MinIO (moto on loopback), which TF 2.21 cannot write:
training stages locally and publishes, and a retried run (a new pod) resumes from what was
published."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import exported, training
from recdistill.data import filesystems, sample
from recdistill.models import build_model
from recdistill.training import staging

pytestmark = pytest.mark.slow
_MARKERS = {filesystems.SUCCESS_MARKER}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample.write_sample_data(str(tmp_path_factory.mktemp("store")), rows=200)


def _config(data):
    cfg = config_lib.load_config(data.student_nokd_config)
    cfg.data_config.batch_size = 16
    cfg.data_config.shuffle = False
    cfg.train_config.save_checkpoints_steps = 5
    cfg.train_config.log_step_count_steps = 5
    return cfg


def _layout(root: str) -> set:
    """Relative file paths, event files by folder only (their names hold time and host)."""
    found = set()
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        for name in files:
            found.add(os.path.join(rel, "<events>" if name.startswith("events.out") else name))
    return found


def _columns(model, rows=4):
    return {name: np.array([f"v{i}" for i in range(rows)]) if dtype == tf.string
            else np.arange(rows).astype(dtype.as_numpy_dtype)
            for name, dtype in model.input_columns.items()}


def _checkpoint_logits(cfg, model_dir, columns):
    model = build_model(cfg)
    model({k: tf.constant(v) for k, v in columns.items()}, training=False)
    tf.train.Checkpoint(model=training.variables_by_path(model.variables)).restore(
        tf.train.latest_checkpoint(model_dir)).expect_partial()
    return model({k: tf.constant(v) for k, v in columns.items()}, training=False)["logits"]


def test_only_s3_and_minio_are_staged():
    assert staging.needs_staging("s3://bkt/m") and staging.needs_staging("minio://bkt/m")
    assert not staging.needs_staging("gs://bkt/m") and not staging.needs_staging("/tmp/m")


def test_s3_model_dir_gets_a_local_runs_layout_and_a_loadable_export(data, s3_bucket, tmp_path):
    cfg = _config(data)
    local = training.train(cfg, model_dir=str(tmp_path / "local"), num_steps=10)
    model_dir = filesystems.join(s3_bucket, "m")
    result = training.train(cfg, model_dir=model_dir, num_steps=10)

    assert (result.model_dir, result.export_dir) == (model_dir, f"{model_dir}/export")
    assert result.steps == local.steps == 10
    assert filesystems.is_complete(model_dir)
    remote = filesystems.localize(model_dir)
    assert _layout(remote) - {f"./{m}" for m in _MARKERS} == _layout(local.model_dir)
    assert "./ckpt-10.index" in _layout(remote)
    # The export on S3 loads and predicts what the checkpoint on S3 predicts.
    loaded = exported.load_exported(model_dir)
    columns = _columns(build_model(cfg))
    np.testing.assert_allclose(loaded.predict(columns)["logits"],
                               _checkpoint_logits(cfg, remote, columns), rtol=1e-5, atol=1e-5)
    # Nothing is left beside model_dir (staging copies) nor on local disk.
    assert filesystems.listdir(s3_bucket) == ["m"]


@pytest.mark.parametrize("scheme", ["s3", "minio"])
def test_a_retried_run_resumes_from_the_published_checkpoint(data, s3_bucket, scheme, caplog):
    cfg = _config(data)
    model_dir = f"{scheme}://{s3_bucket[len('s3://'):]}/m"
    training.train(cfg, model_dir=model_dir, num_steps=5)
    with caplog.at_level("INFO", logger="recdistill.training.keras_trainer"):
        result = training.train(cfg, model_dir=model_dir, num_steps=10)
    assert "Resumed from" in caplog.text and "at step 5" in caplog.text
    assert result.steps == 10
    names = filesystems.listdir(model_dir)
    assert {"ckpt-5.index", "ckpt-10.index", "export"} <= set(names)
    assert exported.read_metadata(filesystems.localize(result.export_dir))[
        "training_metrics"]["steps"] == 10


def test_a_failed_run_publishes_its_checkpoints_for_the_retry(data, s3_bucket):
    cfg = _config(data)
    cfg.train_config.save_checkpoints_steps = 1
    cfg.train_config.optimizer_config[0].adam_optimizer.learning_rate \
        .constant_learning_rate.learning_rate = 1e38  # diverges after the first checkpoint
    model_dir = filesystems.join(s3_bucket, "m")
    with pytest.raises(training.NonFiniteLossError):
        training.train(cfg, model_dir=model_dir, num_steps=30)
    names = filesystems.listdir(model_dir)
    assert "checkpoint" in names and "export" not in names
