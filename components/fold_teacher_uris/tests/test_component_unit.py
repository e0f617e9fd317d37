"""Unit test of fold_teacher_uris: the collected teachers' URIs, [] without them."""

from kfp.dsl import Model

from components.fold_teacher_uris.component import fold_teacher_uris


def test_fold_teacher_uris_lists_the_collected_teachers(artifact, tmp_path):
    teachers = [artifact(Model, "fold0"), artifact(Model, "fold1")]
    assert fold_teacher_uris.python_func(teachers=teachers) == [str(tmp_path / "fold0"),
                                                                 str(tmp_path / "fold1")]
    assert fold_teacher_uris.python_func() == []
