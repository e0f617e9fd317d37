"""recdistill's KD message, LossType enum and loss parameter messages against EasyRec's.

The tables are facts read from alibaba/EasyRec at commit
bd230cb1a3eeb1112f35597aede4c23880804d88 (2025-12-19): easy_rec/python/protos/loss.proto and
the KD message of easy_rec/python/protos/easy_rec_model.proto. A name, number, type or default
that drifts from them makes an EasyRec config (text, numeric enum or binary) mean something
else here.
"""

import pytest
from google.protobuf import descriptor

from recdistill.kd import params
from recdistill.protos import pipeline_pb2

EASYREC_COMMIT = "bd230cb1a3eeb1112f35597aede4c23880804d88"

EASYREC_LOSS_TYPES = {
    "CLASSIFICATION": 0, "L2_LOSS": 1, "SIGMOID_L2_LOSS": 2, "CROSS_ENTROPY_LOSS": 3,
    "SOFTMAX_CROSS_ENTROPY": 4, "CIRCLE_LOSS": 5, "MULTI_SIMILARITY_LOSS": 6,
    "SOFTMAX_CROSS_ENTROPY_WITH_NEGATIVE_MINING": 7, "PAIR_WISE_LOSS": 8,
    "F1_REWEIGHTED_LOSS": 9, "BINARY_FOCAL_LOSS": 10, "PAIRWISE_FOCAL_LOSS": 11,
    "PAIRWISE_LOGISTIC_LOSS": 12, "PAIRWISE_HINGE_LOSS": 17, "JRC_LOSS": 13,
    "ORDER_CALIBRATE_LOSS": 14, "BINARY_CROSS_ENTROPY_LOSS": 15, "KL_DIVERGENCE_LOSS": 16,
    "LISTWISE_RANK_LOSS": 18, "LISTWISE_DISTILL_LOSS": 19, "ZILN_LOSS": 20,
}

# field: (number, type, default); default None = no explicit default in EasyRec.
F, S, B, U, E, M = "float", "string", "bool", "uint32", "enum", "message"
EASYREC_KD = {
    "loss_name": (10, S, None), "pred_name": (11, S, None), "pred_is_logits": (12, B, True),
    "soft_label_name": (21, S, None), "label_is_logits": (22, B, True),
    "loss_type": (3, E, None), "loss_weight": (4, F, 1.0), "temperature": (5, F, 1.0),
    "task_space_indicator_name": (6, S, None), "task_space_indicator_value": (7, S, None),
    "in_task_space_weight": (8, F, 1.0), "out_task_space_weight": (9, F, 1.0),
    "f1_reweighted_loss": (101, M, "F1ReweighedLoss"),
    "softmax_loss": (102, M, "SoftmaxCrossEntropyWithNegativeMining"),
    "circle_loss": (103, M, "CircleLoss"), "multi_simi_loss": (104, M, "MultiSimilarityLoss"),
    "binary_focal_loss": (105, M, "BinaryFocalLoss"), "pairwise_loss": (106, M, "PairwiseLoss"),
    "pairwise_focal_loss": (107, M, "PairwiseFocalLoss"),
    "pairwise_logistic_loss": (108, M, "PairwiseLogisticLoss"),
    "jrc_loss": (109, M, "JRCLoss"), "pairwise_hinge_loss": (110, M, "PairwiseHingeLoss"),
    "listwise_rank_loss": (111, M, "ListwiseRankLoss"),
    "listwise_distill_loss": (112, M, "ListwiseDistillLoss"),
}
EASYREC_ONEOF = [name for name, (_, kind, _) in EASYREC_KD.items() if kind == M]

EASYREC_PARAMS = {
    "F1ReweighedLoss": {"f1_beta_square": (1, F, 1.0), "label_smoothing": (2, F, 0.0)},
    "SoftmaxCrossEntropyWithNegativeMining": {
        "num_negative_samples": (1, U, None), "margin": (2, F, 0.0), "gamma": (3, F, 1.0),
        "coefficient_of_support_vector": (4, F, 1.0)},
    "CircleLoss": {"margin": (1, F, 0.25), "gamma": (2, F, 32.0)},
    "MultiSimilarityLoss": {"alpha": (1, F, 2.0), "beta": (2, F, 50.0), "lamb": (3, F, 1.0),
                            "eps": (4, F, 0.1)},
    "BinaryFocalLoss": {"gamma": (1, F, 2.0), "alpha": (2, F, None), "ohem_ratio": (3, F, 1.0),
                        "label_smoothing": (4, F, 0.0)},
    "PairwiseLoss": {"margin": (1, F, 0.0), "session_name": (2, S, None),
                     "temperature": (3, F, 1.0)},
    "PairwiseFocalLoss": {"gamma": (1, F, 2.0), "alpha": (2, F, None),
                          "hinge_margin": (3, F, 1.0), "session_name": (4, S, None),
                          "ohem_ratio": (5, F, 1.0), "temperature": (6, F, 1.0)},
    "PairwiseLogisticLoss": {"temperature": (1, F, 1.0), "session_name": (2, S, None),
                             "hinge_margin": (3, F, None), "ohem_ratio": (4, F, 1.0),
                             "use_label_margin": (5, B, False)},
    "PairwiseHingeLoss": {"temperature": (1, F, 1.0), "session_name": (2, S, None),
                          "margin": (3, F, 1.0), "ohem_ratio": (4, F, 1.0),
                          "label_is_logits": (5, B, True), "use_label_margin": (6, B, True),
                          "use_exponent": (7, B, False)},
    "JRCLoss": {"session_name": (1, S, None), "alpha": (2, F, 0.5),
                "same_label_loss": (3, B, True), "loss_weight_strategy": (4, S, "fixed")},
    "ListwiseRankLoss": {"temperature": (1, F, 1.0), "session_name": (2, S, None),
                         "transform_fn": (3, S, None), "label_is_logits": (4, B, False),
                         "scale_logits": (5, B, False)},
    "ListwiseDistillLoss": {"temperature": (1, F, 1.0), "session_name": (2, S, None),
                            "transform_fn": (3, S, None), "label_clip_max_value": (4, F, 512.0),
                            "scale_logits": (5, B, False)},
}

# recdistill's own KD fields and enum value: none may take a number EasyRec uses.
RECDISTILL_KD = {"scale_by_temperature_squared": 60, "teacher_pred_name": 61,
                 "sample_weight_name": 62, "listwise_calibrated_distill_loss": 500}
RECDISTILL_LOSS_TYPES = {"LISTWISE_CALIBRATED_DISTILL_LOSS": 100}

_TYPES = {descriptor.FieldDescriptor.TYPE_FLOAT: F, descriptor.FieldDescriptor.TYPE_STRING: S,
          descriptor.FieldDescriptor.TYPE_BOOL: B, descriptor.FieldDescriptor.TYPE_UINT32: U,
          descriptor.FieldDescriptor.TYPE_ENUM: E, descriptor.FieldDescriptor.TYPE_MESSAGE: M}


def _assert_field(field, number, kind, default):
    assert field.number == number, field.full_name
    assert _TYPES[field.type] == kind, field.full_name
    if kind == M:
        assert field.message_type.name == default, field.full_name
    elif default is None:
        assert not field.has_default_value, field.full_name
    else:
        assert field.has_default_value and field.default_value == pytest.approx(default), \
            field.full_name


def test_loss_type_names_and_numbers_are_easyrecs():
    ours = {v.name: v.number for v in pipeline_pb2.LossType.DESCRIPTOR.values}
    assert ours == {**EASYREC_LOSS_TYPES, **RECDISTILL_LOSS_TYPES}
    assert not set(RECDISTILL_LOSS_TYPES.values()) & set(EASYREC_LOSS_TYPES.values())


@pytest.mark.parametrize("name", sorted(EASYREC_KD))
def test_kd_field_matches_easyrec(name):
    number, kind, default = EASYREC_KD[name]
    field = pipeline_pb2.KD.DESCRIPTOR.fields_by_name[name]
    if name == "loss_type":  # required in EasyRec (so always given); defaulted here.
        assert field.number == number and field.default_value == pipeline_pb2.CROSS_ENTROPY_LOSS
        return
    _assert_field(field, number, kind, default)


def test_kd_loss_param_oneof_holds_easyrecs_blocks_plus_recdistills():
    oneof = pipeline_pb2.KD.DESCRIPTOR.oneofs_by_name["loss_param"]
    assert [f.name for f in oneof.fields] == EASYREC_ONEOF + ["listwise_calibrated_distill_loss"]


def test_recdistill_kd_fields_avoid_easyrec_numbers():
    fields = pipeline_pb2.KD.DESCRIPTOR.fields_by_name
    assert {name: fields[name].number for name in RECDISTILL_KD} == RECDISTILL_KD
    assert not set(RECDISTILL_KD.values()) & {n for n, _, _ in EASYREC_KD.values()}
    assert set(fields) == set(EASYREC_KD) | set(RECDISTILL_KD)


@pytest.mark.parametrize("message", sorted(EASYREC_PARAMS))
def test_loss_param_message_matches_easyrec(message):
    fields = pipeline_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_name
    assert set(fields) == set(EASYREC_PARAMS[message])
    for name, (number, kind, default) in EASYREC_PARAMS[message].items():
        _assert_field(fields[name], number, kind, default)


def test_kd_loss_types_are_the_pointwise_pairwise_and_listwise_ones():
    assert params.KD_LOSS_TYPES == (
        "L2_LOSS", "CROSS_ENTROPY_LOSS", "PAIRWISE_FOCAL_LOSS", "PAIRWISE_LOGISTIC_LOSS",
        "BINARY_CROSS_ENTROPY_LOSS", "KL_DIVERGENCE_LOSS", "PAIRWISE_HINGE_LOSS",
        "LISTWISE_RANK_LOSS", "LISTWISE_DISTILL_LOSS", "LISTWISE_CALIBRATED_DISTILL_LOSS")


@pytest.mark.parametrize("name", params.KD_LOSS_TYPES)
def test_every_ranking_kd_type_has_its_loss_param_field(name):
    loss_type = pipeline_pb2.LossType.Value(name)
    field = params.param_field(loss_type)
    if params.kd_grouping(loss_type) == params.POINTWISE:
        assert field is None
    else:
        oneof = pipeline_pb2.KD.DESCRIPTOR.oneofs_by_name["loss_param"]
        assert field in [f.name for f in oneof.fields]


def test_numeric_loss_type_reads_as_easyrec_means_it():
    from google.protobuf import text_format
    block = text_format.Parse("pred_name: 'logits' soft_label_name: 't' loss_type: 17",
                              pipeline_pb2.KD())
    assert block.loss_type == pipeline_pb2.PAIRWISE_HINGE_LOSS
