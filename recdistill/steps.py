"""The pipeline's steps as plain functions of URIs and values.

Each function is one step of the distillation pipeline (teacher, soft labels, student,
evaluate, push). Both the ``recdistill`` command and the KFP components call these and
nothing else, so a step behaves the same on a laptop and in Kubeflow, and is tested without
KFP. The work itself lives in the modules named in each docstring; this module only loads
configs, fills defaults and passes URIs along.

This module must not import ``kfp``.
"""

import logging
from typing import Mapping, Sequence, Union

from recdistill import config as config_lib
from recdistill import cross_fit, exported
from recdistill.data import filesystems
from recdistill.kd import variants

logger = logging.getLogger(__name__)


def prepare_teacher(config_uri: str, model_dir: str, *, teacher_uri: str = "",
                    train_uri: str = "", eval_uri: str = "", num_steps: int = 0,
                    run_date: str = "", workers: int = 1, validation_uri: str = ""):
    """Provides the teacher in ``model_dir``: copies ``teacher_uri`` if given, else trains one.

    Reusing an existing teacher (the production fine-ranking model) is the common case; the
    copy keeps each pipeline run's lineage self-contained. The copy is loaded once, so a
    teacher without the serving signature fails here, before the Beam job starts. A teacher
    trained here stops early on ``validation_uri`` when given (see :func:`train_model`).

    ``teacher_uri`` may name a day, ``{date}`` or ``{previous_date}`` (filled from
    ``run_date``), and may be a versioned push folder (its champion is taken): yesterday's
    teacher scoring today's rows gives honest soft labels without cross-fitting.

    Returns:
      The export folder of the teacher.
    """
    if teacher_uri:
        source = _reused_teacher(teacher_uri, run_date)
        exported.load_exported(source)
        target = exported.export_dir(model_dir)
        filesystems.copy_tree(source, target)
        logger.info("teacher: reusing %s (copied to %s)", source, target)
        return target
    return train_model(config_uri, model_dir, train_uri=train_uri, eval_uri=eval_uri,
                       num_steps=num_steps, workers=workers,
                       validation_uri=validation_uri).export_dir


def _reused_teacher(teacher_uri: str, run_date: str) -> str:
    """The export ``teacher_uri`` names on ``run_date``: an export, a model_dir or the champion
    of a push folder.

    Raises:
      FileNotFoundError: none of these, naming the URI after the dates were filled in.
    """
    from recdistill import push
    from recdistill import run_date as run_date_lib

    uri = run_date_lib.partition_uri(teacher_uri, run_date) if run_date else teacher_uri
    try:
        return exported.resolve_export(uri)
    except FileNotFoundError as error:
        champion = push.champion_from(uri) if filesystems.exists(uri) else None
        if champion:
            logger.info("teacher: %s is a push folder; reusing its champion %s", uri, champion)
            return exported.resolve_export(champion)
        raise FileNotFoundError(
            f"teacher_uri {teacher_uri!r} (run date {run_date or '-'}): {uri} holds no export, "
            "model_dir or pushed version. Check that the teacher of that day was trained and "
            "pushed, or pass an existing export.") from error


def train_model(config_uri: str, model_dir: str, *, train_uri: str = "", eval_uri: str = "",
                warm_start: str = "", without_kd: bool = False, num_steps: int = 0,
                mixed_precision: bool = False, report_copy: str = "", workers: int = 1,
                exclude_fold: Sequence = (), kd_overrides: Mapping | None = None,
                variant_name: str = "variant", validation_uri: str = ""):
    """Trains the model the config describes (see ``recdistill.training.train``).

    Args:
      without_kd: drop the config's kd blocks and soft-label fields: the baseline student that
        every run trains beside the distilled one, to report the kd gain.
      kd_overrides: a kd sweep variant (``recdistill.kd.variants``) applied to the kd blocks.
      variant_name: the variant's name, for error messages.
      warm_start: a previous export to initialise from ('' or a missing champion: from scratch).
      report_copy: also write the training report (loss curves) here (a KFP ``HTML`` file).
      workers: > 1 trains on that many pods, a Training Operator TFJob submitted from this
        pod (``recdistill.training.tfjob``); 1 trains here. A GBDT trains here either way.
      exclude_fold: ``(key, K, k)``: train a cross-fitting fold teacher, without the rows of
        fold k of K by the key column ('' = the config's, ``cross_fit.resolve_key``).
      validation_uri: the kd sweep's validation part ('' = none): training evaluates on it,
        not on ``eval_uri``, for early stopping and the recorded eval metrics, so the eval
        table that blesses the chosen model never picked a checkpoint of it.
    """
    from recdistill import training

    if validation_uri:
        logger.info("%s: evaluating on the validation split %s, not the eval table %s",
                    config_uri, validation_uri, eval_uri or "-")
        eval_uri = validation_uri
    cfg = config_lib.load_config(config_uri)
    if kd_overrides:
        cfg = variants.apply_variant(cfg, kd_overrides, variant_name)
    if without_kd:
        cfg = config_lib.without_kd(cfg)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers (train_workers) must be a whole number >= 1, got "
                         f"{workers!r}. Pass 1 to train in this pod.")
    distributed = workers > 1 and cfg.model_config.model_class != "GBDT"
    if workers > 1 and not distributed:
        logger.info("%s: a GBDT trains in one process; training here, not on %d workers",
                    config_uri, workers)
    if distributed:
        from recdistill.training import tfjob

        result = tfjob.train_with_tfjob(
            cfg, config_uri, model_dir, workers, train_uri=train_uri, eval_uri=eval_uri,
            warm_start=warm_start, without_kd=without_kd, num_steps=num_steps,
            mixed_precision=mixed_precision, exclude_fold=exclude_fold,
            kd_overrides=kd_overrides or {})
    else:
        excluded = None
        if exclude_fold:
            from recdistill.data import datasets

            key, num_folds, fold = exclude_fold
            excluded = datasets.ExcludedFold(
                cross_fit.resolve_key(cfg, key, source=config_uri), num_folds, fold)
        result = training.train(cfg, train_uri=train_uri or None, eval_uri=eval_uri or None,
                                model_dir=model_dir, warm_start=warm_start or None,
                                num_steps=num_steps or None, mixed_precision=mixed_precision,
                                exclude_fold=excluded)
    if report_copy:
        filesystems.copy_tree(filesystems.join(model_dir, training.TRAINING_REPORT), report_copy)
    return result


def generate_soft_labels(teacher_uri: Union[str, Sequence[str]], config_uri: str,
                         input_uri: str, output_uri: str, *, runner: str = "DirectRunner",
                         beam_args: Sequence[str] = (), max_bad_rows_fraction: float = 0.0,
                         cross_fit_key: str = "") -> dict:
    """Runs the Beam soft-label job (``recdistill.soft_labels.job``); returns its stats.

    ``teacher_uri`` is one teacher, or the K fold teachers of a cross-fitting split (each
    row scored by the one that never read it; ``cross_fit_key`` checks their key).
    """
    from recdistill.soft_labels import job

    uris = [teacher_uri] if isinstance(teacher_uri, str) else list(teacher_uri)
    exports = [exported.resolve_export(uri) for uri in uris]
    return job.generate_soft_labels(exports[0] if len(exports) == 1 else exports, input_uri,
                                    output_uri, config_lib.load_config(config_uri),
                                    runner=runner, beam_args=list(beam_args),
                                    max_bad_rows_fraction=max_bad_rows_fraction,
                                    cross_fit_key=cross_fit_key)


def train_fold_teacher(config_uri: str, model_dir: str, *, student_config_uri: str,
                       num_folds: int, fold: int, key: str = "", train_uri: str = "",
                       eval_uri: str = "", num_steps: int = 0, validation_uri: str = ""):
    """Trains cross-fitting fold teacher ``fold`` of ``num_folds``: the teacher config on every
    training row but that fold's, split by ``key`` ('' = the student config's key,
    ``recdistill.cross_fit.resolve_key``, so teachers and soft-label job agree); it stops
    early on ``validation_uri`` when given (see :func:`train_model`).

    Returns:
      The ``TrainResult``; its export's ``recdistill.json`` records ``cross_fit``.

    Raises:
      ValueError: no teacher config (a reused ``teacher_uri`` cannot be retrained per fold).
    """
    if not config_uri:
        raise ValueError("cross-fitting trains one teacher per fold from the teacher's config, "
                         "and none was given (teacher_uri alone is an export, not a recipe). "
                         "Pass teacher_config too, or set cross_fit_folds to 0.")
    key = cross_fit.resolve_key(config_lib.load_config(student_config_uri), key,
                                source=student_config_uri)
    return train_model(config_uri, model_dir, train_uri=train_uri, eval_uri=eval_uri,
                       num_steps=num_steps, exclude_fold=(key, num_folds, fold),
                       validation_uri=validation_uri)


def cross_fit_plan(config_uri: str, num_folds: int, key: str = "") -> tuple:
    """The folds to train (``[0..K-1]``, ``[]`` when K is 0) and the key column splitting them
    (``key``, else the student config's, ``recdistill.cross_fit.resolve_key``; '' when off).

    Raises:
      ValueError: K is 1 or negative, or no usable key (the message says which to pass).
    """
    numbers = cross_fit.fold_numbers(num_folds)
    if not numbers:
        return [], key
    return numbers, cross_fit.resolve_key(config_lib.load_config(config_uri), key,
                                          source=config_uri)


def prepare_sweep(config_uri: str, input_uri: str, train_uri: str, validation_uri: str, *,
                  variants_json="", fraction: float = 0.1, key: str = "",
                  split: str = "user", max_bad_rows_fraction: float = 0.0) -> tuple:
    """Checks the kd variants, then carves the validation split (``recdistill.selection``).

    The variants are applied to the config before the table is read, so a bad one fails in
    seconds, naming the variant and field.

    Returns:
      (every model the sweep trains: the kd candidates, ``recdistill.kd.variants.candidates``,
      then the baseline, ``{"name": "baseline", "overrides": {}, "without_kd": True}``, which
      trains on the rows without soft labels; the split's row counts).
    """
    from recdistill import selection

    cfg = config_lib.load_config(config_uri)
    candidates = variants.candidates(cfg, variants.parse_variants(variants_json))
    selection.check_sweep(len(candidates) - 1, validated=bool(fraction))
    split = selection.split_validation(input_uri, cfg, train_uri, validation_uri,
                                       fraction=fraction, key=key, split=split,
                                       max_bad_rows_fraction=max_bad_rows_fraction)
    baseline = {"name": selection.BASELINE, "overrides": {}, "without_kd": True}
    return [*candidates, baseline], split


def select_candidate(config_uri: str, kd_models: Mapping[str, str], baseline_uri: str,
                     validation_uri: str, out_dir: str, model_dir: str, *,
                     metric: str = "auc", overrides: Mapping | None = None,
                     report_copy: str = "", baseline_copy: str = ""):
    """Picks the kd sweep's candidate on the validation split (``recdistill.selection``) and
    copies its export into ``model_dir``; ``validation_uri`` '' picks the configured student.
    ``baseline_copy``: also copy the baseline's export into that model_dir (the pipeline's
    evaluation reads the baseline from this step, since it trains inside the sweep's loop).

    Returns:
      The ``recdistill.selection.Selection``.
    """
    from recdistill import selection

    chosen = selection.select(kd_models, baseline_uri, validation_uri,
                              config_lib.load_config(config_uri), out_dir, metric=metric,
                              overrides=overrides)
    selection.copy_export(chosen.chosen_uri, model_dir)
    if baseline_copy:
        selection.copy_export(baseline_uri, baseline_copy)
    if report_copy:
        filesystems.copy_tree(filesystems.join(out_dir, selection.REPORT_FILE), report_copy)
    return chosen


def soft_label_metrics(stats: dict) -> dict:
    """The soft-label job's stats as flat scalars for a KFP Metrics artifact: rows, and per
    soft-label column the teacher's AUC, eval AUC and their gap, and the leak guard's
    ``soft_labels_repeat_clicks`` (``recdistill.soft_labels.stats.metric_scalars``)."""
    from recdistill.soft_labels import stats as stats_lib

    return stats_lib.metric_scalars(stats)


def evaluate(model_uri: str, data_uri: str, config_uri: str, out_dir: str, *,
             teacher_uri: str = "", champion_uri: str = "", baseline_uri: str = "",
             thresholds: str = "", report_copy: str = "", selection_uri: str = ""):
    """Scores the eval table and decides the blessing (``recdistill.evaluation``).

    Args:
      thresholds: a thresholds file URI or inline YAML/JSON ('' = none configured: not blessed).
      selection_uri: the kd sweep's selection folder (selection.json), shown in the report.
      report_copy: also write report.html here (the KFP ``HTML`` artifact's file).
    """
    from recdistill import evaluation, selection

    result = evaluation.evaluate(model_uri, data_uri, config_lib.load_config(config_uri),
                                 teacher_uri=teacher_uri or None,
                                 champion_uri=champion_uri or None,
                                 baseline_uri=baseline_uri or None,
                                 thresholds=thresholds or None, out_dir=out_dir,
                                 selection=(selection.read_selection(selection_uri)
                                            if selection_uri else None))
    if report_copy:
        filesystems.copy_tree(result.report_uri, report_copy)
    return result


def current_champion(destination: str) -> str:
    """The export of the last pushed model under ``destination``, or '' before the first push."""
    from recdistill import push

    return push.champion_from(destination) or ""


def push_model(model_uri: str, destination: str, *, evaluation_dir: str = "", keep: int = 0,
               force: bool = False):
    """Pushes a blessed model to ``<destination>/<version>/`` (``recdistill.push``)."""
    from recdistill import push

    return push.push_model(model_uri, destination, evaluation_dir=evaluation_dir or None,
                           keep=keep or None, force=force)
