"""GBDT teacher: YDF training and the SavedModel export, loaded in a fresh process."""

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd
import pytest

from recdistill import config as config_lib
from recdistill import exported
from recdistill.data import sample

pytestmark = pytest.mark.slow


def _gbdt_config(sample_data):
    cfg = config_lib.load_config(sample_data.teacher_config)
    cfg.model_config.ClearField("dcn")
    cfg.model_config.model_class = "GBDT"
    cfg.model_config.gbdt.num_trees = 30
    cfg.model_config.gbdt.max_depth = 4
    return cfg


def _columns(cfg, path):
    names = [field.input_name for field in cfg.data_config.input_fields]
    frame = pd.read_csv(path, header=None, names=names, keep_default_na=False)
    return {name: frame[name].to_numpy() for name in names}


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    return sample.write_sample_data(str(tmp_path_factory.mktemp("gbdt")), rows=1500)


def test_export_loads_in_a_fresh_process_and_predicts_like_ydf(sample_data, tmp_path):
    from recdistill.models import gbdt

    cfg = _gbdt_config(sample_data)
    train = _columns(cfg, sample_data.train_path)
    model = gbdt.train_gbdt(cfg, train, train["clk"])
    export = str(tmp_path / "export")
    gbdt.export_gbdt(cfg, model, export, {"config": config_lib.to_text(cfg)})

    evaluation = _columns(cfg, sample_data.eval_path)
    expected = gbdt.predict_probs(cfg, model, evaluation)
    np.save(tmp_path / "columns.npy", evaluation, allow_pickle=True)
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow as tf
        from recdistill import exported

        model = exported.load_exported(sys.argv[1])
        columns = np.load(sys.argv[2], allow_pickle=True).item()
        out = model.predict(columns)
        np.save(sys.argv[3], np.stack([out["probs"], out["logits"]]))

        def feature(value, dtype):
            if dtype == tf.string:
                return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
            if dtype == tf.int64:
                return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))

        examples = [tf.train.Example(features=tf.train.Features(feature={
            name: feature(columns[name][i], dtype) for name, dtype in model.inputs.items()
        })).SerializeToString() for i in range(20)]
        probs = model._loaded.signatures["predict_examples"](examples=tf.constant(examples))
        np.save(sys.argv[4], probs["probs"].numpy())
        print(" ".join(sorted(model.inputs)))
        """)
    out = subprocess.run(
        [sys.executable, "-c", script, export, str(tmp_path / "columns.npy"),
         str(tmp_path / "out.npy"), str(tmp_path / "examples.npy")],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    probs, logits = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(logits, np.log(expected / (1 - expected)), atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "examples.npy"), expected[:20], atol=1e-6)
    # Every feature column, the privileged position included; no label.
    assert out.stdout.strip().splitlines()[-1].split() == sorted(gbdt.input_columns(cfg))
    assert "position" in gbdt.input_columns(cfg) and "clk" not in gbdt.input_columns(cfg)
    assert exported.read_metadata(export)["custom_ops"] == ["ydf"]

    # Without custom_ops, a fresh process cannot know to load YDF's ops: the error says so.
    metadata = exported.read_metadata(export)
    exported.write_metadata(export, {**metadata, "custom_ops": []})
    broken = subprocess.run(
        [sys.executable, "-c", "import sys; from recdistill import exported; "
         "exported.load_exported(sys.argv[1])", export],
        capture_output=True, text=True, timeout=120)
    assert broken.returncode != 0
    assert "List their library in recdistill.json 'custom_ops'" in broken.stderr
    assert '["ydf"] for a YDF/GBDT teacher' in broken.stderr


def test_train_dispatches_gbdt_and_beats_random_on_eval(sample_data, tmp_path):
    from recdistill import training

    cfg = _gbdt_config(sample_data)
    result = training.train(cfg, model_dir=str(tmp_path / "model"))
    assert result.export_dir == str(tmp_path / "model" / "export")
    # The sample's clicks depend on position and item, so trees rank far better than chance.
    assert result.metrics["eval_auc"] > 0.65
    metadata = exported.read_metadata(result.export_dir)
    assert metadata["model_class"] == "GBDT"
    assert metadata["label_fields"] == ["clk"]
    assert metadata["eval_metrics"]["eval_auc"] == pytest.approx(result.metrics["eval_auc"])
    assert 0 < result.steps <= 30


def test_a_config_with_two_hard_labels_is_rejected(sample_data):
    from recdistill.models import gbdt

    cfg = _gbdt_config(sample_data)
    cfg.data_config.label_fields.append("position")
    with pytest.raises(ValueError, match="exactly one hard label"):
        gbdt.hard_label(cfg)


def test_a_gbdt_fold_teacher_fits_on_every_row_but_its_fold(sample_data, tmp_path, monkeypatch):
    from recdistill import training
    from recdistill.data import datasets, folds
    from recdistill.models import gbdt

    cfg = _gbdt_config(sample_data)
    seen = {}
    real = gbdt.train_gbdt

    def spy(cfg, columns, labels):  # the real fit, noting which rows it got
        seen["users"] = columns["user_id"]
        return real(cfg, columns, labels)

    monkeypatch.setattr(gbdt, "train_gbdt", spy)
    result = training.train(cfg, model_dir=str(tmp_path / "fold1"),
                            exclude_fold=datasets.ExcludedFold("user_id", 2, 1))
    users = _columns(cfg, sample_data.train_path)["user_id"]
    kept = users[folds.buckets(users.astype(str), 2, salt=folds.FOLD_SALT) != 1]
    assert 0 < len(kept) < len(users)
    assert list(seen["users"]) == list(kept)
    assert exported.read_metadata(result.export_dir)["cross_fit"] == {
        "key": "user_id", "num_folds": 2, "excluded_fold": 1}
