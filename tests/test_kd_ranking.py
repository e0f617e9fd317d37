"""Pairwise and listwise kd against an independent numpy reference written from EasyRec's
``easy_rec/python/loss/pairwise_loss.py``, ``focal_loss.py``, ``listwise_loss.py`` and
``builders/loss_builder.py`` (commit bd230cb1a3eeb1112f35597aede4c23880804d88): dense B x B
pair masks and a Python loop per session, where recdistill uses ragged pairs and segment ops.
The reference keeps EasyRec's arithmetic except the differences the kd docstring lists
(hinge ``use_exponent`` maps the student's logits; per-row weights in listwise losses; no NaN
from empty hard-example mining).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from recdistill import kd  # noqa: E402
from recdistill.protos import pipeline_pb2  # noqa: E402

# 12 rows in sessions of 5, 6 and 1 rows (interleaved), teacher ties inside sessions.
SESSIONS = np.array(["a", "b", "a", "c", "b", "a", "b", "b", "a", "b", "a", "b"])
TEACHER = np.array([1.5, 0.2, -0.3, 0.9, 0.2, 1.5, -1.1, 2.0, 0.4, 0.7, -2.0, 0.2])
STUDENT = np.array([0.3, -0.8, 0.6, 1.2, 0.1, 1.9, -0.4, 0.5, 0.0, 1.1, -1.3, 0.9])
RANKS = np.array([1.0, 3.0, 4.0, 1.0, 2.0, 2.0, 6.0, 1.0, 3.0, 5.0, 700.0, 4.0])
SPACE = np.array([1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1])
EPS = 1e-7


# ------------------------------------------------------------------ numpy reference
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def log_softmax(x):
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def pair_mask(labels, sessions):
    mask = labels[:, None] > labels[None, :]
    if sessions is not None:
        mask &= sessions[:, None] == sessions[None, :]
    return mask


def reduce_pairs(losses, weights, ohem_ratio):
    """tf.losses' SUM_BY_NONZERO_WEIGHTS, or EasyRec's top-k hard-example mean."""
    if ohem_ratio == 1.0:
        present = np.count_nonzero(weights)
        return (losses * weights).sum() / present if present else 0.0
    weighted = losses * weights
    k = int(np.rint(np.float32(weighted.size) * np.float32(ohem_ratio)))
    top = np.sort(weighted)[::-1][:k]
    top = top[top > 0]
    return top.mean() if top.size else 0.0


def np_hinge(s, y, sessions, w, temperature=1.0, margin=1.0, ohem_ratio=1.0,
             label_is_logits=True, use_label_margin=True, use_exponent=False):
    if temperature != 1.0:
        s = s / temperature
        if label_is_logits:
            y = y / temperature
    if use_exponent:
        y, s = sigmoid(y), sigmoid(s)  # EasyRec: s = sigmoid(y), the bug recdistill fixes
    mask = pair_mask(y, sessions)
    ds = (s[:, None] - s[None, :])[mask]
    dy = (y[:, None] - y[None, :])[mask]
    diff = dy - ds if use_label_margin else margin - ds
    losses = np.maximum(np.exp(np.clip(diff, -88, 88)) - 1, 0) if use_exponent else \
        np.maximum(diff, 0)
    return reduce_pairs(losses, np.tile(w[:, None], (1, len(w)))[mask], ohem_ratio)


def np_logistic(s, y, sessions, w, temperature=1.0, hinge_margin=None, ohem_ratio=1.0,
                use_label_margin=False):
    if temperature != 1.0:
        s = s / temperature
        if use_label_margin:
            y = y / temperature
    ds = s[:, None] - s[None, :]
    if use_label_margin:
        ds = ds - (y[:, None] - y[None, :])
    elif hinge_margin is not None:
        ds = ds - hinge_margin
    mask = pair_mask(y, sessions)
    losses = np.log1p(np.exp(-ds[mask]))
    return reduce_pairs(losses, np.tile(w[:, None], (1, len(w)))[mask], ohem_ratio)


def np_focal(s, y, sessions, w, gamma=2.0, alpha=None, hinge_margin=None, ohem_ratio=1.0,
             temperature=1.0):
    if temperature != 1.0:
        s = s / temperature
    ds = s[:, None] - s[None, :]
    mask = pair_mask(y, sessions)
    if hinge_margin is not None:
        mask &= ds < hinge_margin
    x = ds[mask]
    p = np.clip(sigmoid(x), EPS, 1 - EPS)
    focal = (1 - p) ** gamma * (alpha if alpha is not None else 1.0)
    focal = focal * np.tile(w[:, None], (1, len(w)))[mask]
    return reduce_pairs(np.log1p(np.exp(-x)), focal, ohem_ratio)


def session_mean(per_row, w, sessions):
    """Per-session sums of w * l over the sessions holding a non-zero weight."""
    totals, kept = [], 0
    for key in dict.fromkeys(sessions):
        rows = sessions == key
        totals.append((w[rows] * per_row[rows]).sum())
        kept += bool(np.any(w[rows] != 0))
    return sum(totals) / kept if kept else 0.0


def np_listwise_rank(s, y, sessions, w, temperature=1.0, transform=None, label_is_logits=False,
                     scale=None):
    if scale is not None:
        s = s * abs(scale[0]) + scale[1]
    if temperature != 1.0:
        s = s / temperature
        if label_is_logits:
            y = y / temperature
    if transform is not None:
        y = transform(y)
    per_row = np.zeros_like(s)
    for key in dict.fromkeys(sessions):
        rows = sessions == key
        target = np.exp(log_softmax(y[rows])) if label_is_logits else y[rows]
        per_row[rows] = -target * log_softmax(s[rows])
    return session_mean(per_row, w, sessions)


def np_listwise_distill(s, ranks, sessions, w, temperature=1.0, transform=None, clip=512.0):
    y = np.clip(ranks, 1, clip)
    y = transform(y) if transform is not None else np.log1p(clip) - np.log(y)
    if temperature != 1.0:
        s = s / temperature
    per_row = np.zeros_like(s)
    for key in dict.fromkeys(sessions):
        rows = sessions == key
        per_row[rows] = -(y[rows] / y[rows].sum()) * log_softmax(s[rows])
    return session_mean(per_row, w, sessions)


def np_calibrated(s, t, sessions, w, temperature=1.0):
    """CLID: cross-entropy of the teacher's within-session probability shares."""
    ps, pt = sigmoid(s / temperature), sigmoid(t / temperature)
    per_row = np.zeros_like(s)
    for key in dict.fromkeys(sessions):
        rows = sessions == key
        per_row[rows] = -(pt[rows] / pt[rows].sum()) * np.log(ps[rows] / ps[rows].sum())
    return session_mean(per_row, w, sessions)


# ------------------------------------------------------------------ helpers
PARAM_FIELDS = {
    pipeline_pb2.PAIRWISE_HINGE_LOSS: "pairwise_hinge_loss",
    pipeline_pb2.PAIRWISE_LOGISTIC_LOSS: "pairwise_logistic_loss",
    pipeline_pb2.PAIRWISE_FOCAL_LOSS: "pairwise_focal_loss",
    pipeline_pb2.LISTWISE_RANK_LOSS: "listwise_rank_loss",
    pipeline_pb2.LISTWISE_DISTILL_LOSS: "listwise_distill_loss",
    pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS: "listwise_calibrated_distill_loss",
}


def make_block(loss_type, session=True, block_fields=None, **param):
    block = pipeline_pb2.KD(pred_name="logits", soft_label_name="kd_soft", loss_type=loss_type)
    for name, value in (block_fields or {}).items():
        setattr(block, name, value)
    target = getattr(block, PARAM_FIELDS[loss_type])
    target.SetInParent()
    if session:
        target.session_name = "session"
    for name, value in param.items():
        setattr(target, name, value)
    return block


def features(sessions=SESSIONS, **extra):
    return {"session": sessions, **extra}


def tf_loss(block, student=STUDENT, teacher=TEACHER, feats=None, dtype=tf.float64,
            scales=None):
    losses = kd.build_kd_losses([block], {"logits": tf.constant(student, dtype)},
                                {"kd_soft": teacher}, features(**(feats or {})), scales)
    return float(losses[kd.kd_loss_name(block)])


def ones(weight=1.0):
    return np.full(len(STUDENT), weight)


# ------------------------------------------------------------------ pairwise values
HINGE_CASES = [
    {}, {"temperature": 2.0}, {"use_label_margin": False}, {"use_label_margin": False,
                                                            "margin": 0.5},
    {"use_exponent": True}, {"use_exponent": True, "use_label_margin": False},
    {"label_is_logits": False, "temperature": 2.0}, {"ohem_ratio": 0.5},
    {"ohem_ratio": 0.3, "use_label_margin": False, "temperature": 0.7},
]


LOGISTIC_CASES = [{}, {"temperature": 2.0}, {"hinge_margin": 0.3},
                  {"use_label_margin": True, "temperature": 0.5},
                  {"use_label_margin": True, "hinge_margin": 0.3}, {"ohem_ratio": 0.5},
                  {"ohem_ratio": 0.3, "hinge_margin": -0.2}]
FOCAL_CASES = [{}, {"gamma": 0.0}, {"gamma": 1.5, "alpha": 0.25}, {"hinge_margin": 0.5},
               {"temperature": 2.0, "hinge_margin": 1.0}, {"ohem_ratio": 0.5},
               {"ohem_ratio": 0.3, "alpha": 0.6, "temperature": 0.5}]
PAIRWISE_CASES = (
    [("hinge", pipeline_pb2.PAIRWISE_HINGE_LOSS, np_hinge, p) for p in HINGE_CASES]
    + [("logistic", pipeline_pb2.PAIRWISE_LOGISTIC_LOSS, np_logistic, p) for p in LOGISTIC_CASES]
    + [("focal", pipeline_pb2.PAIRWISE_FOCAL_LOSS, np_focal, p) for p in FOCAL_CASES])


@pytest.mark.parametrize("session", [True, False], ids=["sessions", "batch"])
@pytest.mark.parametrize("loss_type, reference, param", [case[1:] for case in PAIRWISE_CASES],
                         ids=[f"{case[0]}-{case[3]}" for case in PAIRWISE_CASES])
def test_pairwise_loss_matches_easyrec(loss_type, reference, param, session):
    block = make_block(loss_type, session, **param)
    expected = reference(STUDENT, TEACHER, SESSIONS if session else None, ones(), **param)
    assert tf_loss(block) == pytest.approx(expected, rel=1e-6, abs=1e-9)


SKEWED = np.array(["x", "x", "y", "x", "x", "z", "x", "x", "w", "x", "x", "x"])


@pytest.mark.parametrize("loss_type, reference, param", [
    (pipeline_pb2.PAIRWISE_HINGE_LOSS, np_hinge, {"ohem_ratio": 0.5}),
    (pipeline_pb2.PAIRWISE_LOGISTIC_LOSS, np_logistic, {}),
    (pipeline_pb2.PAIRWISE_FOCAL_LOSS, np_focal, {"hinge_margin": 0.5, "ohem_ratio": 0.7}),
], ids=["hinge", "logistic", "focal"])
def test_one_long_session_among_short_ones_pairs_over_the_batch_grid(loss_type, reference,
                                                                     param):
    """4 sessions padded to 9 rows would need 4 * 81 > 12^2 slots: the B x B grid is used."""
    block = make_block(loss_type, **param)
    expected = reference(STUDENT, TEACHER, SKEWED, ones(), **param)
    assert tf_loss(block, feats={"sessions": SKEWED}) == pytest.approx(expected, rel=1e-6)


def test_pairwise_defaults_without_a_loss_param_block_rank_the_whole_batch():
    block = pipeline_pb2.KD(pred_name="logits", soft_label_name="kd_soft",
                            loss_type=pipeline_pb2.PAIRWISE_LOGISTIC_LOSS)
    assert tf_loss(block) == pytest.approx(np_logistic(STUDENT, TEACHER, None, ones()))


def test_pairwise_ties_and_single_row_sessions_make_no_pairs():
    teacher = np.where(SESSIONS == "a", 0.5, TEACHER)  # session a all tied, c has one row
    block = make_block(pipeline_pb2.PAIRWISE_LOGISTIC_LOSS)
    rows = SESSIONS == "b"
    only_b = np_logistic(STUDENT[rows], teacher[rows], None, ones()[rows])
    assert tf_loss(block, teacher=teacher) == pytest.approx(only_b, rel=1e-6)


def test_pairwise_loss_without_any_pair_is_zero_not_nan():
    block = make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS, ohem_ratio=0.5)
    assert tf_loss(block, teacher=np.zeros(len(STUDENT))) == 0.0


@pytest.mark.parametrize("session_ids", [SESSIONS, np.array([ord(s) for s in SESSIONS]),
                                         np.array([ord(s) for s in SESSIONS])[:, None]],
                         ids=["strings", "ints", "column"])
def test_session_ids_may_be_strings_ints_or_a_column(session_ids):
    block = make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS)
    expected = np_hinge(STUDENT, TEACHER, SESSIONS, ones())
    got = tf_loss(block, feats={"sessions": session_ids})
    assert got == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ listwise values
def _param_id(value):
    """A test id without a function's memory address: pytest-xdist's workers must collect the
    same ids."""
    return "reference" if callable(value) else str(value)


@pytest.mark.parametrize("param, transform", [
    ({}, None), ({"temperature": 2.0}, None), ({"label_is_logits": True}, None),
    ({"label_is_logits": True, "temperature": 0.5}, None),
    ({"transform_fn": "tf.math.sigmoid"}, sigmoid),
    ({"transform_fn": "tf.nn.relu", "label_is_logits": True, "temperature": 2.0},
     lambda y: np.maximum(y, 0)),
], ids=_param_id)
def test_listwise_rank_matches_easyrec(param, transform):
    block = make_block(pipeline_pb2.LISTWISE_RANK_LOSS, **param)
    kwargs = {k: v for k, v in param.items() if k != "transform_fn"}
    expected = np_listwise_rank(STUDENT, TEACHER, SESSIONS, ones(), transform=transform,
                                **kwargs)
    assert tf_loss(block) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("param, transform", [
    ({}, None), ({"temperature": 2.0}, None), ({"label_clip_max_value": 4.0}, None),
    ({"transform_fn": "tf.math.reciprocal"}, lambda r: 1.0 / r),
], ids=_param_id)
def test_listwise_distill_matches_easyrec(param, transform):
    block = make_block(pipeline_pb2.LISTWISE_DISTILL_LOSS, **param)
    kwargs = {"clip" if k == "label_clip_max_value" else k: v for k, v in param.items()
              if k != "transform_fn"}
    expected = np_listwise_distill(STUDENT, RANKS, SESSIONS, ones(), transform=transform,
                                   **kwargs)
    assert tf_loss(block, teacher=RANKS) == pytest.approx(expected, rel=1e-6)


def test_listwise_scale_logits_uses_the_tasks_variables_with_abs_weight():
    block = make_block(pipeline_pb2.LISTWISE_RANK_LOSS, scale_logits=True)
    task = kd.KdTask([], [block])
    assert len(task.trainable_variables) == 2
    weight, bias = task.logit_scales[kd.kd_loss_name(block)]
    weight.assign([-2.5])
    bias.assign([0.7])
    parts = task({"logits": tf.constant(STUDENT)}, {"kd_soft": TEACHER},
                 features=features())
    expected = np_listwise_rank(STUDENT, TEACHER, SESSIONS, ones(), scale=(-2.5, 0.7))
    assert float(parts[kd.kd_loss_name(block)]) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="scale_logits.*KdTask"):
        tf_loss(block)


def test_listwise_scale_weight_gets_a_gradient_and_the_shift_none():
    block = make_block(pipeline_pb2.LISTWISE_RANK_LOSS, scale_logits=True)
    task = kd.KdTask([], [block])
    with tf.GradientTape() as tape:
        loss = task({"logits": tf.constant(STUDENT, tf.float32)}, {"kd_soft": TEACHER},
                    features=features())["loss"]
    weight, bias = task.logit_scales[kd.kd_loss_name(block)]
    grad_w, grad_b = tape.gradient(loss, [weight, bias])
    step = 1e-3
    numeric = (np_listwise_rank(STUDENT, TEACHER, SESSIONS, ones(), scale=(1 + step, 0))
               - np_listwise_rank(STUDENT, TEACHER, SESSIONS, ones(), scale=(1 - step, 0)))
    assert float(grad_w[0]) == pytest.approx(numeric / (2 * step), rel=1e-3)
    assert float(grad_b[0]) == pytest.approx(0.0, abs=1e-6)  # softmax ignores a shift


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_calibrated_listwise_distills_within_session_probability_shares(temperature):
    block = make_block(pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS, temperature=temperature)
    expected = np_calibrated(STUDENT, TEACHER, SESSIONS, ones(), temperature)
    assert tf_loss(block) == pytest.approx(expected, rel=1e-6)


def test_calibrated_listwise_reads_probabilities_when_the_block_says_so():
    block = make_block(pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS,
                       block_fields={"pred_is_logits": False, "label_is_logits": False})
    expected = np_calibrated(STUDENT, TEACHER, SESSIONS, ones())
    got = tf_loss(block, student=sigmoid(STUDENT), teacher=sigmoid(TEACHER))
    assert got == pytest.approx(expected, rel=1e-5)


def test_calibrated_listwise_is_blind_to_a_common_probability_scale():
    """Only shares matter: halving every teacher probability in a session changes nothing."""
    block = make_block(pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS,
                       block_fields={"label_is_logits": False})
    probs = sigmoid(TEACHER)
    assert tf_loss(block, teacher=probs) == pytest.approx(tf_loss(block, teacher=probs / 2),
                                                          rel=1e-6)


# ------------------------------------------------------------------ weights and T^2
WEIGHT_CASES = [
    (pipeline_pb2.PAIRWISE_HINGE_LOSS, np_hinge, {}),
    (pipeline_pb2.PAIRWISE_LOGISTIC_LOSS, np_logistic, {"ohem_ratio": 0.5}),
    (pipeline_pb2.PAIRWISE_FOCAL_LOSS, np_focal, {"alpha": 0.3}),
    (pipeline_pb2.LISTWISE_RANK_LOSS, np_listwise_rank, {"label_is_logits": True}),
    (pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS, np_calibrated, {}),
]


@pytest.mark.parametrize("loss_type, reference, param", WEIGHT_CASES,
                         ids=lambda c: getattr(c, "__name__", ""))
def test_loss_weight_and_task_space_weights_weigh_rows(loss_type, reference, param):
    block = make_block(loss_type, block_fields={
        "loss_weight": 0.5, "task_space_indicator_name": "space",
        "task_space_indicator_value": "1", "in_task_space_weight": 2.0,
        "out_task_space_weight": 0.0}, **param)
    weights = 0.5 * np.where(SPACE == 1, 2.0, 0.0)
    expected = reference(STUDENT, TEACHER, SESSIONS, weights, **param)
    assert tf_loss(block, feats={"space": SPACE}) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss_type, reference, param", WEIGHT_CASES,
                         ids=lambda c: getattr(c, "__name__", ""))
def test_sample_weight_column_weighs_rows_of_every_ranking_loss(loss_type, reference, param):
    block = make_block(loss_type, block_fields={"sample_weight_name": "w"}, **param)
    weights = np.linspace(0.0, 2.0, len(STUDENT))
    expected = reference(STUDENT, TEACHER, SESSIONS, weights, **param)
    assert tf_loss(block, feats={"w": weights}) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss_type", [pipeline_pb2.CROSS_ENTROPY_LOSS, pipeline_pb2.L2_LOSS,
                                       pipeline_pb2.BINARY_CROSS_ENTROPY_LOSS,
                                       pipeline_pb2.KL_DIVERGENCE_LOSS])
def test_pointwise_losses_weigh_rows_by_nonzero_weight_mean(loss_type):
    block = pipeline_pb2.KD(pred_name="logits", soft_label_name="kd_soft", loss_type=loss_type,
                            sample_weight_name="w")
    weights = np.array([0.0, 1.0, 3.0, 0.0] * 3)
    per_row = [tf_loss(pipeline_pb2.KD(pred_name="logits", soft_label_name="kd_soft",
                                       loss_type=loss_type), student=STUDENT[i:i + 1],
                       teacher=TEACHER[i:i + 1]) for i in range(len(STUDENT))]
    expected = (weights * np.array(per_row)).sum() / np.count_nonzero(weights)
    assert tf_loss(block, feats={"w": weights}) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss_type", sorted(PARAM_FIELDS))
def test_scale_by_temperature_squared_multiplies_every_softened_ranking_loss(loss_type):
    block = make_block(loss_type, temperature=2.0)
    teacher = RANKS if loss_type == pipeline_pb2.LISTWISE_DISTILL_LOSS else TEACHER
    plain = tf_loss(block, teacher=teacher)
    block.scale_by_temperature_squared = True
    assert tf_loss(block, teacher=teacher) == pytest.approx(4.0 * plain, rel=1e-6)
    assert plain > 0


# ------------------------------------------------------------------ gradients
def numeric_gradient(fn, x, step=1e-6):
    grad = np.zeros_like(x)
    for i in range(len(x)):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (fn(up) - fn(down)) / (2 * step)
    return grad


@pytest.mark.parametrize("loss_type, reference, param", [
    (pipeline_pb2.PAIRWISE_HINGE_LOSS, np_hinge, {"use_exponent": True}),
    (pipeline_pb2.PAIRWISE_HINGE_LOSS, np_hinge, {"use_label_margin": False, "margin": 0.8}),
    (pipeline_pb2.PAIRWISE_LOGISTIC_LOSS, np_logistic, {"temperature": 2.0}),
    (pipeline_pb2.PAIRWISE_FOCAL_LOSS, np_focal, {"alpha": 0.4}),
    (pipeline_pb2.LISTWISE_RANK_LOSS, np_listwise_rank, {"label_is_logits": True}),
    (pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS, np_calibrated, {"temperature": 2.0}),
], ids=lambda c: getattr(c, "__name__", str(c)))
def test_gradient_reaches_the_student_and_matches_numpy(loss_type, reference, param):
    block = make_block(loss_type, **param)
    student = tf.Variable(STUDENT)
    with tf.GradientTape() as tape:
        loss = kd.build_kd_losses([block], {"logits": student}, {"kd_soft": TEACHER},
                                  features())[kd.kd_loss_name(block)]
    got = tape.gradient(loss, student).numpy()
    expected = numeric_gradient(lambda s: reference(s, TEACHER, SESSIONS, ones(), **param),
                                STUDENT)
    assert np.abs(got).sum() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_listwise_distill_gradient_matches_numpy():
    block = make_block(pipeline_pb2.LISTWISE_DISTILL_LOSS)
    student = tf.Variable(STUDENT)
    with tf.GradientTape() as tape:
        loss = kd.build_kd_losses([block], {"logits": student}, {"kd_soft": RANKS},
                                  features())[kd.kd_loss_name(block)]
    expected = numeric_gradient(lambda s: np_listwise_distill(s, RANKS, SESSIONS, ones()),
                                STUDENT)
    np.testing.assert_allclose(tape.gradient(loss, student).numpy(), expected, rtol=1e-4)


# ------------------------------------------------------------------ vectorised, traced, errors
@pytest.mark.slow  # tracing six blocks takes tens of seconds on a loaded 2-core machine
def test_ranking_losses_trace_without_loops():
    blocks = [make_block(t, block_fields={"loss_name": f"kd_{t}"}) for t in PARAM_FIELDS]

    @tf.function
    def step(student, teacher, sessions):
        return kd.build_kd_losses(blocks, {"logits": student}, {"kd_soft": teacher},
                                  {"session": sessions})

    args = (tf.constant(STUDENT), tf.constant(RANKS), tf.constant(SESSIONS))
    graph = step.get_concrete_function(*args).graph
    op_types = {op.type for op in graph.get_operations()}
    assert not op_types & {"While", "StatelessWhile", "TensorListReserve"}
    assert all(np.isfinite(float(v)) for v in step(*args).values())


def test_missing_session_column_lists_the_features_given():
    block = make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS)
    with pytest.raises(ValueError, match=r"session_name 'session' is not among the features.*"
                                         r"available: other"):
        kd.build_kd_losses([block], {"logits": tf.constant(STUDENT)}, {"kd_soft": TEACHER},
                           {"other": SESSIONS})


def test_ranking_loss_on_a_multi_class_prediction_is_rejected():
    block = make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS)
    with pytest.raises(ValueError, match="has 3 classes"):
        kd.build_kd_losses([block], {"logits": tf.zeros([4, 3])}, {"kd_soft": np.zeros((4, 3))},
                           {"session": SESSIONS[:4]})


@pytest.mark.parametrize("loss_type, param, message", [
    (pipeline_pb2.LISTWISE_RANK_LOSS, {"session_name": ""},
     r"listwise_rank_loss.session_name is required"),
    (pipeline_pb2.PAIRWISE_HINGE_LOSS, {"ohem_ratio": 0.0}, r"ohem_ratio must be in \(0, 1\]"),
    (pipeline_pb2.PAIRWISE_LOGISTIC_LOSS, {"temperature": 0.0}, r"temperature must be > 0"),
    (pipeline_pb2.PAIRWISE_FOCAL_LOSS, {"gamma": -1.0}, r"gamma must be >= 0"),
    (pipeline_pb2.LISTWISE_DISTILL_LOSS, {"transform_fn": "lambda x: x"}, r"lambda"),
    (pipeline_pb2.LISTWISE_RANK_LOSS, {"transform_fn": "tf.no_such_fn"}, r"not name a callable"),
])
def test_bad_ranking_parameters_are_rejected_naming_the_field(loss_type, param, message):
    block = make_block(loss_type, **param)
    with pytest.raises(ValueError, match=message):
        kd.KdTask([], [block])


def test_loss_param_of_another_type_is_rejected():
    block = make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS)
    block.listwise_rank_loss.session_name = "session"
    with pytest.raises(ValueError, match="listwise_rank_loss does not belong to loss_type "
                                         "PAIRWISE_HINGE_LOSS, got a block. Use pairwise_hinge"):
        kd.KdTask([], [block])


def test_kd_task_checks_pred_name_against_the_models_outputs_before_tracing():
    block = make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS)
    block.pred_name = "logit"
    with pytest.raises(ValueError, match=r"kd\[0\]\.pred_name 'logit'.*logits, probs"):
        kd.KdTask([], [block], prediction_names=["probs", "logits"])


def test_kd_task_accepts_known_prediction_names():
    task = kd.KdTask([("logits", "clk", 1.0)], [make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS)],
                     prediction_names=["probs", "logits"])
    parts = task({"logits": tf.constant(STUDENT)}, {"clk": SPACE, "kd_soft": TEACHER},
                 features=features())
    expected = np_hinge(STUDENT, TEACHER, SESSIONS, ones())
    assert float(parts["kd_loss_logits_kd_soft"]) == pytest.approx(expected, rel=1e-6)


def test_kd_task_names_the_feature_columns_training_must_feed():
    blocks = [make_block(pipeline_pb2.PAIRWISE_HINGE_LOSS, block_fields={
        "sample_weight_name": "w", "task_space_indicator_name": "space",
        "task_space_indicator_value": "1"}),
        make_block(pipeline_pb2.LISTWISE_RANK_LOSS, block_fields={"loss_name": "rank"})]
    assert kd.KdTask([], blocks).feature_names == ["session", "w", "space"]
