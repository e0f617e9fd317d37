"""Tests for recdistill.kd.variants: overrides of the kd blocks, checked at load time."""

import pytest

from recdistill.config import load_config
from recdistill.kd import variants
from recdistill.protos import pipeline_pb2

import toy_models

SECOND_BLOCK = ('kd { pred_name: "logits" soft_label_name: "kd_other" loss_type: L2_LOSS '
                'loss_weight: 0.3 }')


@pytest.fixture
def cfg():
    return load_config(toy_models.config_text(teacher_pred_name="probs"))


@pytest.fixture
def two_blocks():
    text = toy_models.config_text(teacher_pred_name="probs")
    text = text.replace('label_fields: "kd_soft"', 'label_fields: "kd_soft" input_fields { '
                        'input_name: "kd_other" input_type: DOUBLE } label_fields: "kd_other"')
    return load_config(text.replace("loss_type: CROSS_ENTROPY_LOSS }",
                                    "loss_type: CROSS_ENTROPY_LOSS }\n" + SECOND_BLOCK))


def test_parse_takes_json_lists_and_nothing():
    assert variants.parse_variants('[{"loss_weight": 0.5}, {"temperature": 2}]') == [
        {"loss_weight": 0.5}, {"temperature": 2}]
    assert variants.parse_variants("") == variants.parse_variants(None) == []
    assert variants.parse_variants([{"loss_weight": 1}]) == [{"loss_weight": 1}]


@pytest.mark.parametrize("text", ['{"loss_weight": 0.5}', "[1, 2]", "[{loss_weight: 1}]"])
def test_parse_refuses_anything_but_a_list_of_objects(text):
    with pytest.raises(ValueError, match="list of objects"):
        variants.parse_variants(text)


def test_a_variant_overrides_every_block_and_leaves_the_config_alone(cfg, two_blocks):
    out = variants.apply_variant(two_blocks, {"loss_weight": 4, "temperature": 2.5,
                                              "loss_type": "KL_DIVERGENCE_LOSS"})
    for block in out.model_config.kd:
        assert (block.loss_weight, block.temperature) == (4.0, 2.5)
        assert block.loss_type == pipeline_pb2.KL_DIVERGENCE_LOSS
    assert [b.loss_weight for b in two_blocks.model_config.kd] == [1.0, pytest.approx(0.3)]
    assert two_blocks.model_config.kd[0].loss_type == pipeline_pb2.CROSS_ENTROPY_LOSS


def test_kd_block_names_the_one_block_to_override(two_blocks):
    out = variants.apply_variant(two_blocks, {"loss_weight": 7, "kd_block": "kd_other"})
    assert [b.loss_weight for b in out.model_config.kd] == [1.0, 7.0]


@pytest.mark.parametrize("overrides, expected", [
    ({"weight": 1}, r"kd_v3 .*unknown field\(s\) \['weight'\]"),
    ({"loss_weight": "big"}, "kd_v3 .*loss_weight must be a number, got 'big'"),
    ({"loss_weight": -1}, r"kd_v3 .*makes kd\[0\].loss_weight must be >= 0, got -1"),
    ({"loss_type": "HINGE"}, "kd_v3 .*loss_type must be one of L2_LOSS, CROSS_ENTROPY_LOSS"),
    ({"kd_block": "nope"}, r"kd_v3 .*kd_block is 'nope', not a kd block.*\['kd_soft'\]"),
    ({"temperature": 2, "loss_type": "PAIRWISE_LOGISTIC_LOSS"},
     r"kd_v3 .*temperature overrides kd\[0\].temperature, which a PAIRWISE_LOGISTIC_LOSS"),
])
def test_bad_variants_name_the_variant_field_and_value(cfg, overrides, expected):
    with pytest.raises(ValueError, match=expected):
        variants.apply_variant(cfg, overrides, "kd_v3")


def test_a_config_without_kd_has_nothing_to_override():
    with pytest.raises(ValueError, match="no kd block"):
        variants.apply_variant(load_config(toy_models.config_text()), {"loss_weight": 2})


def test_candidates_are_the_configured_student_then_each_variant(cfg):
    assert variants.candidates(cfg, [{"loss_weight": 0.5}, {"temperature": 2}]) == [
        {"name": "kd", "overrides": {}}, {"name": "kd_v1", "overrides": {"loss_weight": 0.5}},
        {"name": "kd_v2", "overrides": {"temperature": 2}}]
    with pytest.raises(ValueError, match="kd_v2"):
        variants.candidates(cfg, [{"loss_weight": 0.5}, {"temperature": "x"}])
