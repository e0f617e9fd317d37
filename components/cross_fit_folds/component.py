"""Component: the folds of cross-fitted soft labels, checked before any teacher trains."""

from typing import List

from kfp import dsl

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def cross_fit_folds(student_config: str, num_folds: int, key: str, run_date: str) -> List[int]:
    """Lists the folds to train a teacher for, after checking the key column.

    Args:
      student_config: URI of the student's EasyRec config (gives the default key).
      num_folds: K, the number of fold teachers (>= 2).
      key: the column a row's fold is a hash of; '' = the config's gauc uid_field, else its
        kd session_name.
      run_date: the run's date; part of the cache key.

    Returns:
      ``[0, ..., K-1]``, one fold teacher each (``dsl.ParallelFor`` items).
    """
    from recdistill import steps

    folds, _ = steps.cross_fit_plan(student_config, num_folds, key)
    return folds
