"""Component: check the kd variants and carve the validation split from the training table."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def prepare_sweep(train_data: Input[Dataset], config: str, kd_variants: list,
                  validation_fraction: float, validation_key: str, run_date: str,
                  champion: str, train: Output[Dataset], validation: Output[Dataset],
                  max_bad_rows_fraction: float = 0.0, validation_split: str = "user") -> list:
    """Checks the kd variants against the student config and splits off the validation rows.

    The holdout's rows (``recdistill.selection``: the latest rows, or whole users) go to
    ``validation``, the rest to ``train``; every model the run trains (teacher, kd students,
    baseline) trains on ``train`` only and stops early on ``validation``, and
    ``select_candidate`` chooses on it, so the eval table never chooses. The variants are
    checked first: a bad one fails here, before any training.

    Args:
      train_data: the training table.
      config: URI of the student's EasyRec config (kd blocks, GAUC uid_field).
      kd_variants: overrides of the kd blocks, e.g. [{"loss_weight": 0.5}, {"temperature":
        2, "loss_type": "KL_DIVERGENCE_LOSS"}]; [] trains the configured student only.
      validation_fraction: share of the keys held out, in steps of 0.01 (0: no split, every
        row trains and the configured kd student goes on unchosen).
      validation_key: for ``validation_split`` user, the key column ('' = the GAUC
        uid_field, else a kd session column); for time, the time column ('' = row order).
      run_date: the run's date; part of the cache key, and passed on in the items.
      champion: the champion's export ('' before the first push), passed on in the items.
      train: the training rows left after the holdout.
      validation: the held-out rows (none when validation_fraction is 0).
      max_bad_rows_fraction: malformed rows tolerated while reading the table.
      validation_split: ``user`` (whole users, by a hash of the key) or ``time`` (the latest
        rows of the training window): ``recdistill.selection``.

    Returns:
      the items of the pipeline's ParallelFor: the configured student first, then each
      variant, then the baseline (trained without kd beside them), each {"candidate": JSON
      text of {"name", "overrides", "without_kd"?}, "warm_start": champion, "run_date"}.
      The champion and date ride in the items because kfp.local 2.17.3 replaces every task
      output that enters a ParallelFor by the loop item (create_parameter_loop_iteration_task_spec).
    """
    import json

    from recdistill import steps

    candidates, split = steps.prepare_sweep(
        config, train_data.uri, train.uri, validation.uri, variants_json=kd_variants,
        fraction=validation_fraction, key=validation_key, split=validation_split,
        max_bad_rows_fraction=max_bad_rows_fraction)
    train.metadata.update(rows=split["train_rows"], key=split["key"])
    validation.metadata.update(rows=split["validation_rows"], key=split["key"],
                               fraction=split["fraction"], split=split["split"])
    return [{"candidate": json.dumps(candidate), "warm_start": champion, "run_date": run_date}
            for candidate in candidates]
