"""The same soft-label job on Beam's Dask runner with two worker processes: proves nothing
depends on state in the launching process (pickled DoFns, files the workers can see)."""

import numpy as np
import pyarrow as pa
import pytest

from soft_label_helpers import expected_logits, make_rows, student_config
from recdistill.data import filesystems, tables
from recdistill.soft_labels import job

pytestmark = pytest.mark.slow


def test_dask_runner_with_two_worker_processes_gives_the_same_rows(teacher, tmp_path):
    import distributed
    cfg = student_config("ParquetInput")
    rows = make_rows(90, seed=11)
    for i in range(3):
        part = pa.table({k: v[30 * i:30 * (i + 1)] for k, v in rows.items()})
        tables.write_table(part, str(tmp_path / "in"), cfg.data_config, shard=f"in-{i}")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        stats = job.generate_soft_labels(
            teacher, str(tmp_path / "in"), str(tmp_path / "out"), cfg,
            runner="apache_beam.runners.dask.dask_runner.DaskRunner",
            beam_args=[f"--dask_client_address={cluster.scheduler_address}",
                       "--dask_npartitions=3"])
    assert (stats["rows_read"], stats["rows_written"]) == (90, 90)
    got = pa.concat_tables(tables.read_table(uri, cfg.data_config)
                           for uri in filesystems.expand(str(tmp_path / "out")))
    assert got.column("adgroup_id").to_pylist() == list(rows["adgroup_id"])
    np.testing.assert_allclose(got.column("kd_soft").to_numpy(),
                               expected_logits(rows["user_id"], rows["cate_id"], rows["price"]),
                               atol=1e-5)
