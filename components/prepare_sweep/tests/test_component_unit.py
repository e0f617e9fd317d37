"""Unit test of prepare_sweep: candidates for ParallelFor, row counts on the artifacts."""

import json

from kfp.dsl import Dataset

from components.prepare_sweep.component import prepare_sweep


def test_prepare_sweep_returns_one_item_per_candidate_with_champion_and_date(record, artifact):
    candidates = [{"name": "kd", "overrides": {}},
                  {"name": "kd_v1", "overrides": {"loss_weight": 0.5}},
                  {"name": "baseline", "overrides": {}, "without_kd": True}]
    split = {"train_rows": 90, "validation_rows": 10, "split": "time", "key": "user_id",
             "fraction": 0.1}
    calls = record("prepare_sweep", (candidates, split))
    data, train, valid = artifact(Dataset, "in"), artifact(Dataset, "t"), artifact(Dataset, "v")
    items = prepare_sweep.python_func(
        train_data=data, config="s.config", kd_variants=[{"loss_weight": 0.5}],
        validation_fraction=0.1, validation_key="", run_date="d", champion="gs://b/s/3",
        train=train,
        validation=valid, max_bad_rows_fraction=0.01, validation_split="time")
    assert [json.loads(item["candidate"]) for item in items] == candidates
    assert all((item["warm_start"], item["run_date"]) == ("gs://b/s/3", "d") for item in items)
    [(_, args, kwargs)] = calls
    assert args == ("s.config", data.uri, train.uri, valid.uri)
    assert kwargs == {"variants_json": [{"loss_weight": 0.5}], "fraction": 0.1, "key": "",
                      "split": "time", "max_bad_rows_fraction": 0.01}
    assert train.metadata == {"rows": 90, "key": "user_id"}
    assert valid.metadata == {"rows": 10, "key": "user_id", "fraction": 0.1, "split": "time"}
