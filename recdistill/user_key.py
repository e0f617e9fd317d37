"""The column that groups a user's (or a session's) rows, read from a student config.

GAUC averages AUC per user, the consistency metrics compare rankings per session, the
cross-fitting folds and the validation holdout keep all rows of one user on one side: all
of them need the same column, and all of them read it here, so a config never means one
column to evaluation and another to the splits.

The rule: the first ``eval_config`` GAUC metric's ``uid_field``, else the first kd block's
``loss_param`` ``session_name`` (pairwise/listwise kd), else none. A GAUC metric with an
empty ``uid_field`` is a config error, never skipped: evaluation could not compute it.

Imports ``recdistill.config`` only; never TensorFlow, Beam or kfp.
"""

from recdistill import config as config_lib


def gauc_metric(cfg):
    """The first ``eval_config.metrics_set`` GAUC message, or None (several: the first one
    counts, for evaluation and for the splits alike)."""
    for metric in cfg.eval_config.metrics_set:
        if metric.WhichOneof("metric") == "gauc":
            return metric.gauc
    return None


def kd_session_name(cfg) -> str | None:
    """The first kd block's ``loss_param`` ``session_name`` (pairwise/listwise kd), if any.

    Read through the descriptor, so configs (and protos) without ``loss_param`` work too.
    """
    for block in cfg.model_config.kd:
        if "loss_param" not in block.DESCRIPTOR.oneofs_by_name:
            return None
        which = block.WhichOneof("loss_param")
        session = getattr(getattr(block, which), "session_name", "") if which else ""
        if session:
            return session
    return None


def user_field(cfg) -> str | None:
    """GAUC's ``uid_field``, else a kd block's ``session_name``, else None.

    Raises:
      ValueError: the GAUC metric's ``uid_field`` is empty.
    """
    gauc = gauc_metric(cfg)
    if gauc is not None:
        if not gauc.uid_field:
            raise ValueError("eval_config.metrics_set.gauc.uid_field is empty. Set it to the "
                             "user-id input field, e.g. uid_field: 'user_id'.")
        return gauc.uid_field
    return kd_session_name(cfg)


def resolve(cfg, key: str = "", *, purpose: str, option: str,
            source: str = "the config") -> str:
    """``key`` when given, else :func:`user_field`; checked to be an input field.

    Args:
      cfg: the student's loaded config.
      key: the column asked for ('' = the config's).
      purpose: what needs the key, for errors (e.g. "cross-fitting").
      option: how a user names one instead, for errors (e.g. "cross_fit_key / --cross-fit-key").
      source: where ``cfg`` came from, for errors.

    Raises:
      ValueError: no key given and none in the config, an empty GAUC ``uid_field``, or a key
        that is not an input field (the message lists them).
    """
    key = key or user_field(cfg)
    if not key:
        raise ValueError(
            f"{source}: {purpose} needs a key column (a user or session id) and the config "
            f"names none: no eval_config gauc uid_field and no kd session_name. Pass one "
            f"({option}), e.g. 'user_id'.")
    config_lib.input_field(cfg, key)  # ValueError listing the input fields
    return key
