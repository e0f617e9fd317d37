"""The whole pipeline under kfp.local with its tables, configs, teacher and serving folder on an
S3 server (moto on loopback), as on a Kubeflow whose store is MinIO or S3: kfp.local keeps its
pipeline root on local disk (the closest it allows); every step reads and writes the store."""

import os

import pytest

from pipelines import local_run
from recdistill import config as config_lib
from recdistill import exported, push, training
from recdistill.data import filesystems, sample

pytestmark = pytest.mark.slow


def test_pipeline_reuses_an_s3_teacher_reads_s3_tables_and_pushes_to_s3(s3_bucket, tmp_path):
    data = sample.write_sample_data(str(tmp_path / "sample"), rows=4000)
    teacher = training.train(config_lib.load_config(data.teacher_config),
                             model_dir=str(tmp_path / "teacher"), num_steps=30)
    remote = {name: filesystems.join(s3_bucket, "in", os.path.basename(getattr(data, name)))
              for name in ("train_path", "eval_path", "student_config")}
    for name, uri in remote.items():
        filesystems.copy_tree(getattr(data, name), uri)
    remote_teacher = filesystems.join(s3_bucket, "models", "teacher")
    filesystems.copy_tree(teacher.export_dir, remote_teacher)
    serving = filesystems.join(s3_bucket, "serving")

    run = local_run.run_local(str(tmp_path / "work"), student_config=remote["student_config"],
                              teacher_uri=remote_teacher, train_data=remote["train_path"],
                              eval_data=remote["eval_path"], thresholds='{"min_auc": 0.5}',
                              num_steps=30, run_date="2026-11-30", serving_dir=serving)

    assert run.metrics["blessed"] is True
    models = run.metrics["models"]
    assert models["student"]["auc"] > 0.5 and models["teacher"]["auc"] > 0.5
    assert push.list_versions(serving) == [1]
    pushed = exported.load_exported(filesystems.join(serving, "1"))
    assert "logits" in pushed.outputs and "position" not in pushed.inputs
    assert f"serving folder {serving}: 1" in local_run.format_summary(run)
    # The reused teacher was copied, not retrained: its export is the one on the store.
    copied = run.artifacts["prepare-teacher/teacher"]
    assert exported.model_digest(copied) == exported.model_digest(remote_teacher)
