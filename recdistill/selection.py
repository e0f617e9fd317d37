"""The kd sweep's choice: a validation split carved from the training window, and the pick.

A kd setting that helps on one dataset hurts on another (a memorising teacher, a teacher
weaker than the student), and no setting is safe to guess. So the pipeline trains the kd
student as configured, every kd variant (``recdistill.kd.variants``) and the baseline (the
student without kd) on the same training rows, scores them all on rows none of them saw, and
sends the best one on to evaluation and blessing.

Those rows are a holdout of the *training* table, never the final eval table: the eval table
must stay an unbiased estimate of the chosen model, which it is not once it chose. Two kinds
(``validation_split``): ``time``, the latest fraction of the training window (by a time
column, or row order), later rows of mostly known users like the eval table; or ``user``,
``recdistill.data.folds`` bucket ``< fraction * 100`` of a user (or session) key, so all of
one user's rows fall on one side (unseen users). Both are stable: reruns pick the same rows.

By default the baseline competes too: a kd student reaches blessing only when it beats its
own baseline on validation. A tie goes to the baseline, the simpler model (no teacher, no
soft labels to regenerate, nothing to go stale), since kd that gains nothing is not worth
its cost.

This module never imports kfp.
"""

import dataclasses
import logging
from typing import Mapping

from recdistill import config as config_lib
from recdistill import evaluation
from recdistill import exported
from recdistill import report as report_lib
from recdistill import user_key
from recdistill.data import filesystems, folds, json_files
from recdistill.kd import variants as variants_lib

logger = logging.getLogger(__name__)

#: Buckets of the holdout hash: the fraction is a whole number of percent.
VALIDATION_BUCKETS = 100
DEFAULT_FRACTION = 0.1
#: The holdout's kinds: whole users (unseen users) or the latest rows (later rows, mostly of
#: known users, like the eval table).
USER, TIME = "user", "time"
SPLITS = (USER, TIME)
#: The default: the user holdout never pushed a model below its baseline in the failure
#: scenarios (3 seeds, sample and MovieLens); the time holdout agreed better with eval on the
#: sample but pushed kd students that lost on MovieLens (README, kd sweep and selection).
DEFAULT_SPLIT = USER
METRICS = ("auc", "gauc")
BASELINE = evaluation.BASELINE
SELECTION_FILE = "selection.json"
REPORT_FILE = "selection.html"


def holdout_buckets(fraction: float) -> tuple:
    """The holdout's buckets of ``VALIDATION_BUCKETS`` for ``fraction`` (0 = none).

    Raises:
      ValueError: ``fraction`` outside [0, 0.5] or not a whole number of percent.
    """
    count = round(fraction * VALIDATION_BUCKETS)
    if not 0 <= fraction <= 0.5 or abs(count - fraction * VALIDATION_BUCKETS) > 1e-6:
        raise ValueError(f"validation_fraction must be in [0, 0.5] in steps of "
                         f"{1 / VALIDATION_BUCKETS}, got {fraction}; e.g. 0.1 (0 = no "
                         "validation split and no selection).")
    return tuple(range(count))


def split_key(cfg, key: str = "") -> str:
    """The holdout's key column: ``key``, else the config's user/session key
    (``recdistill.user_key``).

    Raises:
      ValueError: none is given and the config has none, or it is not an input field.
    """
    return user_key.resolve(cfg, key, purpose="the validation split",
                            option="validation_key / --validation-key")


def split_validation(input_uri: str, cfg, train_uri: str, validation_uri: str, *,
                     fraction: float = DEFAULT_FRACTION, key: str = "",
                     split: str = DEFAULT_SPLIT,
                     max_bad_rows_fraction: float = 0.0) -> dict:
    """Writes the training table's train part and validation part.

    Args:
      fraction: the validation share; 0: the train part is every row and the validation
        part an empty folder.
      key: the split's column: for ``user``, the key column ('' = ``split_key``'s default);
        for ``time``, the time column ('' = row order, for a table written in time order).
      split: ``user`` (whole users by a hash, ``folds.split_table``) or ``time`` (the latest
        rows, ``folds.split_latest``).

    Returns:
      ``{"train_rows", "validation_rows", "split", "key", "fraction"}``.

    Raises:
      ValueError: a bad fraction, split or key, or a part without rows (too few keys or
        times for the fraction: name another column or change the fraction).
    """
    holdout = holdout_buckets(fraction)
    if split not in SPLITS:
        raise ValueError(f"validation_split must be one of {SPLITS}, got {split!r}.")
    data_config = config_lib.without_kd(cfg).data_config
    if split == TIME:
        column = key
        if holdout:
            rows = folds.split_latest(input_uri, data_config, fraction=fraction,
                                      earlier_uri=train_uri, latest_uri=validation_uri,
                                      time_column=column,
                                      max_bad_rows_fraction=max_bad_rows_fraction)
        else:
            rows = folds.copy_table(input_uri, data_config, train_uri,
                                    max_bad_rows_fraction=max_bad_rows_fraction)
    else:
        column = split_key(cfg, key)
        kept = tuple(b for b in range(VALIDATION_BUCKETS) if b not in holdout)
        parts = {train_uri: kept, **({validation_uri: holdout} if holdout else {})}
        rows = folds.split_table(input_uri, data_config, key=column,
                                 num_buckets=VALIDATION_BUCKETS, salt=folds.HOLDOUT_SALT,
                                 parts=parts, max_bad_rows_fraction=max_bad_rows_fraction)
    if not holdout:  # an empty, complete folder: the pipeline's artifact exists on any store
        with filesystems.atomic_dir(validation_uri):
            pass
    for uri, count in rows.items():
        if not count:
            few = f"too few distinct {column} values" if column else "too few rows"
            raise ValueError(f"the validation split of {input_uri} by {split} "
                             f"({column or 'row order'}, fraction {fraction}) left {uri} "
                             f"without rows: {few}. Use a column with more values or another "
                             "fraction.")
    return {"train_rows": rows[train_uri], "validation_rows": rows.get(validation_uri, 0),
            "split": split, "key": column, "fraction": fraction}


def check_sweep(variant_count: int, *, validated: bool) -> None:
    """Refuses kd variants without a validation split (they would be chosen on nothing).

    Raises:
      ValueError: ``variant_count`` > 0 and not ``validated``.
    """
    if variant_count and not validated:
        raise ValueError(f"{variant_count} kd variants but no validation split "
                         "(validation_fraction 0): variants are chosen on held-out training "
                         "rows, never on the eval table. Set validation_fraction > 0 (e.g. "
                         "0.1), or drop the variants.")


@dataclasses.dataclass
class Selection:
    """What :func:`select` chose and wrote.

    Attributes:
      chosen: the chosen candidate's name (``kd``, ``kd_v<i>`` or ``baseline``).
      chosen_uri: its model.
      content: the selection.json content (``metric``, ``candidates``, ``best_kd``,
        ``chosen``, ``reason``, ``validation_uri``).
      scalars: ``valid_<metric>_<candidate>`` and ``chose_baseline`` for a KFP Metrics artifact.
    """

    chosen: str
    chosen_uri: str
    content: dict
    scalars: dict


def select(kd_models: Mapping[str, str], baseline_uri: str, validation_uri: str, cfg,
           out_dir: str, *, metric: str = "auc", include_baseline: bool = True,
           overrides: Mapping[str, Mapping] | None = None) -> Selection:
    """Scores every candidate on the validation table and picks the best.

    Args:
      kd_models: kd candidate name -> model, the configured student (``kd``) first.
      baseline_uri: the student trained without kd on the same rows.
      validation_uri: the validation part; '' when there is none (validation_fraction 0):
        then the configured kd student goes on unscored, as before sweeps existed.
      cfg: the student's loaded config (label, GAUC uid_field).
      out_dir: where selection.json and selection.html go (atomically).
      metric: ``auc`` or ``gauc``; higher is better.
      include_baseline: let the baseline win (default). False picks the best kd candidate
        even when it loses to the baseline.
      overrides: candidate name -> its variant's overrides, shown in the report.

    Raises:
      ValueError: an unknown metric, several kd candidates but no validation table, or a
        metric that could not be computed (GAUC without users having both labels).
    """
    if metric not in METRICS:
        raise ValueError(f"selection metric must be one of {METRICS}, got {metric!r}.")
    if variants_lib.CONFIGURED not in kd_models:
        raise ValueError(f"the kd candidates {sorted(kd_models)} lack the configured student "
                         f"{variants_lib.CONFIGURED!r}.")
    overrides = dict(overrides or {})
    if not validation_uri:
        check_sweep(len(kd_models) - 1, validated=False)
        chosen = variants_lib.CONFIGURED
        scored = {chosen: {"uri": kd_models[chosen]}}
        reason = ("no validation split (validation_fraction 0): the kd student as configured "
                  "goes to evaluation unscored")
        best_kd = chosen
    else:
        uris = dict(kd_models)
        if include_baseline:
            uris[BASELINE] = baseline_uri
        scored = evaluation.compare_models(validation_uri, cfg, uris)
        missing = [name for name, m in scored.items() if m.get(metric) is None]
        if missing:
            raise ValueError(f"{metric} of {missing} on {validation_uri} could not be computed "
                             "(GAUC needs users with both labels); select on auc.")
        best_kd = max(kd_models, key=lambda name: scored[name][metric])  # first wins a tie
        chosen, reason = best_kd, (f"{best_kd} has the best validation {metric} "
                                   f"({scored[best_kd][metric]:.4f}) of the kd candidates")
        if include_baseline:
            base = scored[BASELINE][metric]
            if base >= scored[best_kd][metric]:
                chosen = BASELINE
                reason = (f"the baseline's validation {metric} {base:.4f} is not below the "
                          f"best kd candidate's ({best_kd}: {scored[best_kd][metric]:.4f}): "
                          "no kd student goes on")
            else:
                reason += f", above the baseline's {base:.4f}"
    for name, values in scored.items():
        values["overrides"] = dict(overrides.get(name, {}))
    content = {"metric": metric, "validation_uri": validation_uri or None,
               "candidates": scored, "best_kd": best_kd, "chosen": chosen, "reason": reason}
    with filesystems.atomic_dir(out_dir, replaces=(SELECTION_FILE,)) as staging:
        json_files.write_json(filesystems.join(staging, SELECTION_FILE), content)
        with filesystems.open_output(filesystems.join(staging, REPORT_FILE)) as f:
            f.write(report_lib.render_selection_report(content).encode())
    logger.info("kd sweep: chose %s (%s)", chosen, reason)
    scalars = {f"valid_{m}_{name}": float(values[m]) for name, values in scored.items()
               for m in (*METRICS, "logloss") if values.get(m) is not None}
    scalars["chose_baseline"] = 1.0 if chosen == BASELINE else 0.0
    return Selection(chosen=chosen, chosen_uri={**kd_models, BASELINE: baseline_uri}[chosen],
                     content=content, scalars=scalars)


def read_selection(uri: str) -> dict:
    """selection.json from the folder ``uri`` that :func:`select` wrote."""
    return json_files.read_json(filesystems.join(uri, SELECTION_FILE))


def copy_export(model_uri: str, model_dir: str) -> str:
    """Copies a candidate's export (the chosen one's, the baseline's) into ``model_dir``'s
    export folder; returns it."""
    target = exported.export_dir(model_dir)
    filesystems.copy_tree(exported.resolve_export(model_uri), target)
    return target

