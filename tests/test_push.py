"""Tests for recdistill.push: versions, blessing and digest gate, atomicity under kill -9,
concurrent pushers, retries and NaN models, local and gs://."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from recdistill import evaluation, exported, push  # noqa: E402
from recdistill.config import load_config  # noqa: E402
from recdistill.data import filesystems, json_files  # noqa: E402

import toy_models  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WX, WZ, B = 1.3, -0.2, 0.1


def evaluate_into(out_dir, model, data, thresholds):
    """Runs the real evaluation (its metrics.json names the model's digest)."""
    evaluation.evaluate(model, data, load_config(toy_models.config_text()),
                        thresholds=thresholds, out_dir=str(out_dir))
    return str(out_dir)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A student export, a blessed and a not-blessed evaluation of it, and the eval data."""
    root = tmp_path_factory.mktemp("push")
    table = toy_models.make_table(users=6, rows_per_user=20)
    data = toy_models.write_csv(root / "eval" / "part-00000.csv", table)
    model = toy_models.save_linear(root / "student", WX, WZ, B)
    blessed = evaluate_into(root / "eval_blessed", model, data, {"min_auc": 0.5})
    not_blessed = evaluate_into(root / "eval_not_blessed", model, data, {"min_auc": 0.999})
    return {"root": root, "table": table, "data": data, "model": model, "blessed": blessed,
            "not_blessed": not_blessed}


def other_model(toy, name, wx):
    """Another blessed model (different weights, so a different digest) and its evaluation."""
    model = toy_models.save_linear(toy["root"] / name, wx, WZ, B)
    return model, evaluate_into(toy["root"] / f"eval_{name}", model, toy["data"],
                                {"min_auc": 0.5})


def assert_same_predictions(version_uri, table):
    """The pushed copy predicts what the toy weights say on a few eval rows."""
    rows = {k: v[:7] for k, v in table.items()}
    probs = exported.load_exported(version_uri).predict(rows)["probs"]
    np.testing.assert_allclose(probs, toy_models.linear_probs(rows, WX, WZ, B), rtol=1e-6)


def version_names(destination):
    return sorted(n for n in filesystems.listdir(destination) if n.isdigit())


# ---------------------------------------------------------------- local


def test_push_copies_a_blessed_model_as_version_1_and_makes_it_champion(toy, tmp_path):
    dest = str(tmp_path / "serving")
    result = push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"])
    assert result.pushed and result.version == 1 and result.blessed and not result.forced
    assert result.version_uri == os.path.join(dest, "1")
    assert result.source == exported.export_dir(toy["model"])
    assert sorted(os.listdir(dest)) == [push.CLAIMS_DIR, "1", push.CHAMPION_FILE]
    for name in ("saved_model.pb", "variables", exported.METADATA_FILE, push.PUSH_METADATA_FILE):
        assert os.path.exists(os.path.join(dest, "1", name))
    recorded = json.loads(open(os.path.join(dest, "1", push.PUSH_METADATA_FILE)).read())
    student_auc = evaluation.read_evaluation(toy["blessed"])["models"]["student"]["auc"]
    assert recorded["version"] == 1 and recorded["source"] == result.source
    assert recorded[push.DIGEST_KEY] == exported.model_digest(toy["model"])
    assert recorded["metrics"]["auc"] == student_auc and recorded["pushed_at"]
    assert json.loads(open(os.path.join(dest, push.CHAMPION_FILE)).read())["version"] == 1
    assert push.champion_from(dest) == os.path.join(dest, "1")
    assert_same_predictions(result.version_uri, toy["table"])


def test_versions_increase_and_keep_deletes_the_oldest_after_the_new_one(toy, tmp_path):
    dest = str(tmp_path / "serving")
    models = [(toy["model"], toy["blessed"]), other_model(toy, "v2", 0.9),
              other_model(toy, "v3", 0.8)]
    results = [push.push_model(model, dest, evaluation_dir=ev, keep=2) for model, ev in models]
    assert [r.version for r in results] == [1, 2, 3]
    assert [r.deleted_versions for r in results] == [[], [], [1]]
    assert push.list_versions(dest) == [2, 3]
    assert sorted(os.listdir(os.path.join(dest, push.CLAIMS_DIR)))[0].startswith("2.")
    assert push.champion_from(dest) == os.path.join(dest, "3")
    rows = {k: v[:7] for k, v in toy["table"].items()}
    np.testing.assert_allclose(exported.load_exported(os.path.join(dest, "3")).predict(rows)[
        "probs"], toy_models.linear_probs(rows, 0.8, WZ, B), rtol=1e-6)


def test_versions_other_tools_pushed_are_counted_but_never_deleted(toy, tmp_path):
    dest = tmp_path / "serving"
    foreign = dest / "7"
    foreign.mkdir(parents=True)
    (foreign / "saved_model.pb").write_bytes(b"someone else's model")
    result = push.push_model(toy["model"], str(dest), evaluation_dir=toy["blessed"], keep=1)
    assert result.version == 8  # after the highest integer folder, complete or not
    model, evaluated = other_model(toy, "foreign_next", 0.7)
    push.push_model(model, str(dest), evaluation_dir=evaluated, keep=1)
    assert version_names(str(dest)) == ["7", "9"] and push.list_versions(str(dest)) == [9]


def test_not_blessed_is_refused_and_nothing_is_written(toy, tmp_path):
    dest = tmp_path / "serving"
    result = push.push_model(toy["model"], str(dest), evaluation_dir=toy["not_blessed"])
    assert result.pushed is False and result.version is None and result.blessed is False
    assert "not blessed" in result.reason and "min_auc" in result.reason
    assert not dest.exists()


def test_no_evaluation_is_refused_unless_forced(toy, tmp_path):
    dest = str(tmp_path / "serving")
    refused = push.push_model(toy["model"], dest)
    assert refused.pushed is False and "no evaluation" in refused.reason
    forced = push.push_model(toy["model"], dest, evaluation_dir=toy["not_blessed"], force=True)
    assert forced.pushed and forced.forced and forced.version == 1
    assert json.loads(open(os.path.join(dest, "1", push.PUSH_METADATA_FILE)).read())["forced"]


def test_evaluation_of_another_model_is_refused(toy, tmp_path):
    other = toy_models.save_linear(tmp_path / "other", 0.5)
    dest = tmp_path / "serving"
    result = push.push_model(other, str(dest), evaluation_dir=toy["blessed"])
    assert result.pushed is False
    assert f"names model {exported.model_digest(toy['model'])}" in result.reason
    assert f"not this model ({exported.model_digest(other)})" in result.reason
    assert not dest.exists()


def test_a_copy_of_the_evaluated_export_elsewhere_is_accepted(toy, tmp_path):
    copy = tmp_path / "copied_model"
    shutil.copytree(exported.export_dir(toy["model"]), copy / "export")
    result = push.push_model(str(copy), str(tmp_path / "serving"), evaluation_dir=toy["blessed"])
    assert result.pushed and result.version == 1 and result.blessed


def write_evaluation(folder, metrics):
    folder.mkdir()
    (folder / evaluation.METRICS_FILE).write_text(json.dumps(metrics))
    return str(folder)


def test_a_hand_written_blessing_is_refused_unless_forced(toy, tmp_path):
    dest = tmp_path / "serving"
    bare = write_evaluation(tmp_path / "bare", {"blessed": True})
    result = push.push_model(toy["model"], str(dest), evaluation_dir=bare)
    assert result.pushed is False and result.blessed is False
    assert "names no model_digest (hand-written or from an older recdistill)" in result.reason
    # This model's digest, but no metrics behind the verdict.
    digest = exported.model_digest(toy["model"])
    bare_digest = write_evaluation(tmp_path / "bare_digest", {"blessed": True, "models": [],
                                                              push.DIGEST_KEY: digest})
    result = push.push_model(toy["model"], str(dest), evaluation_dir=bare_digest)
    assert result.pushed is False and "has no metrics of the 'student' model" in result.reason
    # With this model's digest but a verdict its own metrics do not give.
    real = json.loads(open(os.path.join(toy["not_blessed"], evaluation.METRICS_FILE)).read())
    real["blessed"] = real["blessing"]["blessed"] = True
    edited = write_evaluation(tmp_path / "edited", real)
    result = push.push_model(toy["model"], str(dest), evaluation_dir=edited)
    assert result.pushed is False
    assert "says blessed=True, but its own metrics and thresholds give blessed=False" in \
        result.reason
    assert not dest.exists()
    forced = push.push_model(toy["model"], str(dest), evaluation_dir=bare, force=True)
    assert forced.pushed and forced.forced and forced.version == 1


def test_a_copy_whose_files_differ_is_caught(toy, tmp_path):
    # What _verify guards against: the pushed files not being the model that was evaluated.
    digest = exported.model_digest(toy["model"])
    copy = tmp_path / "copy"
    shutil.copytree(exported.export_dir(toy["model"]), copy)
    push._verify(digest, str(copy))  # a faithful copy passes
    index = next((copy / "variables").glob("*.data-*"))
    data = bytearray(index.read_bytes())
    data[-1] ^= 1  # one flipped bit in the weights
    index.write_bytes(bytes(data))
    with pytest.raises(OSError, match=r"copy's files differ from the source's \(digest sha256:"):
        push._verify(digest, str(copy))


def test_a_blessed_push_does_not_import_tensorflow(toy, tmp_path):
    # The evaluation vouches for the model, so the pipeline's push step needs no TF (~7 CPU s).
    code = ("import sys\n"
            "from recdistill import push\n"
            "result = push.push_model(sys.argv[1], sys.argv[2], evaluation_dir=sys.argv[3])\n"
            "assert result.version == 1, result\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    out = subprocess.run([sys.executable, "-c", code, toy["model"], str(tmp_path / "serving"),
                          toy["blessed"]], cwd=REPO, env=dict(os.environ), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert_same_predictions(str(tmp_path / "serving" / "1"), toy["table"])


def test_a_nan_model_is_refused_even_when_forced(toy, tmp_path):
    nan_model = toy_models.save_linear(tmp_path / "nan_model", float("nan"))
    dest = tmp_path / "serving"
    with pytest.raises(ValueError, match=r"nan_model/export: the model predicts non-finite "
                                         r"'(logits|probs)' \(\[nan"):
        push.push_model(nan_model, str(dest), force=True)
    assert not dest.exists()


def test_a_retried_push_of_the_same_model_writes_no_new_version(toy, tmp_path):
    dest = str(tmp_path / "serving")
    first = push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"])
    retried = push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"])
    assert retried.pushed and retried.unchanged and not first.unchanged
    assert (retried.version, retried.version_uri) == (1, first.version_uri)
    assert push.list_versions(dest) == [1]
    model, evaluated = other_model(toy, "retry_next", 0.6)
    assert push.push_model(model, dest, evaluation_dir=evaluated).version == 2
    # The first model again: not the latest version any more, so a new version (a rollback).
    assert push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"]).version == 3


def test_the_champion_pointer_is_honoured(toy, tmp_path):
    dest = str(tmp_path / "serving")
    push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"])
    model, evaluated = other_model(toy, "champion_v2", 0.4)
    push.push_model(model, dest, evaluation_dir=evaluated)
    assert push.champion_from(dest) == os.path.join(dest, "2")
    pointer = os.path.join(dest, push.CHAMPION_FILE)
    with open(pointer, "w") as f:
        f.write(json.dumps({"version": 1}))
    champion = push.champion_from(dest)
    assert champion == os.path.join(dest, "1")  # not the latest: the pointer decides
    assert_same_predictions(champion, toy["table"])  # and it is version 1's model (WX)


def test_champion_pointer_that_is_broken_falls_back_to_the_latest_version(toy, tmp_path):
    dest = str(tmp_path / "serving")
    assert push.champion_from(dest) is None
    push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"])
    model, evaluated = other_model(toy, "broken_pointer_v2", 0.9)
    push.push_model(model, dest, evaluation_dir=evaluated)
    (tmp_path / "serving" / push.CHAMPION_FILE).write_text("{not json")
    assert push.champion_from(dest) == os.path.join(dest, "2")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("destination, message", [
    ("gs:/x", "malformed GCS URI"),
    ("../..", "'..' segments"),
    ("ftp://bucket/models", "unsupported scheme"),
    ("gs://B/models", "bucket name"),
    ("", "must be a folder or gs:// URI"),
])
def test_malformed_destination_is_rejected(toy, destination, message):
    with pytest.raises(ValueError, match=message):
        push.push_model(toy["model"], destination, evaluation_dir=toy["blessed"])


def test_unwritable_destination_is_rejected_before_copying(toy, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot create the push destination"):
        push.push_model(toy["model"], str(blocker / "serving"), evaluation_dir=toy["blessed"])


def test_missing_model_files_push_nothing(toy, tmp_path):
    dest = tmp_path / "serving"
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        push.push_model(str(tmp_path / "missing"), str(dest), evaluation_dir=toy["blessed"])
    assert not dest.exists()


def test_model_without_serving_signature_pushes_nothing(toy, tmp_path):
    wrong = toy_models.save_linear(tmp_path / "wrong", 1.0, signature="serve_raw")
    dest = tmp_path / "serving"
    with pytest.raises(ValueError, match="no 'serving_default'"):
        push.push_model(wrong, str(dest), force=True)
    assert not dest.exists()


def test_keep_must_be_positive(toy, tmp_path):
    with pytest.raises(ValueError, match="keep must be >= 1"):
        push.push_model(toy["model"], str(tmp_path / "s"), evaluation_dir=toy["blessed"], keep=0)


# ---------------------------------------------------------------- killed mid-push


def stalled_model(root):
    """A toy export whose extra variables file is a FIFO: copying it blocks until killed.

    Stands in for a huge variables file without the timing race of killing a fast copy.
    """
    model = toy_models.save_linear(root / "stalled", WX, WZ, B)
    os.mkfifo(os.path.join(exported.export_dir(model), "variables", "padding.bin"))
    return model


def start_push(model, destination):
    # The digest would block on the FIFO before the copy starts: a fixed one stands in.
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "from recdistill import exported, push\n"
            "exported.model_digest = lambda uri: 'sha256:stalled'\n"
            f"push.push_model({model!r}, {destination!r}, force=True)\n")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(proc, ready, timeout=120):
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"push ended early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("push never reached the copy")
        time.sleep(0.05)


def kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_a_killed_push_leaves_no_version_and_its_staging_survives_until_it_dies(toy, tmp_path):
    dest = tmp_path / "serving"

    def stagings():
        return [p for p in dest.glob(".1.push-*") if p.is_dir()] if dest.exists() else []

    stalled = start_push(stalled_model(tmp_path), str(dest))
    wait_for(stalled, lambda: any(f.is_file() for s in stagings() for f in s.rglob("*")))
    # Another pusher meanwhile: its own version, and the stalled push's staging stays.
    model, evaluated = other_model(toy, "beside_stalled", 0.9)
    beside = push.push_model(model, str(dest), evaluation_dir=evaluated)
    assert beside.version == 2 and len(stagings()) == 1
    kill(stalled)
    assert push.list_versions(str(dest)) == [2]
    assert push.champion_from(str(dest)) == beside.version_uri
    result = push.push_model(toy["model"], str(dest), evaluation_dir=toy["blessed"])
    assert result.version == 3
    assert sorted(os.listdir(dest)) == [push.CLAIMS_DIR, "2", "3", push.CHAMPION_FILE]
    assert_same_predictions(result.version_uri, toy["table"])


def start_pushers(models, destination, tmp_path):
    """One real process per model, each pushing (forced) once a shared start file exists."""
    go = tmp_path / "go"
    code = ("import json, os, sys, time\n"
            "from recdistill import push\n"
            "while not os.path.exists(sys.argv[3]): time.sleep(0.01)\n"
            "result = push.push_model(sys.argv[1], sys.argv[2], force=True)\n"
            "print(json.dumps([result.version, result.version_uri]))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, model, destination, str(go)],
                              cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for model in models]
    time.sleep(1.0)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def concurrent_models(toy, weights):
    return [toy_models.save_linear(toy["root"] / f"concurrent_{i}_{w}", w, WZ, B)
            for i, w in enumerate(weights)]


def assert_each_version_holds_its_model(toy, results, weights, destination):
    rows = {k: v[:7] for k, v in toy["table"].items()}
    for (version, uri), w in zip(results, weights):
        assert uri == f"{destination.rstrip('/')}/{version}" or uri == os.path.join(
            destination, str(version))
        np.testing.assert_allclose(exported.load_exported(uri).predict(rows)["probs"],
                                   toy_models.linear_probs(rows, w, WZ, B), rtol=1e-6)


def test_a_claim_that_meets_a_rival_backs_off_to_the_next_version(tmp_path, monkeypatch):
    dest = str(tmp_path / "serving")
    os.makedirs(dest)
    write = json_files.write_json
    rivals = []

    def write_with_a_rival(uri, value):
        write(uri, value)
        if "/.claims/" in uri and not rivals:  # a rival claims the same version meanwhile
            rivals.append(push._claim_uri(dest, value["version"], "ab" * 16))
            write(rivals[0], dict(value, owner="ab" * 16))

    monkeypatch.setattr(push.json_files, "write_json", write_with_a_rival)
    monkeypatch.setattr(push.time, "sleep", lambda seconds: None)
    assert push._claim_version(dest, "cd" * 16) == 2
    claims = sorted(os.listdir(os.path.join(dest, push.CLAIMS_DIR)))
    assert claims == [f"1.{'ab' * 16}.json", f"2.{'cd' * 16}.json"]  # ours on 1 withdrawn


@pytest.mark.slow  # three TensorFlow processes
def test_concurrent_pushers_each_get_their_own_version(toy, tmp_path):
    dest = str(tmp_path / "serving")
    weights = [0.3, 0.5, 0.7]
    results = start_pushers(concurrent_models(toy, weights), dest, tmp_path)
    assert sorted(version for version, _ in results) == [1, 2, 3]
    assert push.list_versions(dest) == [1, 2, 3]
    assert sorted(os.listdir(dest)) == [push.CLAIMS_DIR, "1", "2", "3", push.CHAMPION_FILE]
    assert push.champion_from(dest) in {uri for _, uri in results}
    assert_each_version_holds_its_model(toy, results, weights, dest)


# ---------------------------------------------------------------- gs://


def test_push_to_gcs_then_keep_and_champion(toy, gcs_bucket):
    dest = f"{gcs_bucket}/serving/ranker"
    model, evaluated = other_model(toy, "gcs_first", 0.9)
    first = push.push_model(model, dest, evaluation_dir=evaluated)
    second = push.push_model(toy["model"], dest + "/", evaluation_dir=toy["blessed"], keep=1)
    retried = push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"], keep=1)
    assert (first.version, second.version) == (1, 2)
    assert retried.unchanged and retried.version_uri == second.version_uri
    assert second.version_uri == f"{dest}/2" and second.deleted_versions == [1]
    assert push.list_versions(dest) == [2] and version_names(dest) == ["2"]
    assert push.champion_from(dest) == f"{dest}/2"
    assert filesystems.exists(f"{dest}/2/variables/variables.index")
    assert_same_predictions(second.version_uri, toy["table"])


def test_gcs_killed_push_is_invisible_survives_a_concurrent_push_and_is_cleaned_after(
        toy, gcs_bucket, tmp_path):
    dest = f"{gcs_bucket}/serving/killed"
    partial = f"{dest}/1"
    stalled = start_push(stalled_model(tmp_path), dest)
    wait_for(stalled, lambda: filesystems.exists(f"{partial}/{exported.METADATA_FILE}"))
    # Objects are there, but saved_model.pb (uploaded last) and the marker are not.
    assert not filesystems.exists(f"{partial}/{exported.SAVED_MODEL_FILE}")
    assert not filesystems.exists(f"{partial}/{push.PUSH_METADATA_FILE}")
    assert push.list_versions(dest) == [] and push.champion_from(dest) is None
    model, evaluated = other_model(toy, "gcs_beside_stalled", 0.9)
    beside = push.push_model(model, dest, evaluation_dir=evaluated)
    assert beside.version == 2
    assert filesystems.exists(f"{partial}/{exported.METADATA_FILE}")  # in progress: kept
    kill(stalled)
    result = push.push_model(toy["model"], dest, evaluation_dir=toy["blessed"])
    assert result.version == 3
    assert version_names(dest) == ["2", "3"]  # the dead push's partial version 1 was removed
    assert_same_predictions(result.version_uri, toy["table"])


@pytest.mark.slow  # two TensorFlow processes
def test_concurrent_pushers_to_gcs_each_get_their_own_version(toy, gcs_bucket, tmp_path):
    dest = f"{gcs_bucket}/serving/concurrent"
    weights = [0.4, 0.6]
    results = start_pushers(concurrent_models(toy, weights), dest, tmp_path)
    assert sorted(version for version, _ in results) == [1, 2]
    assert push.list_versions(dest) == [1, 2] and version_names(dest) == ["1", "2"]
    assert push.champion_from(dest) in {uri for _, uri in results}
    assert_each_version_holds_its_model(toy, results, weights, dest)


def test_missing_gcs_bucket_is_rejected(toy, gcs_bucket):
    with pytest.raises(ValueError, match="does not exist"):
        push.push_model(toy["model"], "gs://no-such-bucket/serving",
                        evaluation_dir=toy["blessed"])
