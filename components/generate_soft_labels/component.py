"""Component: the Beam job writing the training table back with the teacher's soft labels."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def generate_soft_labels(teacher: Input[Model], config: str, train_data: Input[Dataset],
                         run_date: str, soft_labels: Output[Dataset], stats: Output[Metrics],
                         runner: str = "DirectRunner", beam_args: List[str] = [],
                         max_bad_rows_fraction: float = 0.0, fold_teachers: List[str] = []):
    """Runs the teacher over every training row and adds one soft-label column per kd block.

    Args:
      teacher: the teacher model (its export is run by a Beam ModelHandler).
      config: URI of the student's EasyRec config (its kd blocks name the soft-label columns).
      train_data: the training table.
      run_date: the run's date; part of the cache key.
      soft_labels: the training table with one soft-label column per kd block, and stats.json.
      stats: rows read, written and rejected; per soft-label column ``teacher_auc_<column>``
        (the teacher's AUC against the hard label on the rows it scored),
        ``teacher_eval_auc_<column>`` (its AUC on its own eval data) and
        ``teacher_auc_gap_<column>``, each suffixed ``_<label>`` when the config has several
        hard labels; and ``soft_labels_repeat_clicks`` (1 when the leak guard found the
        teacher far better on the scored rows than on its eval data).
      runner: Beam runner: DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...
      beam_args: extra Beam pipeline options, e.g. ["--project=p", "--region=r"].
      max_bad_rows_fraction: share of malformed rows sent to the dead-letter output before
        the job fails (0: any bad row fails it).
      fold_teachers: cross-fitted soft labels: the K fold teachers' URIs, each row then
        scored by the one trained without its fold instead of by ``teacher``; [] = off.
    """
    from recdistill import steps

    result = steps.generate_soft_labels(fold_teachers or teacher.uri, config, train_data.uri, soft_labels.uri,
                                        runner=runner, beam_args=beam_args,
                                        max_bad_rows_fraction=max_bad_rows_fraction)
    for key, value in sorted(steps.soft_label_metrics(result).items()):
        stats.log_metric(key, value)
