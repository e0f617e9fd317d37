"""Unit test of train_fold_teacher: artifact URIs and the fold forwarded to
steps.train_fold_teacher, the fold recorded on the output."""

import pytest
from kfp.dsl import Dataset, Model

from components.train_fold_teacher.component import train_fold_teacher


def test_train_fold_teacher_passes_uris_and_fold(record, artifact, tmp_path):
    calls = record("train_fold_teacher")
    teacher = artifact(Model, "teacher")
    train_fold_teacher.python_func(
        config="t.config", student_config="s.config", key="", fold=1, num_folds=3,
        train_data=artifact(Dataset, "train"), eval_data=artifact(Dataset, "eval"),
        run_date="d", teacher=teacher, num_steps=5, validation=artifact(Dataset, "valid"),
        validation_fraction=0.2)
    [(_, args, kwargs)] = calls
    assert args == ("t.config", teacher.uri)
    assert kwargs == dict(student_config_uri="s.config", num_folds=3, fold=1, key="",
                          train_uri=str(tmp_path / "train"), eval_uri=str(tmp_path / "eval"),
                          num_steps=5, validation_uri=str(tmp_path / "valid"))
    assert teacher.metadata == {"fold": 1}


def test_a_fold_teacher_without_a_teacher_config_names_the_fix(artifact):
    with pytest.raises(ValueError, match=r"Pass teacher_config too, or set cross_fit_folds to 0"):
        train_fold_teacher.python_func(
            config="", student_config="s.config", key="", fold=0, num_folds=2,
            train_data=artifact(Dataset, "train"), eval_data=artifact(Dataset, "eval"),
            run_date="d", teacher=artifact(Model, "teacher"))
