"""Unit test of select_candidate: candidates named from metadata, scalars logged."""

import types

from kfp.dsl import HTML, Artifact, Dataset, Metrics, Model

from components.select_candidate.component import select_candidate


def _run(artifact, fraction):
    kd, v1, base = artifact(Model, "kd"), artifact(Model, "v1"), artifact(Model, "base")
    kd.metadata.update(candidate="kd", overrides={})
    v1.metadata.update(candidate="kd_v1", overrides={"temperature": 2.0})
    base.metadata.update(candidate="baseline", overrides={})
    outputs = dict(model=artifact(Model, "model"), baseline=artifact(Model, "base copy"),
                   metrics=artifact(Metrics, "m"), report=artifact(HTML, "h"),
                   selection=artifact(Artifact, "s"))
    select_candidate.python_func(
        candidates=[kd, base, v1], validation=artifact(Dataset, "valid"), config="s.config",
        validation_fraction=fraction, metric="gauc", run_date="d", **outputs)
    return kd, v1, outputs


def test_select_candidate_passes_named_candidates_and_logs_every_score(record, artifact):
    result = types.SimpleNamespace(chosen="baseline",
                                   scalars={"valid_gauc_kd": 0.6, "chose_baseline": 1.0})
    calls = record("select_candidate", result)
    kd, v1, out = _run(artifact, 0.1)
    [(_, args, kwargs)] = calls
    assert args == ("s.config", {"kd": kd.uri, "kd_v1": v1.uri}, artifact(Model, "base").uri,
                    artifact(Dataset, "valid").uri, out["selection"].uri, out["model"].uri)
    assert kwargs["metric"] == "gauc" and kwargs["report_copy"] == out["report"].path
    assert kwargs["baseline_copy"] == out["baseline"].uri  # evaluate reads the baseline here
    assert kwargs["overrides"] == {"kd": {}, "kd_v1": {"temperature": 2.0}}
    assert out["model"].metadata == {"candidate": "baseline"}
    assert out["metrics"].metadata == {"chose_baseline": 1.0, "valid_gauc_kd": 0.6}


def test_without_a_validation_split_no_validation_table_is_passed(record, artifact):
    calls = record("select_candidate", types.SimpleNamespace(chosen="kd", scalars={}))
    _run(artifact, 0.0)
    [(_, args, _)] = calls
    assert args[3] == ""
