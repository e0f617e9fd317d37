"""The bad-input matrix: one row per case an outside tester tried (issue 15), run for real.

Each row is ``recdistill <argv>`` run through ``cli.main`` (or as a real subprocess when the
row sets ``env`` or ``subprocess``), with the exit code it must end with, a fragment its
message must hold, and the paths that must be unchanged on disk afterwards (byte for byte, or
still absent). Every row also asserts that no raw traceback was printed and (subprocess rows)
that it ended within ``HANG_S``.

Outcomes the matrix tells apart: a clear error (right code + message), a loss (an unchanged
path changed), a silent result (exit 0 where an error was due), a hang, a raw traceback.

Placeholders in argv, unchanged and env: ``{ws}`` the shared read-only workspace (models,
configs, evaluations), ``{tmp}`` the row's own empty folder.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from recdistill import cli, evaluation, exported, push  # noqa: E402
from recdistill.config import load_config  # noqa: E402
from recdistill.data import sample  # noqa: E402

import toy_models  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: A subprocess row that runs longer than this is a hang.
HANG_S = 60


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: tuple
    code: int
    message: str
    unchanged: tuple = ()
    env: tuple = ()  # (name, value) pairs; the row then runs as a subprocess
    subprocess: bool = False
    slow: bool = False


CASES = [
    # ------------------------------------------------ flags (argparse, before anything runs)
    Case("train-negative-num-steps", ("train", "--config", "{ws}/student.config",
                                      "--num-steps", "-5", "--model-dir", "{tmp}/model"),
         2, "argument --num-steps: must be >= 0, got -5", ("{tmp}/model",), subprocess=True),
    Case("train-model-dir-is-a-file", ("train", "--config", "{ws}/student.config",
                                       "--model-dir", "{ws}/a_file"),
         2, "{ws}/a_file is a file, not a folder", ("{ws}/a_file",)),
    Case("push-negative-keep", ("push", "--model", "{ws}/student", "--destination",
                                "{tmp}/serving", "--keep", "-1"),
         2, "argument --keep: must be >= 0, got -1", ("{tmp}/serving",)),
    Case("push-destination-is-a-file", ("push", "--model", "{ws}/student", "--destination",
                                        "{ws}/a_file", "--force"),
         2, "{ws}/a_file is a file, not a folder", ("{ws}/a_file",)),
    Case("evaluate-out-is-a-file", ("evaluate", "--model", "{ws}/student", "--data",
                                    "{ws}/eval.csv", "--config", "{ws}/student.config",
                                    "--out", "{ws}/a_file"),
         2, "{ws}/a_file is a file, not a folder", ("{ws}/a_file",)),
    Case("soft-labels-fraction-above-1", ("soft-labels", "--teacher", "{ws}/student", "--input",
                                          "{ws}/eval.csv", "--output", "{tmp}/soft", "--config",
                                          "{ws}/student.config", "--max-bad-rows-fraction",
                                          "1.5"),
         2, "must be in [0, 1], got 1.5", ("{tmp}/soft",)),
    Case("sample-data-negative-rows", ("sample-data", "--out", "{tmp}/sample", "--rows", "-3"),
         2, "argument --rows: must be >= 1, got -3", ("{tmp}/sample",)),
    Case("sample-data-over-edited-files", ("sample-data", "--out", "{ws}/edited_sample",
                                           "--rows", "300", "--seed", "9"),
         2, "exist with other content", ("{ws}/edited_sample",)),
    Case("unknown-verb", ("trian", "--config", "{ws}/student.config"),
         2, "invalid choice: 'trian'"),
    # ------------------------------------------------ configs
    Case("config-missing-path-with-colon", ("train", "--config", "{tmp}/no/such:x.config"),
         2, "{tmp}/no/such:x.config: no such config file"),
    Case("config-binary", ("train", "--config", "{ws}/binary.config"),
         2, "{ws}/binary.config: not a text config", ("{ws}/binary.config",)),
    Case("submit-parameter-without-value", ("submit", "--host", "http://127.0.0.1:9",
                                            "student_config"),
         2, "pipeline parameter 'student_config' must look like key=value"),
    # ------------------------------------------------ models
    Case("push-model-missing", ("push", "--model", "{tmp}/missing", "--destination",
                                "{tmp}/serving", "--force"),
         2, "{tmp}/missing: no saved_model.pb", ("{tmp}/serving",)),
    Case("push-corrupt-saved-model", ("push", "--model", "{ws}/corrupt", "--destination",
                                      "{tmp}/serving", "--force"),
         2, "{ws}/corrupt/export/saved_model.pb: not a readable SavedModel",
         ("{tmp}/serving", "{ws}/corrupt")),
    Case("push-forced-nan-model", ("push", "--model", "{ws}/nan", "--destination",
                                   "{tmp}/serving", "--force"),
         2, "{ws}/nan/export: the model predicts non-finite", ("{tmp}/serving",)),
    # ------------------------------------------------ trust and retries
    Case("push-hand-written-blessing", ("push", "--model", "{ws}/student", "--destination",
                                        "{tmp}/serving", "--evaluation", "{ws}/hand_written"),
         1, "names no model_digest", ("{tmp}/serving",)),
    Case("push-edited-verdict", ("push", "--model", "{ws}/student", "--destination",
                                 "{tmp}/serving", "--evaluation", "{ws}/edited"),
         1, "its own metrics and thresholds give blessed=False", ("{tmp}/serving",)),
    Case("push-evaluation-of-another-model", ("push", "--model", "{ws}/other", "--destination",
                                              "{tmp}/serving", "--evaluation", "{ws}/blessed"),
         1, "not this model", ("{tmp}/serving",)),
    Case("push-retried-after-success", ("push", "--model", "{ws}/student", "--destination",
                                        "{ws}/serving", "--evaluation", "{ws}/blessed"),
         0, "{ws}/serving/1", ("{ws}/serving",)),
    # ------------------------------------------------ compile
    Case("compile-into-missing-folder", ("compile", "--output", "{tmp}/new/folder/p.yaml"),
         0, "{tmp}/new/folder/p.yaml"),
    Case("compile-output-is-a-folder", ("compile", "--output", "{ws}"),
         2, "--output {ws} is a folder"),
    # ------------------------------------------------ data
    Case("tfrecord-input-on-a-csv-file", ("evaluate", "--model", "{ws}/student", "--data",
                                          "{ws}/eval.csv", "--config", "{ws}/tfrecord.config",
                                          "--out", "{tmp}/evaluation"),
         2, "{ws}/eval.csv", ("{tmp}/evaluation",)),
    Case("csv-header-without-with-header", ("evaluate", "--model", "{ws}/student", "--data",
                                            "{ws}/with_header.csv", "--config",
                                            "{ws}/student.config", "--out", "{tmp}/evaluation"),
         2, "with_header", ("{tmp}/evaluation",)),
    Case("csv-missing-middle-column", ("evaluate", "--model", "{ws}/student", "--data",
                                       "{ws}/no_user.csv", "--config", "{ws}/student.config",
                                       "--out", "{tmp}/evaluation"),
         2, "{ws}/no_user.csv", ("{tmp}/evaluation",)),
    # ------------------------------------------------ evaluation and stores
    Case("evaluate-out-holds-user-files", ("evaluate", "--model", "{ws}/student", "--data",
                                           "{ws}/eval.csv", "--config", "{ws}/student.config",
                                           "--out", "{ws}/user_folder", "--thresholds",
                                           "min_auc: 0.5"),
         2, "{ws}/user_folder", ("{ws}/user_folder",)),
    Case("thresholds-without-space", ("evaluate", "--model", "{ws}/student", "--data",
                                      "{ws}/eval.csv", "--config", "{ws}/student.config",
                                      "--out", "{tmp}/evaluation", "--thresholds",
                                      "min_auc:0.7"),
         2, "min_auc: 0.7", ("{tmp}/evaluation",)),
    Case("push-gcs-unreachable", ("push", "--model", "{ws}/student", "--destination",
                                  "gs://recdistill-bucket/serving", "--force"),
         2, "gs://recdistill-bucket", env=(("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9"),
                                                        ("RECDISTILL_STORE_TIMEOUT_S", "5"))),
]


def _params():
    for case in CASES:
        marks = [pytest.mark.slow] if case.slow else []
        yield pytest.param(case, id=case.id, marks=marks)


def _write_evaluation(folder, metrics):
    os.makedirs(folder)
    with open(os.path.join(folder, evaluation.METRICS_FILE), "w") as f:
        f.write(json.dumps(metrics))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Models, configs, data and evaluations the rows read (none of them writes here)."""
    ws = tmp_path_factory.mktemp("ws")
    table = toy_models.make_table(users=4, rows_per_user=10)
    data = toy_models.write_csv(ws / "eval.csv", table)
    (ws / "student.config").write_text(toy_models.config_text())
    (ws / "binary.config").write_bytes(b"\x1f\x8b\x08\x00\x00binary")
    (ws / "tfrecord.config").write_text(
        toy_models.config_text().replace("input_type: CSVInput", "input_type: TFRecordInput"))
    lines = (ws / "eval.csv").read_text().splitlines()
    (ws / "with_header.csv").write_text("\n".join([",".join(toy_models.COLUMNS), *lines]) + "\n")
    (ws / "no_user.csv").write_text("".join(
        ",".join(v for i, v in enumerate(line.split(",")) if i != 1) + "\n" for line in lines))
    (ws / "a_file").write_text("a user's file")
    (ws / "user_folder").mkdir()
    (ws / "user_folder" / "notes.txt").write_text("keep me")
    edited = sample.write_sample_data(str(ws / "edited_sample"), rows=300, seed=8)
    with open(edited.student_config, "a", encoding="utf-8") as f:
        f.write("# my tuning\n")
    model = toy_models.save_linear(ws / "student", 1.3, -0.2, 0.1)
    toy_models.save_linear(ws / "other", 0.5)
    toy_models.save_linear(ws / "nan", float("nan"))
    corrupt = exported.export_dir(toy_models.save_linear(ws / "corrupt", 1.0))
    (ws / "corrupt" / "export" / exported.SAVED_MODEL_FILE).write_bytes(b"\x08\x01garbage")
    assert os.path.isdir(corrupt)
    cfg = load_config(toy_models.config_text())
    for name, thresholds in (("blessed", {"min_auc": 0.5}), ("not_blessed", {"min_auc": 0.999})):
        evaluation.evaluate(model, data, cfg, thresholds=thresholds, out_dir=str(ws / name))
    _write_evaluation(ws / "hand_written", {"blessed": True})
    edited = json.loads((ws / "not_blessed" / evaluation.METRICS_FILE).read_text())
    edited["blessed"] = edited["blessing"]["blessed"] = True
    _write_evaluation(ws / "edited", edited)
    assert push.push_model(model, str(ws / "serving"), evaluation_dir=str(ws / "blessed")).pushed
    return ws


def _snapshot(path):
    """Path -> sha256 of every file under ``path`` ("absent" when it does not exist)."""
    if not os.path.exists(path):
        return "absent"
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    return {os.path.relpath(os.path.join(d, n), path): _snapshot(os.path.join(d, n))
            for d, _, names in os.walk(path) for n in names}


def _run(case, fill, capsys):
    """(exit code, stdout, stderr) of the row."""
    argv = [fill(a) for a in case.argv]
    if case.env or case.subprocess:
        env = dict(os.environ, PYTHONPATH=REPO, **{k: fill(v) for k, v in case.env})
        env.pop(cli.DEBUG_ENV, None)
        try:
            done = subprocess.run([sys.executable, "-m", "recdistill.cli", *argv], cwd=REPO,
                                  env=env, capture_output=True, timeout=HANG_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hang: {case.id} ran over {HANG_S} s")
        return done.returncode, done.stdout.decode(), done.stderr.decode()
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def _check_row(case, workspace, tmp_path, capsys):
    def fill(text):
        return text.replace("{ws}", str(workspace)).replace("{tmp}", str(tmp_path))

    before = {path: _snapshot(fill(path)) for path in case.unchanged}
    code, out, err = _run(case, fill, capsys)
    assert "Traceback" not in err, f"raw traceback:\n{err[-3000:]}"
    assert code == case.code, f"exit {code}, want {case.code}; stderr: {err[-2000:]}"
    assert fill(case.message) in (out if case.code == 0 else err)
    for path, snapshot in before.items():
        assert _snapshot(fill(path)) == snapshot, f"loss: {fill(path)} changed"


@pytest.mark.parametrize("case", _params())
def test_bad_input(case, workspace, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    _check_row(case, workspace, tmp_path, capsys)


def test_every_row_has_a_distinct_id():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_a_wrong_row_fails(workspace, tmp_path, capsys, monkeypatch):
    """The matrix is not vacuous: a row expecting another outcome fails."""
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    row = next(case for case in CASES if case.id == "push-hand-written-blessing")
    with pytest.raises(AssertionError, match="exit 1, want 0"):
        _check_row(dataclasses.replace(row, code=0), workspace, tmp_path / "a", capsys)
    with pytest.raises(AssertionError, match="loss: .*/s changed"):
        _check_row(dataclasses.replace(row, argv=("compile", "--output", "{tmp}/s/p.yaml"),
                                       code=0, message="", unchanged=("{tmp}/s",)),
                   workspace, tmp_path / "b", capsys)
