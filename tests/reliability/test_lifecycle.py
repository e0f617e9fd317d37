"""The model lifecycle with real parts: a reused teacher feeds the soft-label job.

The champion pointer (push v1 and v2, point CHAMPION at 1) is tested in tests/test_push.py.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from recdistill import cli, exported, steps  # noqa: E402
from recdistill.config import load_config  # noqa: E402
from recdistill.data import tables  # noqa: E402

import toy_models  # noqa: E402

WX, WZ, B = 0.7, -1.1, 0.2


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return toy_models.save_linear(tmp_path_factory.mktemp("production") / "teacher", WX, WZ, B)


def test_a_reused_teacher_is_copied_not_trained(teacher, tmp_path):
    never_read = str(tmp_path / "missing_teacher.config")  # training would fail on it
    model_dir = str(tmp_path / "run" / "teacher")
    export = steps.prepare_teacher(never_read, model_dir, teacher_uri=teacher)
    assert export == exported.export_dir(model_dir)
    assert exported.model_digest(export) == exported.model_digest(teacher)


def test_a_reused_teacher_without_the_serving_signature_is_refused_before_copying(tmp_path):
    wrong = toy_models.save_linear(tmp_path / "wrong", 1.0, signature="serve_raw")
    model_dir = tmp_path / "run" / "teacher"
    with pytest.raises(ValueError, match="no 'serving_default'"):
        steps.prepare_teacher("unused.config", str(model_dir), teacher_uri=wrong)
    assert not model_dir.exists()


@pytest.mark.slow  # runs the Beam job
def test_a_reused_teacher_labels_the_training_rows(teacher, tmp_path, capsys):
    table = toy_models.make_table(users=3, rows_per_user=8)
    train = toy_models.write_csv(tmp_path / "train" / "part-00000.csv", table)
    student_config = tmp_path / "student.config"
    student_config.write_text(toy_models.config_text(teacher_pred_name="logits"))
    model_dir = str(tmp_path / "run" / "teacher")
    steps.prepare_teacher("unused.config", model_dir, teacher_uri=teacher)

    soft = tmp_path / "soft"
    assert cli.main(["soft-labels", "--teacher", model_dir, "--input", train, "--output",
                     str(soft), "--config", str(student_config), "--",
                     "--direct_num_workers=1"]) == 0
    labelled = tables.read_table(str(soft), load_config(str(student_config)).data_config)
    assert labelled.num_rows == len(table["clk"])
    x = np.asarray(labelled.column("x"), np.float32)
    z = np.asarray(labelled.column("z"), np.float32)
    expected = np.float32(WX) * x + np.float32(WZ) * z + np.float32(B)
    np.testing.assert_allclose(np.asarray(labelled.column("kd_soft")), expected, rtol=1e-5,
                               atol=1e-6)
