"""Prediction output names: the one place that parses ``logits``/``probs`` and task suffixes.

Every recdistill model returns, per head, a pair of outputs named ``logits<suffix>`` and
``probs<suffix>``: the suffix is empty for a single-head model and ``_<tower_name>`` for each
task tower of a multi-task one (``logits_ctr``/``probs_ctr``). Other outputs (DSSM's tower
embeddings, a custom teacher's scores) are *raw*: neither kind. The soft-label handlers,
evaluation and export read names only through these functions, so the convention cannot
drift between them.

Imports nothing from recdistill.
"""

from typing import Iterable, Optional

LOGITS = "logits"
PROBS = "probs"
KINDS = (LOGITS, PROBS)


def kind(name: str) -> Optional[str]:
    """LOGITS for ``logits``/``logits_<task>``, PROBS for ``probs``/``probs_<task>``, else None.

    ``logitsx`` is not a logits output: the kind must be followed by nothing or ``_``.
    """
    for candidate in KINDS:
        if name == candidate or name.startswith(candidate + "_"):
            return candidate
    return None


def is_logits(name: str) -> bool:
    return kind(name) == LOGITS


def is_probs(name: str) -> bool:
    return kind(name) == PROBS


def task_suffix(name: str) -> str:
    """The head suffix of a logits/probs output: '' for ``logits``, '_ctr' for ``probs_ctr``.

    Raises:
      ValueError: ``name`` is neither a logits nor a probs output.
    """
    found = kind(name)
    if found is None:
        raise ValueError(f"output {name!r} is neither {LOGITS}[_<task>] nor {PROBS}[_<task>], "
                         "so it has no task suffix.")
    return name[len(found):]


def output_name(output_kind: str, suffix: str = "") -> str:
    """``logits<suffix>`` or ``probs<suffix>``; what a model names each head's outputs.

    Raises:
      ValueError: ``output_kind`` is not LOGITS or PROBS.
    """
    if output_kind not in KINDS:
        raise ValueError(f"output kind must be one of {KINDS}, got {output_kind!r}.")
    return output_kind + suffix


def probs_name(name: str) -> str:
    """``probs<suffix>`` for the logits output ``logits<suffix>`` (``logits_ctr`` -> ``probs_ctr``).

    Raises:
      ValueError: ``name`` is not a logits output.
    """
    return _twin(name, LOGITS, PROBS)


def logits_name(name: str) -> str:
    """``logits<suffix>`` for the probs output ``probs<suffix>``.

    Raises:
      ValueError: ``name`` is not a probs output.
    """
    return _twin(name, PROBS, LOGITS)


def _twin(name: str, from_kind: str, to_kind: str) -> str:
    if kind(name) != from_kind:
        raise ValueError(f"{name!r} is not a {from_kind}[_<task>] output.")
    return output_name(to_kind, task_suffix(name))


def probability_first(name: str) -> tuple:
    """``name`` and its twin of the other kind, the probability first; ``(name,)`` when raw.

    Readers that want probabilities try the names in this order and take the sigmoid of a
    logits output they find instead.
    """
    if kind(name) is None:
        return (name,)
    suffix = task_suffix(name)
    return output_name(PROBS, suffix), output_name(LOGITS, suffix)


def unpaired(names: Iterable[str]) -> list:
    """The logits/probs outputs among ``names`` whose twin of the other kind is missing."""
    present = set(names)
    return sorted(name for name in present if kind(name) is not None
                  and set(probability_first(name)) - present)
