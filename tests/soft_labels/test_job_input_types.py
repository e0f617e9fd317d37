"""Every EasyRec input_type that training reads, the soft-label job reads too (issue 14: a
``CSVInputV2`` config trained, then failed in the soft-label job)."""

import numpy as np
import pyarrow as pa
import pytest

from soft_label_helpers import expected_logits, make_rows, student_config
from recdistill import config as config_lib
from recdistill.data import datasets, filesystems, tables
from recdistill.soft_labels import job

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("input_type", ["CSVInputV2", "CSVInputEx", "BatchTFRecordInput"])
def test_soft_labels_then_training_input_read_the_same_input_type(teacher, tmp_path, input_type):
    cfg = student_config(input_type)
    rows = make_rows(40, seed=2)
    raw = config_lib.without_kd(cfg).data_config
    columns = [f.input_name for f in raw.input_fields]
    tables.write_table(pa.table({n: rows[n] for n in columns}), str(tmp_path / "in"), raw)

    stats = job.generate_soft_labels(teacher, str(tmp_path / "in"), str(tmp_path / "out"), cfg,
                                     batch_size=16)

    assert stats["rows_written"] == 40
    written = filesystems.expand(str(tmp_path / "out"))
    want = expected_logits(rows["user_id"], rows["cate_id"], rows["price"])
    got = pa.concat_tables(tables.read_table(uri, cfg.data_config) for uri in written)
    np.testing.assert_allclose(got.column("kd_soft").to_numpy(), want, atol=1e-5)
    # ... and the tf.data reader training uses takes the same files with the same config.
    batches = datasets.make_dataset(str(tmp_path / "out"), cfg, columns=["user_id"],
                                    labels=["kd_soft"], batch_size=16, shuffle=False,
                                    num_epochs=1)
    soft = np.concatenate([labels["kd_soft"].numpy() for _, labels in batches])
    np.testing.assert_allclose(soft, want, atol=1e-5)
