"""Component: evaluate the student, write the report, decide the blessing."""

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, HTML, Input, Metrics, Model, Output

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def evaluate(model: Input[Model], eval_data: Input[Dataset], config: str, teacher: Input[Model],
             baseline: Input[Model], champion: str, thresholds: str, run_date: str,
             metrics: Output[Metrics], roc: Output[ClassificationMetrics], report: Output[HTML],
             evaluation: Output[Artifact], selection: Input[Artifact] = None) -> bool:
    """Scores the eval table with student, teacher, baseline and champion; returns blessed.

    Args:
      model: the candidate student.
      eval_data: the evaluation table.
      config: URI of the student's EasyRec config (label and GAUC user-id fields).
      teacher: the teacher, for agreement metrics.
      baseline: the student trained without kd, for the kd gain.
      champion: export URI of the currently served model ('' on the first run).
      thresholds: thresholds file URI or inline YAML/JSON ('' blesses nothing).
      run_date: the run's date; part of the cache key.
      metrics: every scalar of the evaluation (per-model AUC/GAUC/logloss, kd gain, agreement).
      roc: the student's ROC curve and confusion matrix.
      report: the HTML report.
      evaluation: the evaluation folder (metrics.json, report.html) that push checks.
      selection: the kd sweep's choice (``select_candidate``), shown in the report; optional.

    Returns:
      whether the student is blessed (the push step runs only then).
    """
    from recdistill import steps

    result = steps.evaluate(model.uri, eval_data.uri, config, evaluation.uri,
                            teacher_uri=teacher.uri, champion_uri=champion,
                            baseline_uri=baseline.uri, thresholds=thresholds,
                            report_copy=report.path,
                            selection_uri=selection.uri if selection else "")
    for key, value in sorted(result.scalars.items()):
        metrics.log_metric(key, value)
    roc.log_roc_curve(result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"])
    roc.log_confusion_matrix(result.confusion_matrix["categories"],
                             result.confusion_matrix["matrix"])
    return result.blessed
