"""Component: train a student (with or without kd) from its EasyRec config."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_model(config: str, train_data: Input[Dataset], eval_data: Input[Dataset],
                run_date: str, model: Output[Model], metrics: Output[Metrics],
                report: Output[HTML], soft_labels: Input[Dataset] = None,
                warm_start: str = "", num_steps: int = 0, mixed_precision: bool = False,
                workers: int = 1, candidate: str = "", validation: Input[Dataset] = None,
                validation_fraction: float = 0.0):
    """Trains the model of ``config``: hard-label loss plus every kd block's loss.

    Args:
      config: URI of the EasyRec config.
      train_data: the training rows without soft labels: what a candidate without kd (the
        baseline) trains on, and a kd student when ``soft_labels`` is not given (a table that
        already carries the soft-label columns).
      eval_data: the evaluation table, scored at the end of training (and by early stopping)
        when there is no validation split.
      run_date: the run's date; part of the cache key.
      model: the trained model (model_dir with its export).
      metrics: the training report's scalars (final loss, eval AUC, ...).
      report: the training report (loss curves) as HTML.
      soft_labels: the training rows with the teacher's soft labels (``generate_soft_labels``):
        what a kd student trains on.
      warm_start: an export to initialise from (yesterday's champion), or ''.
      num_steps: training steps (0 = the config's train_config.num_steps).
      mixed_precision: train in mixed_float16 (GPUs with tensor cores).
      workers: training pods. 1 trains in this step's pod; N > 1 submits a Training Operator
        TFJob of N workers shaped like this pod (image, resources, placement) into ``model``
        (the pipeline root must be on gs://) and waits for it.
      candidate: a kd sweep candidate as JSON (``prepare_sweep``), {"name", "overrides",
        "without_kd"?}: the overrides apply to the kd blocks, ``without_kd`` drops them (the
        baseline that measures the kd gain), the name goes into the model's metadata; ''
        trains the config as it is.
      validation: the kd sweep's validation rows (``prepare_sweep``): with
        ``validation_fraction`` > 0 training evaluates on them instead of ``eval_data``, so
        the eval table picks no checkpoint of a model it later blesses.
      validation_fraction: the split's fraction; 0: no validation rows, ``eval_data`` is used.
    """
    import json

    from recdistill import steps

    chosen = json.loads(candidate) if candidate else {}
    without_kd = bool(chosen.get("without_kd"))
    table = train_data if without_kd or soft_labels is None else soft_labels
    result = steps.train_model(config, model.uri, train_uri=table.uri,
                               eval_uri=eval_data.uri, warm_start=warm_start,
                               without_kd=without_kd, num_steps=num_steps,
                               mixed_precision=mixed_precision, report_copy=report.path,
                               workers=workers, kd_overrides=chosen.get("overrides"),
                               variant_name=chosen.get("name", "variant"),
                               validation_uri=(validation.uri if validation is not None
                                               and validation_fraction > 0 else ""))
    if chosen:
        model.metadata.update(candidate=chosen["name"], overrides=chosen.get("overrides", {}))
    for key, value in sorted(result.metrics.items()):
        metrics.log_metric(key, value)
