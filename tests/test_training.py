"""train(): teacher and student runs on the sample, kd, resume, warm start, export, bad input."""

import glob
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import exported, training
from recdistill.data import sample
from recdistill.models import build_model

pytestmark = pytest.mark.slow

STEPS = 150


def _soft_logit(frame):
    """A teacher's logit the student's item tower can learn (price and category)."""
    return -frame["price"] / 100.0 + 0.1 * frame["category"].str[1:].astype(int) - 1.0


def _read(path, names):
    return pd.read_csv(path, header=None, names=names, keep_default_na=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Sample data, with the soft-labelled splits the soft-label job would write."""
    out = tmp_path_factory.mktemp("training")
    written = sample.write_sample_data(str(out), rows=1500)
    student = config_lib.load_config(written.student_config)
    names = [field.input_name for field in student.data_config.input_fields]
    for split, source in (("train", written.train_path), ("eval", written.eval_path)):
        frame = _read(source, names[:-1])
        frame["kd_soft"] = _soft_logit(frame)
        folder = out / "soft_labels" / split
        folder.mkdir(parents=True)
        frame.to_csv(folder / "part-00000.csv", header=False, index=False)
    return written


def _config(path, **train):
    cfg = config_lib.load_config(path)
    cfg.data_config.batch_size = 32
    cfg.data_config.shuffle = False  # same rows in the same order in every run
    cfg.train_config.log_step_count_steps = 20
    cfg.train_config.optimizer_config[0].adam_optimizer.learning_rate \
        .constant_learning_rate.learning_rate = 0.005
    for name, value in train.items():
        setattr(cfg.train_config, name, value)
    return cfg


def _columns(data, cfg, split):
    names = [field.input_name for field in cfg.data_config.input_fields]
    path = glob.glob(os.path.join(data.out_dir, "soft_labels", split, "*.csv"))[0]
    frame = _read(path, names)
    return {name: frame[name].to_numpy() for name in names}


def _eval_columns(data, cfg):
    return _columns(data, cfg, "eval")


def _predict_logits(model, columns):
    feed = {name: tf.constant(columns[name].astype(str) if dtype == tf.string
                              else columns[name].astype(dtype.as_numpy_dtype))
            for name, dtype in model.input_columns.items()}
    return model(feed, training=False)["logits"].numpy()


def _restored_model(cfg, model_dir):
    model = build_model(cfg)
    columns = {name: tf.constant([""]) if dtype == tf.string else tf.zeros([1], dtype)
               for name, dtype in model.input_columns.items()}
    model(columns, training=False)
    checkpoint = tf.train.Checkpoint(model=training.variables_by_path(model.variables))
    checkpoint.restore(tf.train.latest_checkpoint(model_dir)).expect_partial() \
        .assert_existing_objects_matched()
    return model


@pytest.fixture(scope="module")
def students(data, tmp_path_factory):
    """The kd student and its no-kd baseline (the pipeline's: the raw rows in the same order),
    each trained once for STEPS steps from the same init; several tests read them, none
    writes into their folders."""
    out = tmp_path_factory.mktemp("students")
    runs = {}
    for name in ("kd", "nokd"):
        cfg = _config(data.student_config, log_step_count_steps=30)
        if name == "nokd":
            cfg = config_lib.without_kd(cfg)
            cfg.train_input_path = data.train_path
        tf.keras.utils.set_random_seed(0)
        runs[name] = training.train(cfg, model_dir=str(out / name), num_steps=STEPS)
    return runs


def test_student_trains_logs_every_component_and_exports_what_it_predicts(data, students):
    cfg = _config(data.student_config, log_step_count_steps=30)
    result = students["kd"]
    model_dir = os.path.dirname(result.export_dir)

    assert result.steps == STEPS
    events = training.read_scalars(model_dir)
    kd = events["loss/kd_loss_logits_kd_soft"]
    assert sorted(kd) == list(range(30, STEPS + 1, 30))
    # The kd loss on the whole training set, worked out with numpy: cross-entropy to the
    # teacher is at least the teacher's own entropy, and training must close most of the gap
    # an untrained student leaves.
    columns = _columns(data, cfg, "train")
    teacher = 1.0 / (1.0 + np.exp(-columns["kd_soft"]))
    floor = np.mean(-teacher * np.log(teacher) - (1 - teacher) * np.log(1 - teacher))

    def kd_loss(logits):
        student = 1.0 / (1.0 + np.exp(-logits))
        return np.mean(-teacher * np.log(student + 1e-7)
                       - (1 - teacher) * np.log(1 - student + 1e-7))

    tf.keras.utils.set_random_seed(0)
    untrained = _predict_logits(build_model(cfg), columns)
    trained = exported.load_exported(result.export_dir).predict(columns)["logits"]
    assert kd_loss(trained) - floor < 0.5 * (kd_loss(untrained) - floor)
    for name in ("hard_loss_clk", "regularization", "loss"):
        assert f"loss/{name}" in events
    page = open(os.path.join(model_dir, training.TRAINING_REPORT)).read()
    assert page.count("data:image/png;base64,") == 2  # loss curves, throughput
    assert f"Final values (step {STEPS})" in page
    assert f"<td>kd_loss_logits_kd_soft</td><td>{kd[STEPS]:.4f}</td>" in page
    totals = events["loss/loss"]
    parts = [events[f"loss/{n}"] for n in ("hard_loss_clk", "kd_loss_logits_kd_soft",
                                           "regularization")]
    assert totals[STEPS] == pytest.approx(sum(p[STEPS] for p in parts), rel=1e-5)
    assert result.metrics["loss"] == pytest.approx(totals[STEPS], rel=1e-5)
    assert 0.5 < result.metrics["eval_auc"] <= 1.0 and result.metrics["examples_per_sec"] > 0

    # The export: raw student columns only (no soft label, no privileged position) ...
    loaded = exported.load_exported(result.export_dir)
    assert sorted(loaded.inputs) == ["age", "category", "gender", "interests", "item_id",
                                     "item_tags", "price", "user_id"]
    metadata = loaded.metadata
    assert metadata["training_metrics"]["steps"] == STEPS
    assert metadata["eval_metrics"]["eval_auc"] == pytest.approx(result.metrics["eval_auc"])
    assert config_lib.load_config(metadata["config"]).model_config.model_class == "DSSM"
    # ... predicting exactly what the last checkpoint's weights predict.
    columns = _eval_columns(data, cfg)
    served = loaded.predict(columns)
    direct = _predict_logits(_restored_model(cfg, model_dir), columns)
    np.testing.assert_allclose(served["logits"], direct, rtol=1e-5, atol=1e-5)


def test_kd_pulls_the_student_towards_the_teacher(data, students):
    """Same init, same batches: with the kd block the student's logits track the soft label."""
    runs = students
    cfg = _config(data.student_config)
    columns = _eval_columns(data, cfg)
    teacher = columns["kd_soft"]
    logits = {name: exported.load_exported(r.export_dir).predict(columns)["logits"]
              for name, r in runs.items()}
    assert np.abs(logits["kd"] - logits["nokd"]).mean() > 0.05
    corr = {name: np.corrcoef(value, teacher)[0, 1] for name, value in logits.items()}
    assert corr["kd"] > corr["nokd"] + 0.05, corr
    assert "kd_loss_logits_kd_soft" not in runs["nokd"].metrics


def test_a_restarted_job_continues_from_the_last_checkpoint(data, tmp_path):
    cfg = _config(data.student_config, save_checkpoints_steps=40)
    for tower in (cfg.model_config.dssm.user_tower, cfg.model_config.dssm.item_tower):
        tower.dnn.dropout_ratio[:] = [0.1, 0.1]  # dropout's RNG state is not checkpointed
    model_dir = str(tmp_path / "student")
    first = training.train(cfg, model_dir=model_dir, num_steps=100)
    assert first.steps == 100
    checkpoints = tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in checkpoints] == ["ckpt-40", "ckpt-80", "ckpt-100"]
    logged_before = set(training.read_scalars(model_dir)["loss/loss"])

    second = training.train(cfg, model_dir=model_dir, num_steps=160)
    assert second.steps == 160
    losses = training.read_scalars(model_dir)["loss/loss"]
    logged_after = set(losses) - logged_before
    # Restored weights, not a fresh model: the loss goes on from where the first job ended.
    assert losses[120] < losses[20]
    # The second job ran steps 101..160 only (logged every 20), not 1..160.
    assert logged_after == {120, 140, 160}
    assert os.path.basename(tf.train.latest_checkpoint(model_dir)) == "ckpt-160"


def test_warm_start_begins_from_the_previous_export(data, students, tmp_path):
    cfg = _config(data.student_config)
    yesterday = students["kd"]
    frozen = _config(data.student_config)
    frozen.train_config.optimizer_config[0].adam_optimizer.learning_rate \
        .constant_learning_rate.learning_rate = 1e-9
    today = training.train(frozen, model_dir=str(tmp_path / "day2"), num_steps=2,
                           warm_start=yesterday.export_dir)
    columns = _eval_columns(data, cfg)
    before = exported.load_exported(yesterday.export_dir).predict(columns)["logits"]
    after = exported.load_exported(today.export_dir).predict(columns)["logits"]
    # BatchNorm statistics keep moving in training steps, so allow a little drift.
    np.testing.assert_allclose(after, before, atol=0.05)
    untrained = _predict_logits(build_model(cfg), columns)
    assert np.abs(untrained - before).mean() > 0.1


def _multi_task_config(data, tmp_path):
    """The DCN teacher with ctr/cvr towers and a kd block per tower."""
    teacher = config_lib.load_config(data.teacher_config)
    names = [field.input_name for field in teacher.data_config.input_fields]
    out = tmp_path / "multi"
    out.mkdir()
    for split, path in (("train", data.train_path), ("eval", data.eval_path)):
        frame = _read(path, names)
        frame["cvr"] = ((frame["clk"] == 1) & (frame["price"] < 100)).astype(int)
        if split == "train":  # soft labels are a training signal; eval tables are raw
            frame["kd_ctr"] = _soft_logit(frame)
            frame["kd_cvr"] = -frame["price"] / 50.0
        frame.to_csv(out / f"{split}.csv", header=False, index=False)
    cfg = config_lib.load_config(config_lib.to_text(teacher))
    cfg.train_config.ClearField("early_stopping")  # all 120 steps, for the loss curves
    cfg.train_input_path = str(out / "train.csv")
    cfg.eval_input_path = str(out / "eval.csv")
    for name, kind in (("cvr", "INT32"), ("kd_ctr", "DOUBLE"), ("kd_cvr", "DOUBLE")):
        cfg.data_config.input_fields.add(input_name=name,
                                         input_type=cfg.data_config.FieldType.Value(kind))
    cfg.data_config.label_fields[:] = ["clk", "cvr", "kd_ctr", "kd_cvr"]
    model = cfg.model_config
    model.task_towers.add(tower_name="ctr", label_name="clk")
    model.task_towers.add(tower_name="cvr", label_name="cvr", weight=0.5)
    model.kd.add(pred_name="logits_ctr", soft_label_name="kd_ctr")
    model.kd.add(pred_name="logits_cvr", soft_label_name="kd_cvr", loss_weight=0.5)
    return config_lib.load_config(config_lib.to_text(cfg))


def test_multi_task_dcn_teacher_with_two_kd_blocks_logs_each_loss(data, tmp_path):
    cfg = _multi_task_config(data, tmp_path)
    cfg.data_config.batch_size = 32
    cfg.train_config.log_step_count_steps = 20
    model_dir = str(tmp_path / "model")
    result = training.train(cfg, model_dir=model_dir, num_steps=120)
    for name in ("hard_loss_clk", "hard_loss_cvr", "kd_loss_logits_ctr_kd_ctr",
                 "kd_loss_logits_cvr_kd_cvr"):
        assert name in result.metrics
    m = result.metrics
    assert m["loss"] == pytest.approx(
        m["hard_loss_clk"] + 0.5 * m["hard_loss_cvr"] + m["kd_loss_logits_ctr_kd_ctr"]
        + m["kd_loss_logits_cvr_kd_cvr"] + m["regularization"], rel=1e-4)
    kd = training.read_scalars(model_dir)["loss/kd_loss_logits_cvr_kd_cvr"]
    assert kd[120] < kd[20]
    loaded = exported.load_exported(result.export_dir)
    assert {"logits_ctr", "logits_cvr"} <= set(loaded.outputs)
    # A teacher reads every feature, the privileged position included, and no label.
    assert "position" in loaded.inputs and not {"clk", "cvr", "kd_ctr"} & set(loaded.inputs)
    assert m["eval_auc"] == m["eval_auc_clk"] and m["eval_auc_clk"] > 0.6
    assert 0 < m["eval_logloss_cvr"] < 1


def test_bad_soft_labels_fail_before_any_step(data, tmp_path):
    cfg = _config(data.student_config)
    names = [field.input_name for field in cfg.data_config.input_fields]
    frame = _read(glob.glob(os.path.join(data.out_dir, "soft_labels", "train", "*.csv"))[0], names)
    frame.loc[7, "kd_soft"] = float("nan")
    frame.to_csv(tmp_path / "bad.csv", header=False, index=False, na_rep="nan")
    model_dir = tmp_path / "model"
    with pytest.raises(ValueError, match=r"bad\.csv: soft label column 'kd_soft'.*at line 8"):
        training.train(cfg, train_uri=str(tmp_path / "bad.csv"), model_dir=str(model_dir),
                       num_steps=10)
    assert not glob.glob(str(model_dir / "ckpt-*"))


def test_mixed_precision_trains_and_exports_float32_outputs(data, tmp_path):
    import keras

    cfg = _config(data.student_config)
    result = training.train(cfg, model_dir=str(tmp_path / "mp"), num_steps=20,
                            mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    out = exported.load_exported(result.export_dir).predict(_eval_columns(data, cfg))
    assert out["logits"].dtype == np.float32 and np.isfinite(out["logits"]).all()


def test_mirrored_strategy_over_two_devices_trains_and_resumes(data, tmp_path):
    """The multi-replica path (loss / replicas, reduced components) on two logical CPUs.

    Runs in a subprocess because logical devices must be set before TensorFlow starts, and
    swaps only the device choice (``choose_strategy`` picks MirroredStrategy only for several GPUs).
    """
    script = (
        "import sys, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(\n"
        "    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from recdistill import config as config_lib, training\n"
        "from recdistill.training import distribution\n"
        "distribution.choose_strategy = lambda: tf.distribute.MirroredStrategy(\n"
        "    ['/cpu:0', '/cpu:1'], cross_device_ops=tf.distribute.ReductionToOneDevice())\n"
        "cfg = config_lib.load_config(sys.argv[1])\n"
        "cfg.data_config.batch_size = 16\n"
        "cfg.train_config.save_checkpoints_steps = 20\n"
        "first = training.train(cfg, model_dir=sys.argv[2], num_steps=30)\n"
        "second = training.train(cfg, model_dir=sys.argv[2], num_steps=40)\n"
        "print(first.steps, second.steps, second.metrics['loss'])\n")
    out = subprocess.run([sys.executable, "-c", script, data.student_config,
                          str(tmp_path / "mirrored")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    first, second, loss = out.stdout.split()[-3:]
    assert (first, second) == ("30", "40") and np.isfinite(float(loss))
    metadata = exported.read_metadata(os.path.join(tmp_path, "mirrored", "export"))
    assert metadata["training_metrics"]["steps"] == 40


def test_num_steps_zero_trains_for_num_epochs(data, tmp_path):
    cfg = _config(data.student_config)
    cfg.train_config.num_steps = 0
    cfg.data_config.num_epochs = 2
    result = training.train(cfg, model_dir=str(tmp_path / "epochs"))
    rows = len(_columns(data, cfg, "train")["clk"])
    # Epochs follow each other before batching, so only the run's last batch may be partial.
    assert result.steps == -(-2 * rows // 32)


def test_no_end_is_refused_before_reading_data(data, tmp_path):
    cfg = _config(data.student_config)
    cfg.train_config.num_steps = 0
    with pytest.raises(ValueError, match="never end"):
        training.train(cfg, model_dir=str(tmp_path / "endless"))


def test_listwise_kd_trains_on_session_grouped_batches_and_pulls_order(data, students,
                                                                        tmp_path, caplog):
    """A listwise kd block over user sessions: batches keep users whole, the loss is logged,
    and the student's within-user order moves towards the teacher's (the no-kd baseline's
    init and batches are the same)."""
    from recdistill.protos import pipeline_pb2

    cfg = _config(data.student_config)
    block = cfg.model_config.kd[0]
    block.loss_type = pipeline_pb2.LossType.Value("LISTWISE_DISTILL_LOSS")
    block.listwise_distill_loss.session_name = "user_id"
    block.loss_weight = 5.0
    tf.keras.utils.set_random_seed(0)
    with caplog.at_level("INFO"):
        listwise = training.train(cfg, model_dir=str(tmp_path / "listwise"), num_steps=STEPS)
    runs = {"listwise": listwise, "nokd": students["nokd"]}
    assert "Session-grouped batches on 'user_id'" in caplog.text
    loss_name = "kd_loss_logits_kd_soft"
    assert np.isfinite(runs["listwise"].metrics[loss_name])
    assert loss_name not in runs["nokd"].metrics
    cfg = _config(data.student_config)
    columns = _eval_columns(data, cfg)
    users = columns["user_id"]
    teacher = columns["kd_soft"]

    def within_user_corr(scores):
        corrs = [np.corrcoef(scores[users == u], teacher[users == u])[0, 1]
                 for u in np.unique(users) if (users == u).sum() > 2]
        return float(np.nanmean(corrs))

    corr = {name: within_user_corr(exported.load_exported(r.export_dir).predict(columns)["logits"])
            for name, r in runs.items()}
    assert corr["listwise"] > corr["nokd"] + 0.02, corr


def test_in_training_eval_reads_an_eval_table_with_or_without_soft_labels(data):
    """What an EasyRec user has (eval rows carrying kd_soft) scores like the raw eval table."""
    from recdistill.training.eval_metrics import KerasEvaluator

    cfg = _config(data.student_config)
    model = build_model(cfg)
    _predict_logits(model, _eval_columns(data, cfg))  # builds the model
    with_soft = os.path.join(data.out_dir, "soft_labels", "eval")
    raw = KerasEvaluator(cfg, model, data.eval_path)()
    assert KerasEvaluator(cfg, model, with_soft)() == raw
    assert 0.0 < raw["eval_auc"] < 1.0


def test_a_bad_eval_table_fails_before_the_first_step(data, tmp_path):
    cfg = _config(data.student_config)
    bad_eval = tmp_path / "eval_missing_a_column.csv"
    lines = open(data.eval_path).read().splitlines()
    bad_eval.write_text("".join(",".join(line.split(",")[1:]) + "\n" for line in lines))
    with pytest.raises(ValueError, match="eval_missing_a_column.csv"):
        training.train(cfg, eval_uri=str(bad_eval), model_dir=str(tmp_path / "m"), num_steps=5)
    assert not glob.glob(str(tmp_path / "m" / "ckpt*"))
