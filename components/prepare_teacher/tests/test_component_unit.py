"""Unit test of prepare_teacher: artifact URIs forwarded to steps.prepare_teacher."""

from kfp.dsl import Dataset, Model

from components.prepare_teacher.component import prepare_teacher


def test_prepare_teacher_passes_uris_and_records_the_source(record, artifact, tmp_path):
    calls = record("prepare_teacher")
    teacher = artifact(Model, "teacher")
    prepare_teacher.python_func(
        config="gs://b/teacher.config", teacher_uri="", run_date="2026-03-04",
        train_data=artifact(Dataset, "train"), eval_data=artifact(Dataset, "eval"),
        teacher=teacher, num_steps=7, workers=3)
    [(_, args, kwargs)] = calls
    assert args == ("gs://b/teacher.config", teacher.uri)
    assert kwargs == dict(teacher_uri="", train_uri=str(tmp_path / "train"),
                          eval_uri=str(tmp_path / "eval"), num_steps=7, run_date="2026-03-04",
                          workers=3, validation_uri="")
    assert teacher.metadata == {"source": "trained"}


def test_prepare_teacher_stops_on_the_validation_split_when_there_is_one(record, artifact,
                                                                          tmp_path):
    calls = record("prepare_teacher")
    for fraction, expected in ((0.1, str(tmp_path / "valid")), (0.0, "")):
        prepare_teacher.python_func(
            config="t.config", teacher_uri="", run_date="d",
            train_data=artifact(Dataset, "train"), eval_data=artifact(Dataset, "eval"),
            teacher=artifact(Model, "teacher"), validation=artifact(Dataset, "valid"),
            validation_fraction=fraction)
        assert calls[-1][2]["validation_uri"] == expected
