"""Component: pick the kd sweep's candidate on the validation split."""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def select_candidate(candidates: Input[List[Model]], validation: Input[Dataset], config: str,
                     validation_fraction: float, metric: str, run_date: str,
                     model: Output[Model], baseline: Output[Model], metrics: Output[Metrics],
                     report: Output[HTML], selection: Output[Artifact]):
    """Scores every kd candidate and the baseline on the validation rows; the best goes on.

    A kd student goes on only when it beats its own baseline; a tie goes to the baseline
    (``recdistill.selection``). Without a validation split the configured kd student goes on.

    Args:
      candidates: every model of the sweep, trained side by side (``prepare_sweep``'s items):
        the kd students and the baseline trained without kd on the same rows; each model's
        metadata names its candidate.
      validation: the held-out training rows (``prepare_sweep``).
      config: URI of the student's EasyRec config (label, GAUC uid_field).
      validation_fraction: the split's fraction; 0: no validation rows, no scoring.
      metric: auc or gauc, higher wins.
      run_date: the run's date; part of the cache key.
      model: the chosen model's export, what evaluate and push take.
      baseline: the baseline's export, which evaluate compares the chosen model with.
      metrics: every candidate's validation AUC/GAUC/logloss and chose_baseline.
      report: the candidates' table and plot as HTML.
      selection: the folder with selection.json and selection.html (evaluate's report shows it).
    """
    from recdistill import selection as selection_lib
    from recdistill import steps

    trained = {m.metadata["candidate"]: m for m in candidates}
    plain = trained.pop(selection_lib.BASELINE)
    result = steps.select_candidate(
        config, {name: m.uri for name, m in trained.items()}, plain.uri,
        validation.uri if validation_fraction > 0 else "", selection.uri, model.uri,
        metric=metric, overrides={name: m.metadata.get("overrides", {})
                                  for name, m in trained.items()},
        report_copy=report.path, baseline_copy=baseline.uri)
    model.metadata["candidate"] = result.chosen
    for key, value in sorted(result.scalars.items()):
        metrics.log_metric(key, value)
