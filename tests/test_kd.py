"""Tests for recdistill.kd: every expected value is worked out independently in numpy."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from recdistill import kd  # noqa: E402
from recdistill.protos import pipeline_pb2  # noqa: E402

EPS = 1e-7
CE = pipeline_pb2.CROSS_ENTROPY_LOSS
BCE = pipeline_pb2.BINARY_CROSS_ENTROPY_LOSS
KL = pipeline_pb2.KL_DIVERGENCE_LOSS
L2 = pipeline_pb2.L2_LOSS

# Student and teacher logits: binary columns and a 3-class batch (4 rows).
STUDENT_BINARY = np.array([0.3, -1.2, 2.0, 0.1])
TEACHER_BINARY = np.array([1.1, -0.4, 0.7, -2.2])
STUDENT_MULTI = np.array([[0.2, 1.5, -0.3], [2.0, 0.1, 0.4], [-1.0, 0.0, 1.0], [0.5, 0.5, -2.0]])
TEACHER_MULTI = np.array([[1.0, 0.2, -0.5], [0.3, 1.7, 0.2], [-0.2, 0.4, 2.1], [1.2, -0.3, 0.0]])


# ------------------------------------------------------------------ numpy reference
def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_soften_probs(p, temperature, multi_class):
    """Teacher/student probabilities after the temperature, written as powers.

    sigmoid(logit(p) / T) = p^(1/T) / (p^(1/T) + (1-p)^(1/T)), and
    softmax(log(p + eps) / T) = (p + eps)^(1/T) / sum((p + eps)^(1/T)).
    """
    inv = 1.0 / temperature if temperature > 0 else 1.0
    if multi_class:
        powered = (p + EPS) ** inv
        return powered / powered.sum(axis=-1, keepdims=True)
    p = np.clip(p, EPS, 1 - EPS)
    return p**inv / (p**inv + (1 - p) ** inv)


def np_soften_logits(z, temperature, multi_class):
    z = z / temperature if temperature > 0 else z
    return np_softmax(z) if multi_class else np_sigmoid(z)


def np_kd_loss(loss_type, student, teacher, *, is_logits, temperature, multi_class):
    """Expected kd loss (weight 1) from the documented EasyRec formulas."""
    if loss_type == L2:
        return np.mean((student - teacher) ** 2)
    soften = np_soften_logits if is_logits else np_soften_probs
    # BCE converts every column independently, i.e. like the binary case.
    binary_view = multi_class and loss_type != BCE
    q = soften(teacher, temperature, binary_view)
    p = soften(student, temperature, binary_view)
    if loss_type == BCE:
        return np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p)))
    if loss_type == CE:
        return np.mean(-q * np.log(p + EPS) - (1 - q) * np.log(1 - p + EPS))
    if not multi_class:
        q = np.stack([1 - q, q], axis=-1)
        p = np.stack([1 - p, p], axis=-1)
    q, p = np.clip(q, EPS, 1), np.clip(p, EPS, 1)
    return np.mean(np.sum(q * np.log(q / p), axis=-1))


# ------------------------------------------------------------------ helpers
def make_block(text="", **fields):
    block = text_format.Parse(text, pipeline_pb2.KD())
    for name, value in fields.items():
        setattr(block, name, value)
    return block


def inputs(shape, is_logits):
    """Student/teacher arrays for a shape case, as logits or as probabilities."""
    if shape == "multi":
        student, teacher = STUDENT_MULTI, TEACHER_MULTI
        if not is_logits:
            student, teacher = np_softmax(student), np_softmax(teacher)
    else:
        student, teacher = STUDENT_BINARY, TEACHER_BINARY
        if not is_logits:
            student, teacher = np_sigmoid(student), np_sigmoid(teacher)
        if shape == "column":
            student, teacher = student[:, None], teacher[:, None]
    return student, teacher


def one_loss(block, student, teacher):
    losses = kd.build_kd_losses(
        [block],
        {block.pred_name: tf.constant(student, tf.float32)},
        {block.soft_label_name: teacher},
    )
    assert list(losses) == [kd.kd_loss_name(block)]
    return float(losses[kd.kd_loss_name(block)])


# ------------------------------------------------------------------ loss values
@pytest.mark.parametrize("temperature", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("shape", ["rank1", "column", "multi"])
@pytest.mark.parametrize("is_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("loss_type", [CE, BCE, KL], ids=["CE", "BCE", "KL"])
def test_kd_loss_matches_numpy_formula(loss_type, is_logits, shape, temperature):
    block = make_block(
        pred_name="logits" if is_logits else "probs",
        soft_label_name="kd_soft",
        loss_type=loss_type,
        temperature=temperature,
        pred_is_logits=is_logits,
        label_is_logits=is_logits,
    )
    student, teacher = inputs(shape, is_logits)
    expected = np_kd_loss(
        loss_type, student, teacher, is_logits=is_logits, temperature=temperature,
        multi_class=shape == "multi",
    )
    assert one_loss(block, student, teacher) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("shape", ["rank1", "column", "multi"])
def test_l2_loss_is_mean_squared_error_on_raw_values_ignoring_temperature(shape):
    block = make_block(pred_name="probs", soft_label_name="kd_soft", loss_type=L2,
                       temperature=4.0, pred_is_logits=False, label_is_logits=False)
    student, teacher = inputs(shape, is_logits=False)
    expected = np.mean((student - teacher) ** 2)
    assert one_loss(block, student, teacher) == pytest.approx(expected, rel=1e-5)
    assert one_loss(block, np.array([1.0, 2.0]), np.array([0.0, 4.0])) == pytest.approx(2.5)


def test_bce_of_zero_logits_is_log_two():
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=BCE)
    assert one_loss(block, np.zeros(3), np.zeros(3)) == pytest.approx(np.log(2.0), rel=1e-6)


def test_student_logits_against_teacher_probabilities_mixes_conversions():
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=KL,
                       temperature=2.0, label_is_logits=False)
    teacher_probs = np_softmax(TEACHER_MULTI)
    q = np_soften_probs(teacher_probs, 2.0, multi_class=True)
    p = np_soften_logits(STUDENT_MULTI, 2.0, multi_class=True)
    expected = np.mean(np.sum(q * np.log(q / p), axis=-1))
    assert one_loss(block, STUDENT_MULTI, teacher_probs) == pytest.approx(expected, rel=1e-5)


def test_multi_class_ce_is_elementwise_log_loss_like_easyrec():
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=CE)
    q, p = np_softmax(TEACHER_MULTI), np_softmax(STUDENT_MULTI)
    elementwise = np.mean(-q * np.log(p) - (1 - q) * np.log(1 - p))
    categorical = np.mean(-np.sum(q * np.log(p), axis=-1))
    got = one_loss(block, STUDENT_MULTI, TEACHER_MULTI)
    assert got == pytest.approx(elementwise, rel=1e-5)
    assert got != pytest.approx(categorical, rel=1e-2)


@pytest.mark.parametrize("shape", ["rank1", "column", "multi"])
@pytest.mark.parametrize("is_logits", [True, False], ids=["logits", "probs"])
def test_kl_loss_is_zero_when_student_matches_teacher(is_logits, shape):
    block = make_block(pred_name="p", soft_label_name="t", loss_type=KL, temperature=3.0,
                       pred_is_logits=is_logits, label_is_logits=is_logits)
    student, _ = inputs(shape, is_logits)
    assert one_loss(block, student, student.copy()) == pytest.approx(0.0, abs=1e-6)


def test_kl_on_column_tensors_equals_kl_on_rank1_tensors():
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=KL)
    rank1 = one_loss(block, STUDENT_BINARY, TEACHER_BINARY)
    column = one_loss(block, STUDENT_BINARY[:, None], TEACHER_BINARY[:, None])
    q, p = np_sigmoid(TEACHER_BINARY), np_sigmoid(STUDENT_BINARY)
    expected = np.mean(q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p)))
    assert rank1 == pytest.approx(expected, rel=1e-5)
    assert column == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ the EasyRec fixes
def test_ce_on_probabilities_equals_true_binary_cross_entropy():
    block = make_block(pred_name="probs", soft_label_name="kd_soft", loss_type=CE,
                       pred_is_logits=False, label_is_logits=False)
    q = np.array([0.9, 0.2, 0.6, 0.05])
    p = np.array([0.7, 0.4, 0.5, 0.1])
    true_bce = np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p)))
    # EasyRec's log(p) conversion would compare p / (1 + p) instead of p.
    easyrec_q, easyrec_p = q / (1 + q), p / (1 + p)
    easyrec = np.mean(-(easyrec_q * np.log(easyrec_p) + (1 - easyrec_q) * np.log(1 - easyrec_p)))
    got = one_loss(block, p, q)
    assert got == pytest.approx(true_bce, rel=1e-5)
    assert got != pytest.approx(easyrec, rel=1e-2)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_binary_ce_gradient_reaches_student_and_matches_numpy(temperature):
    weight = 0.5
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=CE,
                       temperature=temperature, loss_weight=weight)
    student = tf.Variable(STUDENT_BINARY, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = kd.build_kd_losses([block], {"logits": student}, {"kd_soft": TEACHER_BINARY})
        value = loss["kd_loss_logits_kd_soft"]
    gradient = tape.gradient(value, student).numpy()
    # d/ds mean(-q log sigmoid(s/T) - (1-q) log(1 - sigmoid(s/T))) = (sigmoid(s/T) - q) / (T B)
    q = np_sigmoid(TEACHER_BINARY / temperature)
    expected = weight * (np_sigmoid(STUDENT_BINARY / temperature) - q) / (temperature * len(q))
    assert np.all(np.abs(gradient) > 1e-3)
    np.testing.assert_allclose(gradient, expected, rtol=1e-4)


# ------------------------------------------------------------------ weights, names, T^2
def test_loss_weight_scales_the_loss():
    base = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=BCE, temperature=2.0)
    weighted = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=BCE,
                          temperature=2.0, loss_weight=0.3)
    expected = np_kd_loss(BCE, STUDENT_BINARY, TEACHER_BINARY, is_logits=True, temperature=2.0,
                          multi_class=False)
    assert one_loss(base, STUDENT_BINARY, TEACHER_BINARY) == pytest.approx(expected, rel=1e-5)
    got = one_loss(weighted, STUDENT_BINARY, TEACHER_BINARY)
    assert got == pytest.approx(0.3 * expected, rel=1e-5)


@pytest.mark.parametrize("loss_type", [CE, BCE, KL], ids=["CE", "BCE", "KL"])
def test_scale_by_temperature_squared_multiplies_by_t_squared(loss_type):
    plain = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=loss_type,
                       temperature=3.0, loss_weight=0.5)
    scaled = make_block("scale_by_temperature_squared: true", pred_name="logits",
                        soft_label_name="kd_soft", loss_type=loss_type, temperature=3.0,
                        loss_weight=0.5)
    expected = 0.5 * np_kd_loss(loss_type, STUDENT_MULTI, TEACHER_MULTI, is_logits=True,
                                temperature=3.0, multi_class=True)
    assert one_loss(plain, STUDENT_MULTI, TEACHER_MULTI) == pytest.approx(expected, rel=1e-5)
    assert one_loss(scaled, STUDENT_MULTI, TEACHER_MULTI) == pytest.approx(9 * expected, rel=1e-5)


def test_temperature_zero_means_no_division_and_no_t_squared_scaling():
    zero = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=KL,
                      temperature=0.0, scale_by_temperature_squared=True)
    one = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=KL, temperature=1.0)
    assert one_loss(zero, STUDENT_MULTI, TEACHER_MULTI) == pytest.approx(
        one_loss(one, STUDENT_MULTI, TEACHER_MULTI), rel=1e-6)


def test_default_loss_name_joins_pred_and_soft_label_and_replaces_slashes():
    block = make_block('pred_name: "tower/logits" soft_label_name: "teacher/kd_soft"')
    assert kd.kd_loss_name(block) == "kd_loss_tower_logits_teacher_kd_soft"
    named = make_block(loss_name="my/kd", pred_name="a", soft_label_name="b")
    assert kd.kd_loss_name(named) == "my/kd"
    losses = kd.build_kd_losses([block], {"tower/logits": tf.constant(STUDENT_BINARY)},
                                {"teacher/kd_soft": TEACHER_BINARY})
    assert list(losses) == ["kd_loss_tower_logits_teacher_kd_soft"]


def test_several_blocks_give_one_loss_each_in_block_order():
    blocks = [
        make_block(pred_name="probs", soft_label_name="soft_probs", loss_type=L2,
                   pred_is_logits=False, label_is_logits=False),
        make_block(pred_name="logits", soft_label_name="soft_logits", loss_type=KL, loss_name="kl"),
    ]
    predictions = {
        "logits": tf.constant(STUDENT_BINARY),
        "probs": tf.constant(np_sigmoid(STUDENT_BINARY)),
    }
    labels = {"soft_logits": TEACHER_BINARY, "soft_probs": np_sigmoid(TEACHER_BINARY)}
    losses = kd.build_kd_losses(blocks, predictions, labels)
    assert list(losses) == ["kd_loss_probs_soft_probs", "kl"]
    assert float(losses["kd_loss_probs_soft_probs"]) == pytest.approx(
        np.mean((np_sigmoid(STUDENT_BINARY) - np_sigmoid(TEACHER_BINARY)) ** 2), rel=1e-5)


# ------------------------------------------------------------------ robust inputs
@pytest.mark.parametrize(
    "student_shape, teacher_shape, teacher_dtype",
    [((4,), (4, 1), np.float64), ((4, 1), (4,), np.float64), ((4, 1), (4, 1), np.float32)],
)
def test_soft_labels_are_cast_and_reshaped_to_the_prediction(
    student_shape, teacher_shape, teacher_dtype
):
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=BCE)
    expected = np_kd_loss(BCE, STUDENT_BINARY, TEACHER_BINARY, is_logits=True, temperature=1.0,
                          multi_class=False)
    got = one_loss(block, STUDENT_BINARY.reshape(student_shape),
                   TEACHER_BINARY.reshape(teacher_shape).astype(teacher_dtype))
    assert got == pytest.approx(expected, rel=1e-5)


def test_half_precision_predictions_are_computed_in_float32():
    block = make_block(pred_name="probs", soft_label_name="kd_soft", loss_type=KL,
                       pred_is_logits=False, label_is_logits=False)
    student = np.array([1e-9, 0.3, 0.999, 0.5])
    teacher = np.array([0.2, 0.3, 0.9, 0.5])
    losses = kd.build_kd_losses([block], {"probs": tf.constant(student, tf.float16)},
                                {"kd_soft": teacher})
    value = losses["kd_loss_probs_kd_soft"]
    expected = np_kd_loss(KL, student.astype(np.float16).astype(np.float64), teacher,
                          is_logits=False, temperature=1.0, multi_class=False)
    assert value.dtype == tf.float32
    assert float(value) == pytest.approx(expected, rel=1e-4)


def test_losses_build_inside_tf_function():
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=CE, temperature=2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3]), tf.TensorSpec([None, 3], tf.float64)])
    def step(student, teacher):
        return kd.build_kd_losses([block], {"logits": student}, {"kd_soft": teacher})

    got = step(tf.constant(STUDENT_MULTI, tf.float32), tf.constant(TEACHER_MULTI))
    expected = np_kd_loss(CE, STUDENT_MULTI, TEACHER_MULTI, is_logits=True, temperature=2.0,
                          multi_class=True)
    assert float(got["kd_loss_logits_kd_soft"]) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ errors
def test_unknown_pred_name_lists_every_prediction_sorted():
    block = make_block(pred_name="logit", soft_label_name="kd_soft")
    predictions = {"probs": tf.zeros([2]), "logits": tf.zeros([2]), "embedding": tf.zeros([2, 4])}
    with pytest.raises(ValueError, match=r"kd\[0\]\.pred_name 'logit'.*embedding, logits, probs"):
        kd.build_kd_losses([block], predictions, {"kd_soft": np.zeros(2)})


def test_missing_soft_label_lists_available_labels():
    block = make_block(pred_name="logits", soft_label_name="kd_soft")
    labels = {"clk": np.zeros(2), "buy": np.zeros(2)}
    message = r"kd\[0\]\.soft_label_name 'kd_soft'.*available labels: buy, clk"
    with pytest.raises(ValueError, match=message):
        kd.build_kd_losses([block], {"logits": tf.zeros([2])}, labels)


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"loss_type": pipeline_pb2.CLASSIFICATION},
            r"loss_type must be one of .*CROSS_ENTROPY_LOSS.*got CLASSIFICATION",
        ),
        ({"temperature": -1.0}, r"temperature must be >= 0, got -1\.0"),
        ({"loss_type": L2, "scale_by_temperature_squared": True}, r"scale_by_temperature_squared"),
    ],
)
def test_invalid_block_settings_are_rejected_with_the_field(fields, message):
    block = make_block(pred_name="logits", soft_label_name="kd_soft", **fields)
    with pytest.raises(ValueError, match=message):
        kd.build_kd_losses([block], {"logits": tf.zeros([2])}, {"kd_soft": np.zeros(2)})


def test_soft_label_with_other_class_count_is_rejected():
    block = make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=KL)
    with pytest.raises(ValueError, match=r"'kd_soft' has shape \(4, 2\).*\(4, 3\)"):
        kd.build_kd_losses(
            [block], {"logits": tf.constant(STUDENT_MULTI)}, {"kd_soft": np.zeros((4, 2))}
        )


def test_two_blocks_with_the_same_loss_name_are_rejected():
    block = make_block(pred_name="logits", soft_label_name="kd_soft")
    message = r"kd\[1\] loss name 'kd_loss_logits_kd_soft' is already used"
    with pytest.raises(ValueError, match=message):
        kd.build_kd_losses([block, block], {"logits": tf.zeros([2])}, {"kd_soft": np.zeros(2)})


# ------------------------------------------------------------------ KdTask
def np_sigmoid_xent(labels, logits):
    p = np_sigmoid(logits)
    return np.mean(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def test_kd_task_total_is_weighted_hard_losses_plus_kd_losses_plus_regularization():
    clk = np.array([1, 0, 1, 0], dtype=np.int64)
    buy = np.array([[0.0], [0.0], [1.0], [0.0]])
    ctr_logits = STUDENT_BINARY
    cvr_logits = np.array([-1.0, 0.5, 0.2, -0.3])
    block = make_block(pred_name="logits_ctr", soft_label_name="kd_soft", loss_type=KL,
                       temperature=2.0, loss_weight=0.7)
    task = kd.KdTask([("logits_ctr", "clk", 1.0), kd.HardTarget("logits_cvr", "buy", 0.5)], [block])
    parts = task(
        {
            "logits_ctr": tf.constant(ctr_logits[:, None], tf.float32),
            "logits_cvr": tf.constant(cvr_logits),
        },
        {"clk": clk, "buy": buy, "kd_soft": TEACHER_BINARY},
        regularization=tf.constant(0.125),
    )
    hard_clk = np_sigmoid_xent(clk, ctr_logits)
    hard_buy = np_sigmoid_xent(buy[:, 0], cvr_logits)
    kd_value = 0.7 * np_kd_loss(KL, ctr_logits, TEACHER_BINARY, is_logits=True, temperature=2.0,
                                multi_class=False)
    assert list(parts) == ["hard_loss_clk", "hard_loss_buy", "kd_loss_logits_ctr_kd_soft",
                           "regularization", "loss"]
    assert float(parts["hard_loss_clk"]) == pytest.approx(hard_clk, rel=1e-5)
    assert float(parts["hard_loss_buy"]) == pytest.approx(hard_buy, rel=1e-5)
    assert float(parts["kd_loss_logits_ctr_kd_soft"]) == pytest.approx(kd_value, rel=1e-5)
    assert float(parts["regularization"]) == pytest.approx(0.125)
    total = hard_clk + 0.5 * hard_buy + kd_value + 0.125
    assert float(parts["loss"]) == pytest.approx(total, rel=1e-5)


def test_kd_task_without_kd_blocks_or_regularization_is_the_hard_loss():
    task = kd.KdTask([("logits", "clk", 2.0)])
    clk = np.array([0.0, 1.0, 1.0, 0.0])
    parts = task({"logits": tf.constant(STUDENT_BINARY)}, {"clk": clk})
    assert list(parts) == ["hard_loss_clk", "loss"]
    expected = 2.0 * np_sigmoid_xent(clk, STUDENT_BINARY)
    assert float(parts["loss"]) == pytest.approx(expected, rel=1e-5)


def test_kd_task_gradient_combines_hard_and_soft_terms():
    student = tf.Variable(STUDENT_BINARY, dtype=tf.float32)
    clk = np.array([1.0, 0.0, 0.0, 1.0])
    task = kd.KdTask([("logits", "clk", 1.0)],
                     [make_block(pred_name="logits", soft_label_name="kd_soft", loss_type=BCE)])
    with tf.GradientTape() as tape:
        total = task({"logits": student}, {"clk": clk, "kd_soft": TEACHER_BINARY})["loss"]
    p = np_sigmoid(STUDENT_BINARY)
    expected = ((p - clk) + (p - np_sigmoid(TEACHER_BINARY))) / len(clk)
    np.testing.assert_allclose(tape.gradient(total, student).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "targets, blocks, message",
    [
        ([("logits", "clk", 1.0), ("logits2", "clk", 1.0)], [], r"'hard_loss_clk' is used twice"),
        (
            [("logits", "clk", 1.0)],
            [make_block(pred_name="p", soft_label_name="s", loss_name="loss")],
            r"'loss' is used twice",
        ),
        ([("logits", "clk", -1.0)], [], r"targets\[0\] \('clk'\) weight must be >= 0"),
    ],
)
def test_kd_task_rejects_bad_construction(targets, blocks, message):
    with pytest.raises(ValueError, match=message):
        kd.KdTask(targets, blocks)


def test_kd_task_rejects_multi_class_hard_target_and_lists_missing_labels():
    with pytest.raises(ValueError, match=r"targets\[0\]\.pred_name 'logits' has shape \(4, 3\)"):
        task = kd.KdTask([("logits", "clk", 1.0)])
        task({"logits": tf.constant(STUDENT_MULTI)}, {"clk": np.zeros(4)})
    with pytest.raises(ValueError, match=r"targets\[0\]\.label_name 'clk'.*available labels: buy"):
        kd.KdTask([("logits", "clk", 1.0)])({"logits": tf.zeros([4])}, {"buy": np.zeros(4)})
