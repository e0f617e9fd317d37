"""Statistics of a soft-label run: what ``stats.json`` beside the soft-labelled shards says.

The job summarises every written chunk of rows into a :class:`SoftLabelSummary` on the worker
that wrote it, merges the summaries in one place and writes the result as ``stats.json``. The
summary is small and of bounded size whatever the data size: counts, sums, minima and maxima
are exact; quantiles and the teacher's AUC come from a uniform sample of at most
``sample_size`` rows (a bottom-k sample: every row draws a random key and the rows with the
smallest keys are kept, which stays uniform under merging). Below ``sample_size`` rows they are
exact.

This module owns the statistics only; it reads and writes no data files and must not import
``kfp`` or TensorFlow.
"""

import dataclasses
import logging
import math
from typing import Mapping, Optional

import numpy as np

logger = logging.getLogger(__name__)

STATS_FILE = "stats.json"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
DEFAULT_SAMPLE_SIZE = 100_000
MAX_REJECTED_EXAMPLES = 5
"""How many rejected rows (file, row, reason) stats.json and error messages show."""
LEAK_AUC_GAP = 0.05
"""How far the teacher's AUC on the rows it scores may exceed its AUC on its eval data before
the job warns that the soft labels repeat the clicks. A teacher trained on the very rows it
then scores (or for too long) reaches AUC ~1 on them while its eval AUC stays lower; its soft
labels then carry the hard labels back to the student instead of the teacher's knowledge,
and kd stops helping (issue 11: train 0.99999 vs eval 0.94, kd student below its baseline)."""
LEAK_WARNING = "soft labels repeat the clicks"


@dataclasses.dataclass
class SoftLabelSummary:
    """A mergeable summary of soft-labelled rows.

    Attributes:
      rows_read: rows read from the input (good and rejected).
      rows_written: rows written with soft labels.
      rows_rejected: rows sent to the dead-letter output.
      count, total, minimum, maximum: per soft-label column, over every written row.
      sample_keys: the random keys of the sampled rows (the smallest ones seen).
      sample: column name -> sampled values (soft-label and hard-label columns), aligned
        with ``sample_keys``.
      rejected_examples: up to MAX_REJECTED_EXAMPLES ``"file: row N: reason"`` lines.
      shards_written: output shards written.
      rows_by_worker: rows written per worker process (``host:pid``): how evenly the
        runner spread the work.
    """

    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    count: dict = dataclasses.field(default_factory=dict)
    total: dict = dataclasses.field(default_factory=dict)
    minimum: dict = dataclasses.field(default_factory=dict)
    maximum: dict = dataclasses.field(default_factory=dict)
    sample_keys: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    sample: dict = dataclasses.field(default_factory=dict)
    rejected_examples: list = dataclasses.field(default_factory=list)
    shards_written: int = 0
    rows_by_worker: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of_chunk(cls, soft_labels: Mapping[str, np.ndarray], hard_labels: Mapping[str, np.ndarray],
                 *, rows_read: int, rejected: list, seed, sample_size: int = DEFAULT_SAMPLE_SIZE,
                 shards_written: int = 1, worker: str = "") -> "SoftLabelSummary":
        """Summarises one written chunk.

        Args:
          soft_labels: soft-label column -> values of the written rows.
          hard_labels: hard-label column -> values of the same rows (for the teacher's AUC).
          rows_read: rows of the chunk read from the input, rejected ones included.
          rejected: ``"file: row N: reason"`` for each rejected row of the chunk.
          seed: seeds the sample keys (e.g. (shard index, chunk index)), so a rerun on the
            same data gives the same stats.
          sample_size: the most rows kept for quantiles and AUC.
          shards_written: output shards this chunk was written to.
          worker: the process that wrote the chunk ('' to leave rows_by_worker out).
        """
        columns = {**soft_labels, **hard_labels}
        rows = len(next(iter(columns.values()))) if columns else 0
        keys = np.random.default_rng(seed).random(rows)
        keep = _smallest(keys, sample_size)
        summary = cls(rows_read=rows_read, rows_written=rows, rows_rejected=len(rejected),
                      sample_keys=keys[keep],
                      sample={name: np.asarray(values)[keep] for name, values in columns.items()},
                      rejected_examples=list(rejected[:MAX_REJECTED_EXAMPLES]),
                      shards_written=shards_written,
                      rows_by_worker={worker: rows} if worker else {})
        for name, values in soft_labels.items():
            values = np.asarray(values, dtype=np.float64)
            summary.count[name] = len(values)
            summary.total[name] = float(values.sum())
            summary.minimum[name] = float(values.min()) if len(values) else math.inf
            summary.maximum[name] = float(values.max()) if len(values) else -math.inf
        return summary

    def merge(self, other: "SoftLabelSummary", sample_size: int = DEFAULT_SAMPLE_SIZE
              ) -> "SoftLabelSummary":
        """The summary of both: ``self`` and ``other`` stay unchanged."""
        keys = np.concatenate([self.sample_keys, other.sample_keys])
        keep = _smallest(keys, sample_size)
        names = list(dict.fromkeys([*self.sample, *other.sample]))
        merged = SoftLabelSummary(
            rows_read=self.rows_read + other.rows_read,
            rows_written=self.rows_written + other.rows_written,
            rows_rejected=self.rows_rejected + other.rows_rejected,
            sample_keys=keys[keep],
            sample={name: np.concatenate([self._sampled(name), other._sampled(name)])[keep]
                    for name in names},
            rejected_examples=(self.rejected_examples
                               + other.rejected_examples)[:MAX_REJECTED_EXAMPLES],
            shards_written=self.shards_written + other.shards_written,
            rows_by_worker={name: self.rows_by_worker.get(name, 0)
                            + other.rows_by_worker.get(name, 0)
                            for name in dict.fromkeys([*self.rows_by_worker,
                                                       *other.rows_by_worker])})
        for name in dict.fromkeys([*self.count, *other.count]):
            merged.count[name] = self.count.get(name, 0) + other.count.get(name, 0)
            merged.total[name] = self.total.get(name, 0.0) + other.total.get(name, 0.0)
            merged.minimum[name] = min(self.minimum.get(name, math.inf),
                                       other.minimum.get(name, math.inf))
            merged.maximum[name] = max(self.maximum.get(name, -math.inf),
                                       other.maximum.get(name, -math.inf))
        return merged

    def _sampled(self, name: str) -> np.ndarray:
        if name in self.sample:
            return self.sample[name]
        return np.full(len(self.sample_keys), np.nan)

    def to_dict(self, soft_label_sources: Mapping[str, Mapping], hard_label_names) -> dict:
        """The stats.json content.

        Args:
          soft_label_sources: soft-label column -> extra facts to record with it (the teacher
            output it came from, whether it holds logits).
          hard_label_names: hard-label columns to compute the teacher's AUC against.
        """
        soft = {}
        for name, source in soft_label_sources.items():
            count = self.count.get(name, 0)
            values = self.sample.get(name, np.zeros(0))
            soft[name] = {
                **source,
                "mean": self.total.get(name, 0.0) / count if count else None,
                "min": self.minimum.get(name) if count else None,
                "max": self.maximum.get(name) if count else None,
                "quantiles": ({str(q): float(v) for q, v in
                               zip(QUANTILES, np.quantile(values, QUANTILES))}
                              if len(values) else {}),
                "teacher_auc": {label: teacher_auc(values, self.sample.get(label, np.zeros(0)))
                                for label in hard_label_names},
            }
        rows_read = self.rows_read
        return {
            "rows_read": rows_read,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "bad_rows_fraction": self.rows_rejected / rows_read if rows_read else 0.0,
            "rejected_examples": self.rejected_examples,
            "shards_written": self.shards_written,
            "rows_by_worker": dict(sorted(self.rows_by_worker.items())),
            "sample_rows": len(self.sample_keys),
            "soft_labels": soft,
        }


def teacher_auc(scores: np.ndarray, labels: np.ndarray):
    """ROC AUC of ``scores`` against 0/1 ``labels``; None when the labels are not binary 0/1
    or hold a single class (AUC is undefined then)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if labels.dtype.kind not in "biuf":
        return None
    labels = labels.astype(np.float64)
    if len(labels) == 0 or not np.isin(labels, (0.0, 1.0)).all() or len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def _smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest keys, in row order (so samples keep the data order)."""
    if len(keys) <= k:
        return np.arange(len(keys))
    return np.sort(np.argpartition(keys, k - 1)[:k])


def teacher_eval_auc(metadata: Mapping, label: str) -> Optional[float]:
    """The teacher's AUC for ``label`` on its eval data, from its ``recdistill.json``.

    Training records ``eval_metrics``: ``eval_auc_<label>`` per target of a multi-target
    model, ``eval_auc`` for its first target (``label_fields[0]``). None when the teacher
    was trained without eval data, or on another label.
    """
    metrics = metadata.get("eval_metrics") or {}
    if f"eval_auc_{label}" in metrics:
        return float(metrics[f"eval_auc_{label}"])
    labels = metadata.get("label_fields") or []
    if labels and labels[0] == label and "eval_auc" in metrics:
        return float(metrics["eval_auc"])
    return None


def check_leak(stats: dict, teacher_metadata: Mapping, max_gap: float = LEAK_AUC_GAP) -> list:
    """Compares the teacher's AUC on the scored rows with its eval AUC (see LEAK_AUC_GAP).

    Adds to ``stats`` (the stats.json content) per soft-label column ``teacher_eval_auc``
    and ``teacher_auc_gap`` (scored minus eval, per hard label; None when either is
    unknown), and ``leak_guard``: the gap allowed, whether it was passed and the warnings.

    Returns:
      One warning per (column, label) whose gap exceeds ``max_gap``, starting with
      LEAK_WARNING.
    """
    warnings = []
    for column, facts in stats["soft_labels"].items():
        facts["teacher_eval_auc"], facts["teacher_auc_gap"] = {}, {}
        for label, scored in facts["teacher_auc"].items():
            held_out = teacher_eval_auc(teacher_metadata, label)
            gap = None if scored is None or held_out is None else scored - held_out
            facts["teacher_eval_auc"][label] = held_out
            facts["teacher_auc_gap"][label] = gap
            if gap is not None and gap > max_gap:
                warnings.append(
                    f"{LEAK_WARNING}: the teacher's AUC against {label!r} is {scored:.4f} on "
                    f"the rows it scored but {held_out:.4f} on its eval data (gap {gap:.4f} > "
                    f"{max_gap}), so soft label {column!r} mostly copies {label!r}. Score rows "
                    "the teacher was not trained on (cross-fitted folds, or yesterday's "
                    "teacher on today's rows) or train the teacher shorter.")
    stats["leak_guard"] = {"max_auc_gap": max_gap, "repeats_clicks": bool(warnings),
                           "warnings": warnings}
    return warnings


def metric_scalars(stats: Mapping) -> dict:
    """The stats.json facts a KFP Metrics artifact can hold, as flat name -> number.

    ``rows_read``/``rows_written``/``rows_rejected``; per soft-label column
    ``teacher_auc_<column>``, ``teacher_eval_auc_<column>`` and ``teacher_auc_gap_<column>``
    (with ``_<label>`` appended when there are several hard labels; unknown values left out);
    and ``soft_labels_repeat_clicks`` (1 or 0) once the leak guard has run.
    """
    scalars = {key: float(stats[key]) for key in ("rows_read", "rows_written", "rows_rejected")}
    for column, facts in stats["soft_labels"].items():
        labels = list(facts["teacher_auc"])
        for name in ("teacher_auc", "teacher_eval_auc", "teacher_auc_gap"):
            for label, value in facts.get(name, {}).items():
                suffix = f"_{label}" if len(labels) > 1 else ""
                if value is not None:
                    scalars[f"{name}_{column}{suffix}"] = float(value)
    if "leak_guard" in stats:
        scalars["soft_labels_repeat_clicks"] = float(stats["leak_guard"]["repeats_clicks"])
    return scalars
