"""Ranking kd for bench/quality.py: a pairwise or listwise kd block within each user's rows.

Neither dataset has a request or query column, so the session is the user (``user_id``): the
student learns to order each user's candidates as the teacher does, which is what a
pre-ranker passing candidates to the ranker needs. A block names the session in its
``loss_param`` (``session_name``); training then batches whole sessions
(``recdistill.data.sessions``), and the evaluation's per-session consistency metrics (the
teacher's top-k recall within the student's top m, NDCG@k against the teacher) group by the
same column.

LISTWISE_DISTILL_LOSS reads the teacher's *rank position* in the session (1 = top), as in
EasyRec, not a logit; the soft-label job writes logits, so :func:`with_teacher_ranks` adds
that column (``kd_rank``) to the soft-labelled table.
"""

import dataclasses
import glob
import os

import numpy as np
import pandas as pd

from recdistill.protos import pipeline_pb2

#: The session of every ranking kd block, and the consistency metrics' grouping.
SESSION = "user_id"
#: The soft label of the shipped kd block: the teacher's logit.
TEACHER_LOGIT = "kd_soft"
#: The teacher's rank position within the session (1 = its top row), for LISTWISE_DISTILL.
TEACHER_RANK = "kd_rank"


@dataclasses.dataclass(frozen=True)
class RankingKd:
    """A ranking kd block: its loss type, ``loss_param`` fields and weight.

    ``params`` are (field, value) pairs set on the type's ``*_loss`` block besides
    ``session_name``; fields not named keep EasyRec's defaults.
    """

    loss_type: int
    params: tuple = ()
    loss_weight: float = 1.0
    #: '' (pairwise types only): pairs over the whole row-shuffled batch, no session batching.
    session: str = SESSION

    @property
    def soft_label(self) -> str:
        return (TEACHER_RANK if self.loss_type == pipeline_pb2.LISTWISE_DISTILL_LOSS
                else TEACHER_LOGIT)

    def describe(self) -> str:
        """E.g. ``PAIRWISE_HINGE_LOSS(margin=1) w=1 per user_id``."""
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in self.params)
        return (f"{pipeline_pb2.LossType.Name(self.loss_type)}({params}) "
                f"w={self.loss_weight:g} " + (f"per {self.session}" if self.session
                                              else "over the batch"))

    def add_to(self, cfg, *, alone: bool = False) -> None:
        """Adds this block to ``cfg``'s kd blocks, with the rank column when it reads it.

        Args:
            cfg: a student config; edited in place.
            alone: replace the config's kd blocks instead, dropping the soft-label columns
                only they read (so the eval table, which has none, still matches).
        """
        if alone:
            dropped = {b.soft_label_name for b in cfg.model_config.kd} - {self.soft_label}
            cfg.model_config.ClearField("kd")
            kept = [f for f in cfg.data_config.input_fields if f.input_name not in dropped]
            del cfg.data_config.input_fields[:]
            cfg.data_config.input_fields.extend(kept)
            labels = [n for n in cfg.data_config.label_fields if n not in dropped]
            del cfg.data_config.label_fields[:]
            cfg.data_config.label_fields.extend(labels)
        block = cfg.model_config.kd.add(
            loss_name="kd_rank", pred_name="logits", soft_label_name=self.soft_label,
            loss_type=self.loss_type, loss_weight=self.loss_weight)
        param = getattr(block, pipeline_pb2.LossType.Name(self.loss_type).lower())
        if self.session:
            param.session_name = self.session
        for field, value in self.params:
            setattr(param, field, value)
        if self.soft_label not in cfg.data_config.label_fields:
            cfg.data_config.input_fields.add(input_name=self.soft_label,
                                             input_type=pipeline_pb2.DatasetConfig.DOUBLE)
            cfg.data_config.label_fields.append(self.soft_label)


def with_teacher_ranks(soft_labelled: str, soft_cfg, train_cfg, out_dir: str) -> str:
    """Copies the soft-labelled table (CSV shards) with the teacher's rank in ``kd_rank``.

    The rank is the row's position in its session sorted by the teacher's logit, descending
    (1 = top; ties in input order). The copy has ``train_cfg``'s input fields, in its order.

    Args:
        soft_labelled: the soft-label job's output folder.
        soft_cfg: the config the job wrote it for (its input fields are the columns).
        train_cfg: the config that trains on the copy.
        out_dir: the new folder.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: the folder holds no CSV shards (the soft-label job did not run).
    """
    shards = sorted(glob.glob(os.path.join(soft_labelled, "part-*")))
    if not shards:
        raise ValueError(f"{soft_labelled}: no part-* shards of the soft-label job; run the "
                         "job first.")
    names = [f.input_name for f in soft_cfg.data_config.input_fields]
    frame = pd.concat([pd.read_csv(path, header=None, names=names, keep_default_na=False,
                                   dtype={SESSION: str}) for path in shards], ignore_index=True)
    frame[TEACHER_RANK] = (frame.groupby(SESSION, sort=False)[TEACHER_LOGIT]
                           .rank(method="first", ascending=False).astype(np.float64))
    columns = [f.input_name for f in train_cfg.data_config.input_fields]
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, ".part-00000.csv.tmp")
    frame[columns].to_csv(tmp, header=False, index=False)
    os.replace(tmp, os.path.join(out_dir, "part-00000.csv"))
    return out_dir


LOGISTIC = RankingKd(pipeline_pb2.PAIRWISE_LOGISTIC_LOSS)
HINGE = RankingKd(pipeline_pb2.PAIRWISE_HINGE_LOSS)
LISTWISE = RankingKd(pipeline_pb2.LISTWISE_DISTILL_LOSS)
CLID = RankingKd(pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS)
#: The ranking kd losses the bench compares, each alone and beside the pointwise CE block.
RANKING_LOSSES = (("pairwise logistic", LOGISTIC), ("pairwise hinge", HINGE),
                  ("listwise distill", LISTWISE), ("CLID", CLID))
#: Pairwise kd over the whole row-shuffled batch: found after the per-user blocks above lost to
#: pointwise CE on the sample, where batches of whole users hold only ~2.5 users each; at
#: weight 1 it cost MovieLens some GAUC against CE, hence a lighter weight beside it.
BATCH_LOGISTIC = (("pairwise logistic over the batch",
                   RankingKd(pipeline_pb2.PAIRWISE_LOGISTIC_LOSS, session="")),
                  ("pairwise logistic over the batch, w=0.3",
                   RankingKd(pipeline_pb2.PAIRWISE_LOGISTIC_LOSS, loss_weight=0.3, session="")))
