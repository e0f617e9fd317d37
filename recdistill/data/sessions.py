"""Session-grouped batches: each session's rows in one batch, sessions shuffled, not rows.

A pairwise or listwise kd loss only compares rows inside a batch, and only rows of the same
session (a user's request, a query). Row-shuffled batches scatter a session over many
batches, leaving the loss almost no pairs; :func:`session_batches` packs whole sessions into
batches of at most ``batch_size`` rows instead. A session larger than a batch is split
(each piece kept together) and counted, so the caller can warn.

Pure numpy; imports nothing from recdistill.
"""

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class SessionBatches:
    """One epoch's packing of rows into session-grouped batches.

    Attributes:
        batches: the row indices of each batch, each session's rows in input order.
        sessions: how many sessions the rows hold.
        split_sessions: sessions larger than a batch, hence split over several.
        pairs: same-session row pairs inside batches, summed over batches.
    """

    batches: list
    sessions: int
    split_sessions: int
    pairs: int

    @property
    def kept_whole(self) -> float:
        """The share of sessions whose rows all landed in one batch."""
        return 1.0 - self.split_sessions / self.sessions if self.sessions else 1.0

    @property
    def pairs_per_batch(self) -> float:
        return self.pairs / len(self.batches) if self.batches else 0.0


def session_batches(sessions: np.ndarray, batch_size: int,
                    rng: Optional[np.random.Generator] = None) -> SessionBatches:
    """Packs rows into batches of at most ``batch_size`` rows, whole sessions at a time.

    Sessions are taken in order of first appearance, or in a random order with ``rng``;
    a batch is closed when the next session does not fit, so batches may be short.

    Args:
        sessions: the session id of each row (any sortable dtype).
        batch_size: the most rows per batch.
        rng: shuffles the order of sessions (never the rows inside one).

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    _, first, inverse = np.unique(sessions, return_index=True, return_inverse=True)
    rows_by_session = np.argsort(inverse, kind="stable")  # input order inside each session
    counts = np.bincount(inverse, minlength=len(first))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order = rng.permutation(len(first)) if rng is not None else np.argsort(first)
    batches, current, size, pairs = [], [], 0, 0
    for session in order:
        rows = rows_by_session[starts[session]:starts[session] + counts[session]]
        for start in range(0, len(rows), batch_size):
            piece = rows[start:start + batch_size]
            if size + len(piece) > batch_size:
                batches.append(np.concatenate(current))
                current, size = [], 0
            current.append(piece)
            size += len(piece)
            pairs += len(piece) * (len(piece) - 1) // 2
    if current:
        batches.append(np.concatenate(current))
    return SessionBatches(batches, len(first), int((counts > batch_size).sum()), pairs)
