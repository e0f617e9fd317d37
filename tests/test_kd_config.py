"""kd blocks in a config: EasyRec's ranking kd loads, and its mistakes are caught at load time."""

import pytest

from recdistill.config import ConfigError, load_config

BASE = """\
data_config {
  input_fields { input_name: 'clk' input_type: INT32 }
  input_fields { input_name: 'user_id' input_type: STRING }
  input_fields { input_name: 'item_id' input_type: STRING }
  input_fields { input_name: 'kd_soft' input_type: DOUBLE }
  input_fields { input_name: 'weight' input_type: DOUBLE }
  label_fields: ['clk', 'kd_soft']
}
feature_configs { input_names: 'user_id' embedding_dim: 8 hash_bucket_size: 100 }
feature_configs { input_names: 'item_id' embedding_dim: 8 hash_bucket_size: 100 }
model_config {
  model_class: "DSSM"
  feature_groups { group_name: 'user' feature_names: 'user_id' }
  feature_groups { group_name: 'item' feature_names: 'item_id' }
  dssm {
    user_tower { id: "user" dnn { hidden_units: [8] } }
    item_tower { id: "item" dnn { hidden_units: [8] } }
  }
  kd {
    pred_name: 'logits'
    soft_label_name: 'kd_soft'
KD_BODY
  }
}
train_config {
  optimizer_config {
    adam_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.01 } } }
  }
}
"""


def _load(tmp_path, body):
    path = tmp_path / "kd.config"
    path.write_text(BASE.replace("KD_BODY", body))
    return load_config(str(path))


def _problems(tmp_path, body):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body)
    return info.value.problems


def test_easyrec_pairwise_and_listwise_kd_blocks_load(tmp_path):
    cfg = _load(tmp_path, """
    loss_type: PAIRWISE_HINGE_LOSS
    task_space_indicator_name: 'item_id'
    task_space_indicator_value: 'a'
    out_task_space_weight: 0.5
    pairwise_hinge_loss { session_name: 'user_id' margin: 0.5 use_exponent: true }""")
    block = cfg.model_config.kd[0]
    assert block.pairwise_hinge_loss.session_name == "user_id"
    assert block.pairwise_hinge_loss.temperature == 1.0  # EasyRec's default
    assert block.out_task_space_weight == 0.5


def test_listwise_kd_without_session_name_is_a_load_error(tmp_path):
    (problem,) = _problems(tmp_path, "    loss_type: LISTWISE_RANK_LOSS")
    assert ("model_config.kd[0].listwise_rank_loss.session_name is required for "
            "LISTWISE_RANK_LOSS, got nothing.") in problem


@pytest.mark.parametrize("body, field", [
    ("loss_type: PAIRWISE_LOGISTIC_LOSS\n pairwise_logistic_loss { session_name: 'query' }",
     "pairwise_logistic_loss.session_name"),
    ("sample_weight_name: 'w'", "sample_weight_name"),
    ("task_space_indicator_name: 'space'\n task_space_indicator_value: '1'",
     "task_space_indicator_name"),
])
def test_kd_columns_must_be_input_fields(tmp_path, body, field):
    (problem,) = _problems(tmp_path, body)
    assert f"model_config.kd[0].{field} must name a data_config input field" in problem
    assert "Valid: clk, user_id, item_id, kd_soft, weight" in problem


def test_every_kd_problem_is_reported_at_once(tmp_path):
    problems = _problems(tmp_path, """
    loss_type: PAIRWISE_FOCAL_LOSS
    listwise_rank_loss { }""")
    assert len(problems) == 1 and "listwise_rank_loss does not belong to loss_type " \
        "PAIRWISE_FOCAL_LOSS" in problems[0]
    problems = _problems(tmp_path, """
    loss_type: PAIRWISE_FOCAL_LOSS
    pairwise_focal_loss { ohem_ratio: 1.5 gamma: -1 temperature: 0 }""")
    assert [p.split(": ", 1)[1].split(" ")[0] for p in problems] == [
        "model_config.kd[0].pairwise_focal_loss.temperature",
        "model_config.kd[0].pairwise_focal_loss.ohem_ratio",
        "model_config.kd[0].pairwise_focal_loss.gamma"]
