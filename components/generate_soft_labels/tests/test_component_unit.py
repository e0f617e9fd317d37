"""Unit test of generate_soft_labels: artifact URIs and Beam options forwarded to the job."""

from kfp.dsl import Dataset, Metrics, Model

from components.generate_soft_labels.component import generate_soft_labels


def test_generate_soft_labels_forwards_uris_and_beam_options(record, artifact, tmp_path):
    calls = record("generate_soft_labels", {"rows_read": 10, "rows_written": 9,
                                            "rows_rejected": 1, "soft_labels": {}})
    stats = artifact(Metrics, "stats")
    generate_soft_labels.python_func(
        teacher=artifact(Model, "teacher"), config="c.config",
        train_data=artifact(Dataset, "train"), run_date="d",
        soft_labels=artifact(Dataset, "soft"), stats=stats, runner="DataflowRunner",
        beam_args=["--project=p"], max_bad_rows_fraction=0.01)
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "teacher"), "c.config", str(tmp_path / "train"),
                    str(tmp_path / "soft"))
    assert kwargs == dict(runner="DataflowRunner", beam_args=["--project=p"],
                          max_bad_rows_fraction=0.01)
    assert stats.metadata == {"rows_read": 10, "rows_written": 9, "rows_rejected": 1}
