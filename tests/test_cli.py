"""The recdistill command: the pipeline's verbs chained by hand on a tiny sample."""

import json
import os

import pytest

from recdistill import cli, exported


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
    assert metrics["model_digest"] == exported.model_digest(str(student_dir))

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
    retried = _run(capsys, "push", "--model", student_dir, "--destination",
                   tmp_path / "serving", "--evaluation", evaluation).strip()
    assert retried == pushed and sorted(os.listdir(tmp_path / "serving")) == [
        ".claims", "1", "CHAMPION"]


def test_pipeline_parameters_must_be_key_value(capsys):
    assert cli.main(["submit", "--host", "http://127.0.0.1:9", "student_config"]) == 2
    assert "recdistill submit: error: pipeline parameter 'student_config' must look like " \
        "key=value" in capsys.readouterr().err


def test_bad_input_exits_2_with_the_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "student.config"
    bad.write_text("model_config { model_class: 'DSSM' kd { temperature: -1 } }\n")

    assert cli.main(["train", "--config", str(bad)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("recdistill train: error: ")
    assert f"{bad}:1: model_config.kd[0].temperature must be >= 0, got -1" in err
    assert "Traceback" not in err


def _every_action(parser):
    for action in parser._actions:
        yield parser.prog, action
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict):
                yield from _every_action(action.choices[sub])


def test_every_flag_has_help_text():
    actions = list(_every_action(cli.build_parser()))
    assert {"recdistill push", "recdistill schedule"} <= {prog for prog, _ in actions}
    missing = [f"{prog} {action.dest}" for prog, action in actions
               if not (action.help and action.help.strip())]
    assert missing == []


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--config", "c", "--num-steps", "-5"], "--num-steps: must be >= 0, got -5"),
    (["train", "--config", "c", "--num-steps", "x"], "'x' is not an integer"),
    (["push", "--model", "m", "--destination", "d", "--keep", "-1"], "must be >= 0, got -1"),
    (["soft-labels", "--teacher", "t", "--input", "i", "--output", "o", "--config", "c",
      "--max-bad-rows-fraction", "1.5"], "must be in [0, 1], got 1.5"),
    (["run", "--kd-variants", '{"loss_weight": 2}'], "kd variants must be a list of objects"),
    (["select", "--config", "c", "--candidate", "kd", "--baseline", "b", "--validation", "v",
      "--out", "o"], "expected NAME=MODEL"),
])
def test_bad_flag_values_are_refused_before_anything_runs(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert fragment in capsys.readouterr().err


def _bad_config_run(tmp_path, capsys, *flags, env_debug=None, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setenv(cli.DEBUG_ENV, env_debug)
    missing = tmp_path / "no" / "such:student.config"
    status = cli.main([*flags, "train", "--config", str(missing)])
    return status, capsys.readouterr().err, missing


def test_expected_errors_are_one_line_and_debug_adds_the_traceback(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    status, err, missing = _bad_config_run(tmp_path, capsys)
    assert status == 2
    assert err == f"recdistill train: error: {missing}: no such config file. Pass an existing " \
                  "path or the config text itself.\n"
    for flags, env in (((("--debug",)), None), ((), "1")):
        status, err, _ = _bad_config_run(tmp_path, capsys, *flags, env_debug=env,
                                         monkeypatch=monkeypatch if env else None)
        assert status == 2 and "Traceback (most recent call last)" in err
        assert err.rstrip().endswith(f"{missing}: no such config file. Pass an existing path "
                                     "or the config text itself.")


def test_debug_is_accepted_after_the_verb_too(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    status = cli.main(["train", "--debug", "--config", str(tmp_path / "missing.config")])
    assert status == 2 and "Traceback" in capsys.readouterr().err


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug, not bad input")

    monkeypatch.setattr(cli, "_compile", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["compile"])


def test_compile_creates_the_output_folder(tmp_path, capsys):
    output = tmp_path / "new" / "folder" / "pipeline.yaml"
    assert cli.main(["compile", "--output", str(output)]) == 0
    assert capsys.readouterr().out.strip() == str(output)
    assert output.read_text().startswith("# Generated by `recdistill compile`")
    assert cli.main(["compile", "--output", str(tmp_path)]) == 2
    assert f"--output {tmp_path} is a folder" in capsys.readouterr().err


def test_binary_config_is_named_not_parsed(tmp_path, capsys):
    binary = tmp_path / "student.config"
    binary.write_bytes(b"\x1f\x8b\x08\x00gzip bytes")
    assert cli.main(["train", "--config", str(binary)]) == 2
    assert f"{binary}: not a text config (binary byte at offset 1)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--config", "c", "--cross-fit-fold", "2", "--cross-fit-folds", "2"],
     "--cross-fit-fold 2 needs --cross-fit-folds K >= 2 and > the fold, got 2"),
    (["train", "--config", "c", "--cross-fit-folds", "3"],
     "train a fold teacher only with --cross-fit-fold k"),
])
def test_cross_fit_flags_that_do_not_fit_exit_2_naming_the_fix(argv, fragment, capsys):
    assert cli.main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_a_validation_fraction_off_the_percent_grid_fails_before_the_run(capsys, monkeypatch):
    from pipelines import local_run

    monkeypatch.setattr(local_run, "run_local", lambda *a, **k: pytest.fail("the run started"))
    assert cli.main(["run", "--validation-fraction", "0.125"]) == 2
    assert "validation_fraction must be in [0, 0.5] in steps of 0.01, got 0.125" in \
        capsys.readouterr().err


def test_run_forwards_the_validation_split_and_refuses_an_unknown_one(capsys, monkeypatch):
    from pipelines import local_run

    calls = []
    monkeypatch.setattr(local_run, "run_local", lambda *a, **k: calls.append(k))
    monkeypatch.setattr(local_run, "format_summary", lambda run: "summary")
    assert cli.main(["run", "--validation-split", "time", "--validation-key", "ts"]) == 0
    assert (calls[0]["validation_split"], calls[0]["validation_key"]) == ("time", "ts")
    with pytest.raises(SystemExit):
        cli.main(["run", "--validation-split", "day"])
    assert "invalid choice: 'day'" in capsys.readouterr().err


def test_select_picks_on_the_validation_rows_and_writes_the_chosen_export(tmp_path, capsys):
    import toy_models

    table = toy_models.make_table(users=30, rows_per_user=8)
    data = toy_models.write_csv(tmp_path / "valid.csv", table)
    config = tmp_path / "student.config"
    config.write_text(toy_models.config_text(teacher_pred_name="probs"))
    weak, strong = (toy_models.save_linear(tmp_path / n, *w)
                    for n, w in (("weak", (0.2, -0.3)), ("strong", (1.5, 0.5))))
    out = tmp_path / "chosen"
    result = json.loads(_run(capsys, "select", "--config", config, "--candidate",
                             f"kd={weak}", "--baseline", strong, "--validation", data,
                             "--out", out))
    assert (result["chosen"], result["model"]) == ("baseline", strong)
    assert json.loads((out / "selection.json").read_text())["chosen"] == "baseline"
    assert exported.load_exported(str(out)).uri.startswith(str(out))


def test_train_kd_overrides_is_one_variant_checked_like_kd_variants(capsys, tmp_path):
    import toy_models

    config = tmp_path / "student.config"
    config.write_text(toy_models.config_text(teacher_pred_name="probs"))
    assert cli.main(["train", "--config", str(config), "--kd-overrides",
                     '{"loss_wieght": 2}']) == 2
    assert "loss_wieght" in capsys.readouterr().err
    parsed = cli.build_parser().parse_args(["train", "--config", "c", "--kd-overrides",
                                            '{"temperature": 2}'])
    assert parsed.kd_overrides == {"temperature": 2}
