"""Use case 3, a GBDT teacher distilled into a DNN, through the real soft-label job.

A YDF teacher is trained by ``recdistill.training.train`` from the sample's teacher config
turned into ``model_class: 'GBDT'``; the soft-label job then labels the sample's training rows
for the DSSM student, on DirectRunner and on Beam's Dask runner with two worker processes
(which must import YDF's TF ops themselves, as ``recdistill.json`` ``custom_ops`` says).
"""

import json
import os
import re
import sys

import numpy as np
import pyarrow as pa
import pytest

from recdistill import config as config_lib
from recdistill import exported, training
from recdistill.data import filesystems, sample, tables
from recdistill.soft_labels import job

pytestmark = pytest.mark.slow

NUM_TREES = 20


def _gbdt_teacher_config(teacher_config: str) -> str:
    """Writes the sample teacher config with its ``dcn { ... }`` block replaced by a GBDT one."""
    with open(teacher_config, encoding="utf-8") as f:
        text = f.read()
    start = text.index("  dcn {")
    depth, end = 0, start
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if text[end] == "}" and depth == 0:
            break
    text = text[:start] + f"  gbdt {{ num_trees: {NUM_TREES} }}" + text[end + 1:]
    text, replaced = re.subn(r"model_class: 'DCN'", "model_class: 'GBDT'", text)
    assert replaced == 1
    path = os.path.join(os.path.dirname(teacher_config), "teacher_gbdt.config")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def gbdt_run(tmp_path_factory):
    """The sample, the trained GBDT teacher's export, and the raw training table."""
    data = sample.write_sample_data(str(tmp_path_factory.mktemp("gbdt_sample")), rows=2000)
    teacher_cfg = config_lib.load_config(_gbdt_teacher_config(data.teacher_config))
    assert teacher_cfg.model_config.WhichOneof("model") == "gbdt"
    result = training.train(teacher_cfg)
    student = config_lib.load_config(data.student_config)
    raw = tables.read_table(data.train_path, config_lib.without_kd(student).data_config)
    return data, result, student, raw


def _labelled(student, out_dir: str) -> pa.Table:
    return pa.concat_tables(tables.read_table(uri, student.data_config)
                            for uri in filesystems.expand(out_dir))


def _check_rows_and_soft_labels(raw: pa.Table, got: pa.Table, export_dir: str) -> np.ndarray:
    """Same rows in the same order, and kd_soft equal to the export's logits for each row."""
    assert got.num_rows == raw.num_rows
    for name in raw.column_names:
        assert got.column(name).to_pylist() == raw.column(name).to_pylist(), name
    teacher = exported.load_exported(export_dir)
    assert teacher.metadata["custom_ops"] == ["ydf"]
    assert "position" in teacher.inputs  # the privileged feature only the teacher reads
    want = teacher.predict({name: raw.column(name).to_numpy(zero_copy_only=False)
                            for name in teacher.inputs})["logits"]
    soft = got.column(sample.SOFT_LABEL).to_numpy()
    np.testing.assert_allclose(soft, want, atol=1e-5)
    assert np.std(soft) > 0.1  # 20 trees give many distinct scores, not one constant
    return soft


def test_gbdt_teacher_soft_labels_equal_its_export_logits_on_direct_runner(gbdt_run, tmp_path):
    from sklearn.metrics import roc_auc_score

    data, result, student, raw = gbdt_run
    assert 0 < result.steps <= NUM_TREES  # YDF stops early on its own validation split
    out = str(tmp_path / "soft")
    stats = job.generate_soft_labels(result.model_dir, data.train_path, out, student)

    soft = _check_rows_and_soft_labels(raw, _labelled(student, out), result.export_dir)
    clicks = raw.column(sample.LABEL).to_numpy()
    auc = roc_auc_score(clicks, soft)
    assert auc > 0.65  # the trees learnt the clicks (on the rows they were trained on)
    with open(os.path.join(out, "stats.json"), encoding="utf-8") as f:
        written = json.load(f)
    assert written["rows_read"] == written["rows_written"] == raw.num_rows
    assert written["soft_labels"]["kd_soft"]["teacher_auc"]["clk"] == pytest.approx(auc, abs=1e-9)
    assert stats["soft_labels"]["kd_soft"]["teacher_auc"]["clk"] == pytest.approx(auc, abs=1e-9)
    assert written["soft_labels"]["kd_soft"]["mean"] == pytest.approx(soft.mean(), abs=1e-6)


def _worker_modules(client) -> dict:
    """Worker address -> (pid, whether ydf_tf is imported there)."""
    return client.run(lambda: (os.getpid(), "ydf_tf" in sys.modules))


def test_dask_workers_load_the_ydf_ops_themselves(gbdt_run, tmp_path):
    import distributed

    data, result, student, raw = gbdt_run
    # Four input shards, so both workers get work.
    shards = str(tmp_path / "in")
    input_config = config_lib.without_kd(student).data_config
    for i in range(4):
        tables.write_table(raw.slice(i * 400, 400), shards, input_config, shard=f"in-{i}")
    out = str(tmp_path / "soft")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        before = _worker_modules(client)
        stats = job.generate_soft_labels(
            result.model_dir, shards, out, student,
            runner="apache_beam.runners.dask.dask_runner.DaskRunner",
            beam_args=[f"--dask_client_address={cluster.scheduler_address}",
                       "--dask_npartitions=4"])
        after = _worker_modules(client)
    assert len(after) == 2 and all(pid != os.getpid() for pid, _ in after.values())
    assert not any(loaded for _, loaded in before.values())
    # The rows were labelled in worker processes, which imported ydf_tf (from custom_ops).
    assert any(loaded for _, loaded in after.values()), after
    assert (stats["rows_read"], stats["rows_written"]) == (raw.num_rows, raw.num_rows)
    _check_rows_and_soft_labels(raw, _labelled(student, out), result.export_dir)
