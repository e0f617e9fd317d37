"""Tests for recdistill.config: parsing EasyRec configs, path resolution, validation messages."""

import logging
import os
import pathlib

import pytest

from recdistill import config
from recdistill.config import ConfigError, load_config
from recdistill.protos import pipeline_pb2

CONFIGS = pathlib.Path(__file__).parent / "testdata" / "configs"
DSSM_KD = CONFIGS / "easyrec_dssm_kd.config"

# A small valid student; tests edit one line of it and check the line number in the error.
STUDENT = """\
model_dir: "runs/student"
data_config {
  input_fields { input_name: 'clk' input_type: INT32 }
  input_fields { input_name: 'user_id' input_type: STRING }
  input_fields { input_name: 'item_id' input_type: STRING }
  input_fields { input_name: 'price' input_type: DOUBLE }
  input_fields { input_name: 'kd_soft' input_type: DOUBLE }
  input_fields { input_name: 'kd_soft2' input_type: DOUBLE }
  label_fields: ['clk', 'kd_soft', 'kd_soft2']
  batch_size: 64
}
feature_configs { input_names: 'user_id' embedding_dim: 8 hash_bucket_size: 100 }
feature_configs { input_names: 'item_id' embedding_dim: 8 vocab_list: ['a', 'b'] }
feature_configs {
  input_names: 'price'
  feature_type: RawFeature
  boundaries: [1.0, 2.0, 5.0]
}
model_config {
  model_class: "DSSM"
  feature_groups { group_name: 'user' feature_names: 'user_id' }
  feature_groups { group_name: 'item' feature_names: 'item_id' feature_names: 'price' }
  dssm {
    user_tower { id: "user" dnn { hidden_units: [8] } }
    item_tower { id: "item" dnn { hidden_units: [8] } }
  }
  kd {
    soft_label_name: 'kd_soft'
    pred_name: 'logits'
  }
  kd {
    soft_label_name: 'kd_soft2'
    pred_name: 'logits'
    loss_type: L2_LOSS
    loss_weight: 0.5
    temperature: 3.0
  }
}
train_config {
  optimizer_config {
    adam_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.01 } } }
  }
}
"""


def _line_of(text, needle, occurrence=0):
    """1-based line of the occurrence-th line containing needle (worked out independently)."""
    hits = [i + 1 for i, line in enumerate(text.split("\n")) if needle in line]
    return hits[occurrence]


def _errors(text, name="student.config", tmp_path=None):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    return str(path), info.value


# ---------------------------------------------------------------- loading real EasyRec configs


def test_easyrec_dssm_kd_config_loads_and_warns_once_naming_unused_fields(caplog):
    with caplog.at_level(logging.WARNING, logger="recdistill.config"):
        cfg = load_config(str(DSSM_KD))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().endswith(
        "recdistill ignores these EasyRec fields: train_config.optimizer_config[0]."
        "use_moving_average, train_config.sync_replicas, data_config.prefetch_size, export_config")
    assert cfg.model_config.model_class == "DSSM"
    assert cfg.model_config.WhichOneof("model") == "dssm"
    assert config.label_fields(cfg) == ["clk", "kd_soft"]
    assert config.soft_label_fields(cfg) == ["kd_soft"]
    (kd,) = cfg.model_config.kd
    assert (kd.pred_name, kd.loss_weight, kd.temperature) == ("logits", 1.0, 2.0)
    assert kd.loss_type == pipeline_pb2.CROSS_ENTROPY_LOSS
    assert [config.feature_name(fc) for fc in config.all_features(cfg)] == [
        "user_id", "age_level", "occupation", "tag_brand_list", "adgroup_id", "cate_id", "price"]
    assert list(cfg.train_config.optimizer_config[0].adam_optimizer.learning_rate
                .exponential_decay_learning_rate.ListFields()) != []


def test_easyrec_dssm_tower_ids_name_features_so_towers_read_user_and_item_groups():
    cfg = load_config(str(DSSM_KD))
    assert cfg.model_config.dssm.user_tower.id == "user_id"
    assert config.dssm_tower_group(cfg, "user_tower") == "user"
    assert config.dssm_tower_group(cfg, "item_tower") == "item"


def test_dssm_tower_id_naming_a_group_picks_that_group():
    text = STUDENT.replace("group_name: 'user'", "group_name: 'u'").replace(
        'id: "user"', 'id: "u"')
    cfg = load_config(text)
    assert config.dssm_tower_group(cfg, "user_tower") == "u"
    assert config.dssm_tower_group(cfg, "item_tower") == "item"


@pytest.mark.parametrize("name,model_class,block", [
    ("easyrec_dcn_teacher.config", "DCN", "dcn"),
    ("easyrec_deepfm_teacher.config", "DeepFM", "deepfm"),
])
def test_teacher_configs_load(name, model_class, block):
    cfg = load_config(str(CONFIGS / name))
    assert cfg.model_config.model_class == model_class
    assert cfg.model_config.WhichOneof("model") == block
    assert config.label_fields(cfg) == ["clk"]
    assert config.soft_label_fields(cfg) == []
    assert [config.feature_name(fc) for fc in config.all_features(cfg)] == [
        "user_id", "adgroup_id", "cate_id", "price"]


def test_dcn_teacher_reads_feature_config_features_spelling():
    cfg = load_config(str(CONFIGS / "easyrec_dcn_teacher.config"))
    assert len(cfg.feature_configs) == 0
    assert len(cfg.feature_config.features) == 4
    assert cfg.model_config.dcn.cross_tower.cross_num == 3


# ---------------------------------------------------------------- defaults, kd blocks, helpers


def test_kd_defaults_match_easyrec():
    cfg = load_config(STUDENT)
    kd = cfg.model_config.kd[0]
    assert kd.pred_is_logits is True
    assert kd.label_is_logits is True
    assert kd.loss_weight == 1.0
    assert kd.temperature == 1.0
    assert kd.loss_type == pipeline_pb2.CROSS_ENTROPY_LOSS


def test_multiple_kd_blocks_keep_their_own_settings():
    cfg = load_config(STUDENT)
    first, second = cfg.model_config.kd
    assert (first.soft_label_name, first.loss_weight, first.temperature) == ("kd_soft", 1.0, 1.0)
    assert (second.soft_label_name, second.loss_weight, second.temperature) == ("kd_soft2", 0.5, 3.0)
    assert second.loss_type == pipeline_pb2.L2_LOSS
    assert config.soft_label_fields(cfg) == ["kd_soft", "kd_soft2"]


def test_soft_label_fields_lists_a_shared_soft_label_once():
    cfg = load_config(STUDENT.replace("soft_label_name: 'kd_soft2'", "soft_label_name: 'kd_soft'"))
    assert config.soft_label_fields(cfg) == ["kd_soft"]


def test_input_field_finds_the_field_and_lists_valid_ones_when_missing():
    cfg = load_config(STUDENT)
    assert config.input_field(cfg, "price").input_type == pipeline_pb2.DatasetConfig.DOUBLE
    with pytest.raises(ValueError, match=r"no field 'nope'; valid: clk, user_id, item_id, price"):
        config.input_field(cfg, "nope")


def test_feature_name_prefers_feature_name_over_first_input():
    fc = pipeline_pb2.FeatureConfig(input_names=["a", "b"])
    assert config.feature_name(fc) == "a"
    fc.feature_name = "a_b"
    assert config.feature_name(fc) == "a_b"
    with pytest.raises(ValueError, match="neither feature_name nor input_names"):
        config.feature_name(pipeline_pb2.FeatureConfig())


def test_to_text_round_trips():
    cfg = load_config(str(DSSM_KD))
    again = load_config(config.to_text(cfg))
    assert again == cfg


# ---------------------------------------------------------------- paths and inputs


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    text = DSSM_KD.read_text().replace(
        'eval_input_path: "data/taobao_eval_kd"', 'eval_input_path: "gs://bkt/eval/*.csv"')
    (folder / "s.config").write_text(text)
    cfg = load_config(str(folder / "s.config"))
    assert cfg.train_input_path == str(folder / "data" / "taobao_train_kd")
    assert cfg.eval_input_path == "gs://bkt/eval/*.csv"
    assert cfg.model_dir == str(folder / "experiments" / "dssm_kd_student")
    assert cfg.feature_configs[2].vocab_file == str(folder / "vocab" / "occupation.txt")
    assert not cfg.feature_configs[0].HasField("vocab_file")


def test_absolute_paths_are_left_alone_and_relative_config_path_works(tmp_path, monkeypatch):
    (tmp_path / "c.config").write_text(STUDENT.replace('"runs/student"', '"/abs/student"'))
    monkeypatch.chdir(tmp_path)
    cfg = load_config("c.config")
    assert cfg.model_dir == "/abs/student"


def test_path_objects_and_file_paths_load_the_same_as_text(tmp_path):
    path = tmp_path / "student.config"
    path.write_text(STUDENT)
    from_text = load_config(STUDENT)
    from_file = load_config(path)
    assert from_file.model_dir == str(tmp_path / "runs" / "student")
    assert from_text.model_dir == os.path.join(os.getcwd(), "runs", "student")
    from_file.model_dir = from_text.model_dir
    assert from_file == from_text


def test_text_errors_are_named_text_and_file_errors_name_the_file(tmp_path):
    bad = STUDENT.replace("temperature: 3.0", "temperature: -1.0")
    line = _line_of(bad, "temperature: -1.0")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == (f"<text>:{line}: model_config.kd[1].temperature must be >= 0, "
                               f"got -1.0. Use 1.0 (or 0) for no softening.")
    path, error = _errors(bad, tmp_path=tmp_path)
    assert str(error) == str(info.value).replace("<text>", path)


def test_missing_config_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such config file"):
        load_config(str(tmp_path / "missing.config"))


# ---------------------------------------------------------------- parse errors


def test_unknown_field_is_a_parse_error_naming_file_line_and_field(tmp_path):
    bad = STUDENT.replace("temperature: 3.0", "temprature: 3.0")
    path, error = _errors(bad, tmp_path=tmp_path)
    line = _line_of(bad, "temprature")
    (message,) = error.problems
    assert message.startswith(f"{path}:{line}: model_config.kd[1].temprature: Message type "
                              f'"recdistill.KD" has no field named "temprature".')
    assert "Valid fields of KD: loss_name, pred_name," in message


def test_wrong_value_type_is_a_parse_error_naming_the_field(tmp_path):
    bad = STUDENT.replace("batch_size: 64", "batch_size: 'many'")
    path, error = _errors(bad, tmp_path=tmp_path)
    line = _line_of(bad, "batch_size")
    assert str(error).startswith(f"{path}:{line}: data_config.batch_size: ")
    assert "many" in str(error)


def test_unknown_enum_value_lists_valid_values(tmp_path):
    bad = STUDENT.replace("loss_type: L2_LOSS", "loss_type: L3_LOSS")
    path, error = _errors(bad, tmp_path=tmp_path)
    line = _line_of(bad, "L3_LOSS")
    assert str(error).startswith(f"{path}:{line}: model_config.kd[1].loss_type: ")
    assert "Valid values: CLASSIFICATION, L2_LOSS," in str(error)


def test_unknown_top_level_field_is_an_error(tmp_path):
    bad = STUDENT.replace("model_dir:", "model_directory:")
    path, error = _errors(bad, tmp_path=tmp_path)
    assert str(error).startswith(f"{path}:1: model_directory: ")


# ---------------------------------------------------------------- semantic errors


def _one_error(tmp_path, old, new, needle, occurrence=0):
    """Edits STUDENT, loads it and returns (expected '<file>:<line>: ' prefix, the one problem)."""
    assert old in STUDENT
    bad = STUDENT.replace(old, new, 1)
    path, error = _errors(bad, tmp_path=tmp_path)
    assert len(error.problems) == 1, error.problems
    return f"{path}:{_line_of(bad, needle, occurrence)}: ", error.problems[0]


@pytest.mark.parametrize("old,new,needle,expected", [
    ('model_class: "DSSM"', 'model_class: "DIN"', "model_class",
     "model_config.model_class must be one of DSSM, DCN, DeepFM, GBDT, got 'DIN'."),
    ('model_class: "DSSM"', 'model_class: "DCN"', "model_config {",
     "model_config needs a `dcn { ... }` block for model_class 'DCN', got 'dssm'."),
    ("temperature: 3.0", "temperature: -1.0", "temperature",
     "model_config.kd[1].temperature must be >= 0, got -1.0. Use 1.0 (or 0) for no softening."),
    ("loss_weight: 0.5", "loss_weight: -0.5", "loss_weight",
     "model_config.kd[1].loss_weight must be >= 0, got -0.5."),
    ("loss_type: L2_LOSS", "loss_type: CIRCLE_LOSS", "CIRCLE_LOSS",
     "model_config.kd[1].loss_type must be one of L2_LOSS, CROSS_ENTROPY_LOSS, "
     "PAIRWISE_FOCAL_LOSS, PAIRWISE_LOGISTIC_LOSS, BINARY_CROSS_ENTROPY_LOSS, KL_DIVERGENCE_LOSS, "
     "PAIRWISE_HINGE_LOSS, LISTWISE_RANK_LOSS, LISTWISE_DISTILL_LOSS, "
     "LISTWISE_CALIBRATED_DISTILL_LOSS, got CIRCLE_LOSS."),
    ("soft_label_name: 'kd_soft2'", "soft_label_name: 'kd_soft3'", "kd_soft3",
     "model_config.kd[1].soft_label_name must be one of data_config.label_fields, got 'kd_soft3'. "
     "Valid: clk, kd_soft, kd_soft2; add it to label_fields."),
    ("    pred_name: 'logits'\n    loss_type", "    loss_type", "  kd {",
     "model_config.kd[1].pred_name is required, got nothing."),
    ("  batch_size: 64\n", "  batch_size: 64\n  input_type: OdpsInputV2\n", "OdpsInputV2",
     "data_config.input_type is not a format recdistill reads, got OdpsInputV2. Use one of "
     "CSVInput, CSVInputV2, CSVInputEx, ParquetInput, TFRecordInput, BatchTFRecordInput."),
])
def test_semantic_errors_name_file_line_field_value_and_fix(tmp_path, old, new, needle, expected):
    occurrence = 1 if needle == "  kd {" else 0
    prefix, problem = _one_error(tmp_path, old, new, needle, occurrence)
    assert problem.startswith(prefix + expected), problem


@pytest.mark.parametrize("input_type", ["CSVInputV2", "CSVInputEx", "BatchTFRecordInput"])
def test_every_easyrec_type_of_a_supported_format_loads(input_type):
    cfg = load_config(STUDENT.replace("  batch_size: 64\n",
                                      f"  batch_size: 64\n  input_type: {input_type}\n"))
    assert pipeline_pb2.DatasetConfig.InputType.Name(cfg.data_config.input_type) == input_type


def test_missing_soft_label_name_points_at_the_kd_block(tmp_path):
    prefix, problem = _one_error(tmp_path, "    soft_label_name: 'kd_soft'\n", "", "  kd {")
    assert problem.startswith(prefix + "model_config.kd[0].soft_label_name is required, got nothing.")


def test_label_fields_must_be_input_fields(tmp_path):
    bad = STUDENT.replace("['clk', 'kd_soft', 'kd_soft2']", "['clk', 'kd_sofft', 'kd_soft2']")
    path, error = _errors(bad, tmp_path=tmp_path)
    line = _line_of(bad, "label_fields")
    assert error.problems[0] == (
        f"{path}:{line}: data_config.label_fields[1] must name an input field, got 'kd_sofft'. "
        f"Valid input fields: clk, user_id, item_id, price, kd_soft, kd_soft2.")
    # kd[0].soft_label_name 'kd_soft' is then not a label field either: both are reported.
    assert error.problems[1].startswith(f"{path}:{_line_of(bad, 'soft_label_name')}: "
                                        "model_config.kd[0].soft_label_name must be one of")


def test_label_fields_must_not_be_empty(tmp_path):
    text = (CONFIGS / "easyrec_dcn_teacher.config").read_text()
    bad = text.replace("  label_fields: 'clk'\n", "")
    path, error = _errors(bad, tmp_path=tmp_path)
    assert error.problems == [
        f"{path}:{_line_of(bad, 'data_config')}: data_config.label_fields must name at least one "
        f"label, got nothing. Add label_fields: ['<label>'] from the input fields: clk, user_id, "
        f"adgroup_id, cate_id, price."]


def test_feature_input_names_must_be_input_fields(tmp_path):
    prefix, problem = _one_error(tmp_path, "input_names: 'user_id' embedding_dim",
                                 "feature_name: 'user_id' input_names: 'uid' embedding_dim",
                                 "'uid'")
    assert problem.startswith(prefix + "feature_configs[0].input_names[0] must name an input "
                              "field, got 'uid'. Valid input fields: clk, user_id,")


def test_feature_names_must_be_unique(tmp_path):
    bad = STUDENT.replace("input_names: 'item_id' embedding_dim",
                          "input_names: 'item_id' feature_name: 'user_id' embedding_dim")
    path, error = _errors(bad, tmp_path=tmp_path)
    assert f"{path}:{_line_of(bad, 'feature_configs', 1)}: feature_configs[1] repeats the feature " \
           f"name used by feature_configs[0], got 'user_id'." in error.problems[0]


def test_feature_group_names_must_be_features(tmp_path):
    prefix, problem = _one_error(tmp_path, "feature_names: 'price'", "feature_names: 'cost'",
                                 "'cost'")
    assert problem == (prefix + "model_config.feature_groups[1].feature_names[1] must name a "
                       "feature, got 'cost'. Valid features: user_id, item_id, price.")


def test_id_feature_needs_a_vocabulary_and_an_embedding_dim(tmp_path):
    bad = STUDENT.replace("embedding_dim: 8 hash_bucket_size: 100", "")
    path, error = _errors(bad, tmp_path=tmp_path)
    line = _line_of(bad, "input_names: 'user_id'")
    assert error.problems == [
        f"{path}:{line}: feature_configs[0] (IdFeature) needs a vocabulary, got none. Set one of "
        f"hash_bucket_size, num_buckets, vocab_list or vocab_file.",
        f"{path}:{line}: feature_configs[0].embedding_dim must be > 0 for a IdFeature, got 0. "
        f"Set embedding_dim, e.g. 16.",
    ]


def test_tag_feature_is_checked_like_id_feature(tmp_path):
    prefix, problem = _one_error(tmp_path, "input_names: 'item_id' embedding_dim: 8",
                                 "input_names: 'item_id' feature_type: TagFeature embedding_dim: 0",
                                 "TagFeature")
    assert problem.startswith(prefix + "feature_configs[1].embedding_dim must be > 0 for a "
                              "TagFeature, got 0.")


def test_raw_feature_boundaries_must_increase(tmp_path):
    prefix, problem = _one_error(tmp_path, "[1.0, 2.0, 5.0]", "[1.0, 5.0, 5.0]", "boundaries")
    assert problem.startswith(prefix + "feature_configs[2].boundaries must be strictly "
                              "increasing, got [1.0, 5.0, 5.0].")


def test_dssm_tower_must_find_a_group(tmp_path):
    bad = STUDENT.replace("group_name: 'user'", "group_name: 'users'")
    path, error = _errors(bad, tmp_path=tmp_path)
    assert error.problems == [
        f"{path}:{_line_of(bad, 'user_tower')}: model_config.dssm.user_tower.id must name a "
        f"feature group (or a group 'user' must exist, as EasyRec's DSSM reads), got 'user'. "
        f"Valid feature groups: users, item."]


def test_dcn_towers_must_name_feature_groups(tmp_path):
    text = (CONFIGS / "easyrec_dcn_teacher.config").read_text()
    bad = text.replace('input: "all"\n      cross_num', 'input: "everything"\n      cross_num')
    path, error = _errors(bad, tmp_path=tmp_path)
    assert error.problems == [
        f"{path}:{_line_of(bad, 'everything')}: model_config.dcn.cross_tower.input must name a "
        f"feature group, got 'everything'. Valid feature groups: all."]


def test_task_tower_label_must_be_a_label_field(tmp_path):
    prefix, problem = _one_error(
        tmp_path, "  kd {\n", "  task_towers { tower_name: 'ctr' label_name: 'buy' }\n  kd {\n",
        "task_towers")
    assert problem == (prefix + "model_config.task_towers[0].label_name must be a label field, "
                       "got 'buy'. Valid label_fields: clk, kd_soft, kd_soft2.")


def test_optimizer_needs_adam_with_a_learning_rate(tmp_path):
    prefix, problem = _one_error(tmp_path, "learning_rate { constant_learning_rate "
                                 "{ learning_rate: 0.01 } }", "learning_rate { }", "adam_optimizer")
    assert problem.startswith(prefix + "train_config.optimizer_config[0].adam_optimizer."
                              "learning_rate must set constant_learning_rate or "
                              "exponential_decay_learning_rate, got nothing.")
    bad = STUDENT.replace("optimizer_config {\n    adam_optimizer { learning_rate { "
                          "constant_learning_rate { learning_rate: 0.01 } } }\n  }",
                          "optimizer_config { use_moving_average: true }")
    path, error = _errors(bad, tmp_path=tmp_path)
    assert error.problems == [
        f"{path}:{_line_of(bad, 'optimizer_config')}: train_config.optimizer_config[0] must set "
        f"adam_optimizer, got nothing. Add adam_optimizer {{ learning_rate {{ "
        f"constant_learning_rate {{ }} }} }}."]


def test_batch_size_must_be_positive(tmp_path):
    prefix, problem = _one_error(tmp_path, "batch_size: 64", "batch_size: 0", "batch_size")
    assert problem == prefix + "data_config.batch_size must be > 0, got 0. Set a positive " \
                               "batch size, e.g. 1024."


def test_every_problem_is_reported_at_once(tmp_path):
    bad = (STUDENT.replace("temperature: 3.0", "temperature: -2.0")
           .replace("loss_weight: 0.5", "loss_weight: -1.0")
           .replace("batch_size: 64", "batch_size: 0")
           .replace("feature_names: 'price'", "feature_names: 'cost'")
           .replace("[1.0, 2.0, 5.0]", "[3.0, 2.0]"))
    path, error = _errors(bad, tmp_path=tmp_path)
    assert [p.split(": ", 1)[1].split(" ")[0] for p in error.problems] == [
        "data_config.batch_size",
        "feature_configs[2].boundaries",
        "model_config.feature_groups[1].feature_names[1]",
        "model_config.kd[1].temperature",
        "model_config.kd[1].loss_weight",
    ]
    assert str(error).count("\n") == 4
    assert all(p.startswith(path + ":") for p in error.problems)


def test_unused_fields_warn_but_do_not_fail(caplog):
    text = STUDENT.replace("batch_size: 64", "batch_size: 64\n  shard: true") + \
        "export_config { exporter_type: 'final' }\n"
    with caplog.at_level(logging.WARNING, logger="recdistill.config"):
        load_config(text)
    (record,) = caplog.records
    assert record.getMessage() == ("<text>: recdistill ignores these EasyRec fields: "
                                   "data_config.shard, export_config")


def test_no_warning_when_no_unused_field_is_set(caplog):
    with caplog.at_level(logging.WARNING, logger="recdistill.config"):
        load_config(STUDENT)
    assert caplog.records == []


def test_field_lines_follow_nesting_and_repeated_indices():
    text = 'a: 1\nmodel_config {\n  kd {\n    pred_name: "x"\n  }\n  kd <\n    pred_name: "y"\n  >\n}\n'
    lines = config._field_lines(text)
    assert lines["model_config.kd[0].pred_name"] == 4
    assert lines["model_config.kd[1]"] == 6
    assert lines["model_config.kd[1].pred_name"] == 7
    # The unknown top-level name 'a' is still recorded, as a singular path.
    assert lines["a"] == 1


def test_config_imports_nothing_from_recdistill_but_protos_and_kd_rules():
    import subprocess
    import sys

    code = ("import sys, recdistill.config; "
            "print(sorted(m for m in sys.modules if m.startswith('recdistill')), "
            "'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(
        ["recdistill", "recdistill.config", "recdistill.kd", "recdistill.kd.params",
         "recdistill.protos", "recdistill.protos.pipeline_pb2"])) + " False"


def test_without_kd_drops_kd_blocks_and_soft_label_fields():
    cfg = config.load_config(str(DSSM_KD))
    assert cfg.model_config.kd and "kd_soft" in config.label_fields(cfg)

    plain = config.without_kd(cfg)

    assert len(plain.model_config.kd) == 0
    assert "kd_soft" not in config.label_fields(plain)
    assert "kd_soft" not in [f.input_name for f in plain.data_config.input_fields]
    assert config.label_fields(plain) == [n for n in config.label_fields(cfg) if n != "kd_soft"]
    assert len(cfg.model_config.kd) == 1  # the original is untouched


def test_config_on_gcs_loads_with_paths_relative_to_its_gcs_folder(gcs_bucket):
    from recdistill.data import filesystems

    text = DSSM_KD.read_text()
    uri = f"{gcs_bucket}/configs/student.config"
    with filesystems.open_output(uri) as f:
        f.write(text.encode())

    cfg = load_config(uri)

    assert cfg.model_config == load_config(str(DSSM_KD)).model_config
    # The file says train_input_path: "data/taobao_train_kd".
    assert cfg.train_input_path == f"{gcs_bucket}/configs/data/taobao_train_kd"


def test_missing_gcs_config_names_the_uri(gcs_bucket):
    with pytest.raises(FileNotFoundError, match=f"{gcs_bucket}/nope.config"):
        load_config(f"{gcs_bucket}/nope.config")
