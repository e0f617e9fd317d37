"""The kd sweep's models stop early on the validation split, never on the eval table.

A checkpoint picked on the eval table makes the blessed model's eval AUC optimistic (issue 11:
"never on the final eval table, which stays unbiased"). With a validation split every model
the pipeline trains evaluates on it (``steps.train_model(validation_uri=...)``); without one,
on the eval table as before.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from recdistill import config as config_lib  # noqa: E402
from recdistill import evaluation, exported, steps  # noqa: E402
from recdistill.data import sample  # noqa: E402


@pytest.mark.slow
def test_early_stopping_reads_the_validation_split_not_the_eval_table(tmp_path):
    data = sample.write_sample_data(str(tmp_path / "data"), rows=600)
    cfg = config_lib.load_config(data.student_nokd_config)
    cfg.data_config.batch_size = 32
    stopping = cfg.train_config.early_stopping
    stopping.eval_every_steps, stopping.patience = 4, 2
    config_uri = str(tmp_path / "student.config")
    with open(config_uri, "w") as f:
        f.write(config_lib.to_text(cfg))
    train, valid = str(tmp_path / "train"), str(tmp_path / "valid")
    candidates, split = steps.prepare_sweep(data.student_config, data.train_path, train, valid,
                                            fraction=0.2, split="time")
    # the sweep trains the configured kd student and, beside it, the baseline without kd
    assert candidates == [{"name": "kd", "overrides": {}},
                          {"name": "baseline", "overrides": {}, "without_kd": True}]
    assert split["validation_rows"] == 96  # the latest 20% of 480 training rows

    def trained(name, validation_uri):
        result = steps.train_model(config_uri, str(tmp_path / name), train_uri=train,
                                   eval_uri=data.eval_path, validation_uri=validation_uri,
                                   num_steps=40)
        summary = exported.read_metadata(result.export_dir)["early_stopping"]
        best = next(e for e in summary["evaluations"] if e["step"] == summary["best_step"])
        on = {table: evaluation.compare_models(uri, cfg, {"m": result.export_dir})["m"]["auc"]
              for table, uri in (("valid", valid), ("eval", data.eval_path))}
        return best["eval_auc"], on

    recorded, on = trained("with_split", valid)
    # the exported (best) weights score the recorded AUC on the validation rows, not on eval
    assert recorded == pytest.approx(on["valid"], abs=1e-5)
    assert abs(on["eval"] - on["valid"]) > 1e-3
    recorded, on = trained("without_split", "")  # no split: the eval table, as before
    assert recorded == pytest.approx(on["eval"], abs=1e-5)
