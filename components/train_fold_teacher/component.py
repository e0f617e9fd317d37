"""Component: one cross-fitting fold teacher, trained on every row but its fold's."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_fold_teacher(config: str, student_config: str, key: str, fold: int, num_folds: int,
                       train_data: Input[Dataset], eval_data: Input[Dataset], run_date: str,
                       teacher: Output[Model], num_steps: int = 0,
                       validation: Input[Dataset] = None, validation_fraction: float = 0.0):
    """Trains the teacher config without the rows of one fold; its soft labels are honest.

    The training table is read with a row filter (fold(key) != ``fold``), never copied.

    Args:
      config: URI of the teacher's EasyRec config.
      student_config: URI of the student's config (gives the default key).
      key: the fold key column; '' = the student config's gauc uid_field, else its kd
        session_name.
      fold: the fold left out (this teacher scores its rows).
      num_folds: K, the number of folds.
      train_data: the training table (raw, without soft labels).
      eval_data: the evaluation table.
      run_date: the run's date; part of the cache key.
      teacher: the fold teacher's export (``recdistill.json`` records ``cross_fit``).
      num_steps: training steps (0 = the config's train_config.num_steps).
      validation: the kd sweep's validation rows: with ``validation_fraction`` > 0 the fold
        teacher evaluates (early stopping) on them instead of ``eval_data``.
      validation_fraction: the split's fraction; 0: ``eval_data`` is used.
    """
    from recdistill import steps

    steps.train_fold_teacher(config, teacher.uri, student_config_uri=student_config,
                             num_folds=num_folds, fold=fold, key=key, train_uri=train_data.uri,
                             eval_uri=eval_data.uri, num_steps=num_steps,
                             validation_uri=(validation.uri if validation is not None
                                             and validation_fraction > 0 else ""))
    teacher.metadata["fold"] = fold
