"""Cross-fitting (honest soft labels): the key that splits the folds, and a checked teacher set.

A teacher trained on the rows it then scores repeats their clicks (issue 11: AUC 0.99999 on
them, 0.94 on eval). Cross-fitting trains K fold teachers, teacher k on every row except fold
k (``recdistill.data.datasets.ExcludedFold``), and the soft-label job scores the rows of fold k
with teacher k only (``recdistill.soft_labels.fold_teachers``): no row is labelled by a
teacher that read it. A row's fold is a hash of a key column (``recdistill.data.folds``), a
user or session id, so all rows of one user sit in one fold.

Each fold teacher's ``recdistill.json`` records ``cross_fit`` (key, number of folds, fold
left out); :func:`order_fold_teachers` checks a set of teachers against it, so a job never
mixes folds of different splits or misses one.

Imports ``recdistill.user_key`` (the one home of the user/session key); never ``kfp``,
TensorFlow or Beam.
"""

from typing import Mapping, Sequence

from recdistill import user_key

#: The ``recdistill.json`` entry of a fold teacher (``ExcludedFold.describe``).
METADATA_KEY = "cross_fit"


def resolve_key(cfg, key: str = "", *, source: str = "the config") -> str:
    """The column whose hash picks each row's fold: ``key``, else the config's user/session
    key (``recdistill.user_key``).

    Raises:
      ValueError: ``key`` is not an input field, or none is given and the config has none.
    """
    return user_key.resolve(cfg, key, purpose="cross-fitting",
                            option="cross_fit_key / --cross-fit-key", source=source)


def fold_numbers(num_folds: int) -> list:
    """``[0, ..., K-1]`` for K >= 2, ``[]`` for 0 (cross-fitting off).

    Raises:
      ValueError: K is 1 or negative.
    """
    if num_folds == 0:
        return []
    if num_folds < 2:
        raise ValueError(f"cross_fit_folds must be 0 (off) or >= 2, got {num_folds}. A single "
                         "fold would leave the teacher no rows; use 2 to 5.")
    return list(range(num_folds))


def order_fold_teachers(uris: Sequence[str], metadata: Sequence[Mapping],
                        key: str = "") -> tuple:
    """Checks that ``uris`` are the K fold teachers of one split and orders them by fold.

    Args:
      uris: the teachers, in any order.
      metadata: each teacher's ``recdistill.json`` content, aligned with ``uris``.
      key: the key column the caller expects ('' = take the teachers').

    Returns:
      ``(key, ordered_uris)``: ``ordered_uris[k]`` left fold k out, so it scores fold k.

    Raises:
      ValueError: a teacher is not a fold teacher, the teachers disagree on the key or the
        number of folds, a fold is missing or repeated, or ``key`` differs from theirs.
    """
    folds = {}
    splits = set()
    for uri, meta in zip(uris, metadata):
        fact = meta.get(METADATA_KEY)
        if not fact:
            raise ValueError(
                f"{uri}: not a cross-fitting fold teacher (its recdistill.json has no "
                f"{METADATA_KEY!r}). Train each fold teacher with `recdistill train "
                "--cross-fit-fold k --cross-fit-folds K`, or pass a single --teacher.")
        splits.add((fact["key"], fact["num_folds"]))
        if fact["excluded_fold"] in folds:
            raise ValueError(f"{uri} and {folds[fact['excluded_fold']]} both left out fold "
                             f"{fact['excluded_fold']}. Pass one teacher per fold.")
        folds[fact["excluded_fold"]] = uri
    if len(splits) != 1:
        raise ValueError(f"the fold teachers were trained on different splits (key, folds): "
                         f"{sorted(splits)}. Retrain them with one key and one K.")
    (split_key, num_folds), = splits
    missing = sorted(set(range(num_folds)) - set(folds))
    if missing or len(uris) != num_folds:
        raise ValueError(f"{num_folds} folds by {split_key!r} need {num_folds} fold teachers; "
                         f"got {len(uris)}, fold(s) {missing} missing. Pass one --teacher per "
                         "fold.")
    if key and key != split_key:
        raise ValueError(f"the fold teachers split rows by {split_key!r}, not {key!r}. Pass "
                         f"--cross-fit-key {split_key} (or retrain them by {key!r}).")
    return split_key, [folds[k] for k in range(num_folds)]
