"""The recdistill command: the pipeline's verbs chained by hand on a tiny sample."""

import json
import os

import pytest

from recdistill import cli


def _run(capsys, *argv):
    assert cli.main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_verbs_chain_from_sample_data_to_a_pushed_model(tmp_path, capsys):
    sample = json.loads(_run(capsys, "sample-data", "--out", tmp_path / "s", "--rows", 1500))
    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"

    out = json.loads(_run(capsys, "train", "--config", sample["teacher_config"],
                          "--model-dir", teacher_dir, "--num-steps", 40))
    # The sample teacher stops early at its best eval AUC, so 40 steps is an upper bound.
    assert 0 < out["steps"] <= 40
    assert os.path.exists(os.path.join(out["export_dir"], "saved_model.pb"))

    soft = tmp_path / "soft"
    stats = json.loads(_run(capsys, "soft-labels", "--teacher", teacher_dir, "--input",
                            sample["train_path"], "--output", soft, "--config",
                            sample["student_config"], "--", "--direct_num_workers=1"))
    assert stats["rows_read"] == stats["rows_written"] == 1200

    _run(capsys, "train", "--config", sample["student_config"], "--train", soft,
         "--eval", sample["eval_path"], "--model-dir", student_dir, "--num-steps", 40)

    evaluation = tmp_path / "evaluation"
    verdict = json.loads(_run(capsys, "evaluate", "--model", student_dir, "--data",
                              sample["eval_path"], "--config", sample["student_config"], "--out",
                              evaluation, "--teacher", teacher_dir, "--thresholds",
                              '{"min_auc": 0.0}'))
    assert verdict["blessed"] is True
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert set(metrics["models"]) == {"student", "teacher"}

    # Not blessed: nothing pushed, exit 1 with the reason.
    refused = tmp_path / "refused"
    _run(capsys, "evaluate", "--model", student_dir, "--data", sample["eval_path"], "--config",
         sample["student_config"], "--out", refused)  # no thresholds: not blessed
    assert cli.main(["push", "--model", str(student_dir), "--destination",
                     str(tmp_path / "serving"), "--evaluation", str(refused)]) == 1
    assert "recdistill push: not pushed: " in capsys.readouterr().err
    assert not (tmp_path / "serving").exists() or not os.listdir(tmp_path / "serving")

    pushed = _run(capsys, "push", "--model", student_dir, "--destination", tmp_path / "serving",
                  "--evaluation", evaluation).strip()
    assert pushed == str(tmp_path / "serving" / "1")
    assert os.path.exists(os.path.join(pushed, "saved_model.pb"))


def test_pipeline_parameters_must_be_key_value():
    with pytest.raises(SystemExit, match="'student_config' must look like key=value"):
        cli.main(["submit", "--host", "http://127.0.0.1:9", "student_config"])


def test_bad_input_exits_2_with_the_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "student.config"
    bad.write_text("model_config { model_class: 'DSSM' kd { temperature: -1 } }\n")

    assert cli.main(["train", "--config", str(bad)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("recdistill train: error: ")
    assert f"{bad}:1: model_config.kd[0].temperature must be >= 0, got -1" in err
    assert "Traceback" not in err
