"""session_batches: whole sessions per batch, sessions (not rows) shuffled, splits counted."""

import numpy as np
import pytest

from recdistill.data.sessions import session_batches

#                 rows: 0    1    2    3    4    5    6    7    8    9
SESSIONS = np.array(["a", "b", "a", "c", "b", "a", "d", "d", "d", "d"])


def test_sessions_in_first_appearance_order_are_packed_whole():
    plan = session_batches(SESSIONS, batch_size=5)
    # a (0,2,5) + b (1,4) fill 5; c (3) + d (6..9) fill the next 5.
    assert [b.tolist() for b in plan.batches] == [[0, 2, 5, 1, 4], [3, 6, 7, 8, 9]]
    assert plan.sessions == 4 and plan.split_sessions == 0 and plan.kept_whole == 1.0
    assert plan.pairs == 3 + 1 + 0 + 6 and plan.pairs_per_batch == 5.0


def test_a_session_that_does_not_fit_starts_a_new_batch():
    plan = session_batches(SESSIONS, batch_size=4)
    assert [b.tolist() for b in plan.batches] == [[0, 2, 5], [1, 4, 3], [6, 7, 8, 9]]


def test_a_session_larger_than_a_batch_is_split_and_counted():
    plan = session_batches(SESSIONS, batch_size=3)
    assert [b.tolist() for b in plan.batches] == [[0, 2, 5], [1, 4, 3], [6, 7, 8], [9]]
    assert plan.split_sessions == 1 and plan.kept_whole == pytest.approx(0.75)
    assert plan.pairs == 3 + 1 + 0 + 3  # d's pieces: 3 rows (3 pairs) and 1 row


def test_shuffling_moves_sessions_never_rows_inside_one():
    orders = set()
    for seed in range(8):
        plan = session_batches(SESSIONS, batch_size=10, rng=np.random.default_rng(seed))
        (rows,) = [b.tolist() for b in plan.batches]
        assert sorted(rows) == list(range(10))
        for session in "abcd":  # each session contiguous and in input order
            mine = [r for r in rows if SESSIONS[r] == session]
            start = rows.index(mine[0])
            assert rows[start:start + len(mine)] == sorted(mine)
        orders.add(tuple(rows))
    assert len(orders) > 1


def test_integer_sessions_and_bad_batch_size():
    plan = session_batches(np.array([7, 7, 3]), batch_size=2)
    assert [b.tolist() for b in plan.batches] == [[0, 1], [2]]
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        session_batches(np.array([1]), batch_size=0)
