"""The distillation pipeline: teacher → soft labels → students and baseline → select →
evaluate → push.

Compiled to ``pipelines/kd_pipeline.yaml`` (``recdistill compile``), run with ``kfp run
create`` or scheduled daily with ``kfp recurring-run create``; ``recdistill run`` executes
the same DAG with ``kfp.local`` on one machine.

Every step gets ``run_date`` so that its cache key changes with the day: a daily run never
reuses yesterday's outputs even when a data URI has no ``{date}`` in it.
"""

from typing import List

from kfp import dsl, kubernetes
from kfp.dsl import pipeline_channel

from components.cross_fit_folds.component import cross_fit_folds as cross_fit_folds_op
from components.current_champion.component import current_champion
from components.evaluate.component import evaluate
from components.fold_teacher_uris.component import fold_teacher_uris
from components.generate_soft_labels.component import generate_soft_labels
from components.prepare_sweep.component import prepare_sweep
from components.prepare_teacher.component import prepare_teacher
from components.push_model.component import push_model
from components.resolve_data_uris.component import resolve_data_uris
from components.select_candidate.component import select_candidate
from components.teacher_placement.component import teacher_placement
from components.train_fold_teacher.component import train_fold_teacher
from components.train_model.component import train_model

PIPELINE_NAME = "recdistill-kd"
#: Retries of every step that reads or writes the data, model or serving stores (or runs a
#: Beam job): a transient store or runner error must not fail a daily run. Training resumes
#: from its checkpoint and recdistill.push makes one version of one model, so a retry repeats
#: no finished work.
IO_RETRIES = 2
#: ``set_retry`` arguments: the first retry after 30 s, doubling, so a brief outage can pass.
RETRY = dict(num_retries=IO_RETRIES, backoff_duration="30s", backoff_factor=2)


#: CPU/memory of the push step. Constants: KFP 2.17's compiler does not pass a pipeline
#: parameter used only in a resource request into a dsl.If sub-DAG, so a parameterised request
#: there cannot be resolved (kfp.local fails with "pipelinechannel--… not found").
PUSH_REQUEST = dict(cpu="1", memory="4G")
#: CPU/memory of the fold teachers and the small steps around them, inside the cross-fitting
#: condition: constants for the same reason as PUSH_REQUEST. The GPU node selector and
#: tolerations are still the trainer_* parameters.
FOLD_TEACHER_REQUEST = dict(cpu="4", memory="16G")
CROSS_FIT_STEP_REQUEST = dict(cpu="1", memory="4G")


def _request_gpu(task: dsl.PipelineTask, *, cpu: str, memory: str, node_selector,
                 tolerations, gpus=1) -> dsl.PipelineTask:
    """NVIDIA GPUs (``gpus``, a number or a task output), CPU/memory and GPU-node placement.

    kfp.local ignores all of it (with a warning), so the same DAG runs on a laptop.
    """
    task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus)
    _request(task, cpu=cpu, memory=memory)
    kubernetes.add_node_selector_json(task, node_selector)
    kubernetes.add_toleration_json(task, tolerations)
    return task


def _request(task: dsl.PipelineTask, *, cpu: str, memory: str) -> dsl.PipelineTask:
    """CPU and memory requests of a step (pipeline parameters, so each run can size them).

    The parameters are registered as the task's inputs too: KFP 2.17's compiler passes a
    parameter used only in a resource request into no sub-DAG, so a step inside the kd
    sweep's ParallelFor could not resolve it (kfp.local: "pipelinechannel--… not found").
    """
    task.register_pipeline_channels([value for value in (cpu, memory)
                                     if isinstance(value, pipeline_channel.PipelineChannel)])
    return task.set_cpu_request(cpu).set_memory_request(memory)


def _fold_teachers(num_folds, key, *, student_config, teacher_config, train_rows, eval_table,
                   validation, validation_fraction, date, num_steps, node_selector,
                   tolerations):
    """The cross-fitting fold teachers' URIs: ``dsl.ParallelFor`` trains one per fold (GPU
    pods in parallel) when ``num_folds`` is not 0 (1 and negatives fail in cross_fit_folds,
    naming the fix); [] otherwise, and the soft labels come from the one teacher."""
    with dsl.If(num_folds != 0, name="cross-fit"):
        folds = _request(cross_fit_folds_op(student_config=student_config, num_folds=num_folds,
                                            key=key, run_date=date), **CROSS_FIT_STEP_REQUEST)
        with dsl.ParallelFor(folds.output, name="fold-teachers") as fold:
            trained = _request_gpu(
                train_fold_teacher(config=teacher_config, student_config=student_config,
                                   key=key, fold=fold, num_folds=num_folds,
                                   train_data=train_rows, eval_data=eval_table.output,
                                   validation=validation,
                                   validation_fraction=validation_fraction,
                                   run_date=date, num_steps=num_steps),
                **FOLD_TEACHER_REQUEST, node_selector=node_selector,
                tolerations=tolerations).set_retry(**RETRY)
        collected = _request(fold_teacher_uris(teachers=dsl.Collected(trained.outputs["teacher"])),
                             **CROSS_FIT_STEP_REQUEST)
    with dsl.Else(name="one-teacher"):
        none = _request(fold_teacher_uris(), **CROSS_FIT_STEP_REQUEST)
    return dsl.OneOf(collected.output, none.output)


@dsl.pipeline(name=PIPELINE_NAME,
              description="Knowledge distillation: a teacher's soft labels train a student "
                          "that is evaluated against the champion and pushed when blessed.")
def kd_pipeline(
    student_config: str,
    train_data: str,
    eval_data: str,
    push_destination: str,
    teacher_config: str = "",
    teacher_uri: str = "",
    run_date: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
    thresholds: str = "",
    beam_runner: str = "DirectRunner",
    beam_args: List[str] = [],
    max_bad_rows_fraction: float = 0.0,
    num_steps: int = 0,
    keep_versions: int = 5,
    trainer_cpu: str = "4",
    trainer_memory: str = "16G",
    trainer_node_selector: dict = {},
    trainer_tolerations: list = [],
    train_workers: int = 1,
    beam_cpu: str = "4",
    beam_memory: str = "16G",
    runtime_cpu: str = "1",
    runtime_memory: str = "4G",
    cross_fit_folds: int = 0,
    cross_fit_key: str = "",
    kd_variants: list = [],
    validation_fraction: float = 0.1,
    validation_key: str = "",
    selection_metric: str = "auc",
    validation_split: str = "user",
):
    """Distils a teacher into the student of ``student_config`` and pushes it when blessed.

    Args:
      student_config: URI of the student's EasyRec config (with its kd blocks).
      train_data: training table URI; ``{date}`` is replaced by the run date.
      eval_data: evaluation table URI; ``{date}`` is replaced by the run date.
      push_destination: versioned serving location (local path or gs://) and champion source.
      teacher_config: URI of the teacher's config, trained when ``teacher_uri`` is ''.
      teacher_uri: an existing teacher export to reuse, or ''.
      run_date: defaults to the schedule time of a recurring run.
      thresholds: blessing thresholds (file URI or inline YAML/JSON); '' blesses nothing.
      beam_runner: Beam runner of the soft-label job.
      beam_args: extra Beam pipeline options.
      max_bad_rows_fraction: malformed rows tolerated by the soft-label job.
      num_steps: training steps for every model (0 = each config's num_steps).
      keep_versions: pushed versions to keep.
      trainer_cpu: CPU request of the training steps.
      trainer_memory: memory request of the training steps.
      trainer_node_selector: node labels for the training pods, e.g.
        {"cloud.google.com/gke-accelerator": "nvidia-l4"}.
      trainer_tolerations: tolerations for the training pods, e.g. [{"key":
        "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}].
      train_workers: pods per training step. 1 trains in the step's pod; N > 1 makes each
        step submit a Training Operator TFJob of N workers, each sized and placed like the
        step (the trainer_* parameters), and wait for it (README, Scaling).
      beam_cpu: CPU request of the soft-label step (the DirectRunner uses them all; with a
        distributed runner the step only submits the job).
      beam_memory: memory request of the soft-label step.
      runtime_cpu: CPU request of the other CPU steps (evaluate, champion, dates; the push
        step inside the blessing condition requests PUSH_REQUEST).
      runtime_memory: memory request of the other CPU steps.
      cross_fit_folds: K >= 2: honest soft labels, each row scored by one of K fold teachers
        (trained in parallel from ``teacher_config``) that never saw its fold; the teacher
        trained on all rows (or ``teacher_uri``) is still the one evaluated. 0 = off.
      cross_fit_key: the fold key column (a user or session id); '' = the student config's
        gauc uid_field, else its kd session_name.
      kd_variants: the kd sweep: overrides of the kd blocks' loss_weight, temperature,
        loss_type (and "kd_block", one block's soft_label_name), each trained beside the
        configured student, e.g. [{"loss_weight": 0.5}, {"temperature": 2}].
      validation_fraction: training rows held out to choose among the kd students and the
        baseline, in steps of 0.01; every model the run trains stops early on them, not on
        the eval table; 0: no split, no choice (the configured kd student goes on, models
        stop early on the eval table, as before).
      validation_key: for validation_split user, the key column ('' = the GAUC uid_field,
        else a kd session column); for time, the time column ('' = row order).
      selection_metric: auc or gauc, on the validation rows.
      validation_split: user (whole users held out, by a hash of validation_key) or time
        (the latest rows of the training window, like the eval table's later rows).
    """
    gpu = dict(cpu=trainer_cpu, memory=trainer_memory, node_selector=trainer_node_selector,
               tolerations=trainer_tolerations)
    cpu = dict(cpu=runtime_cpu, memory=runtime_memory)
    uris = _request(resolve_data_uris(run_date=run_date, train_data_template=train_data,
                                      eval_data_template=eval_data),
                    **cpu).set_caching_options(False)
    date = uris.outputs["run_date"]
    train_table = dsl.importer(artifact_uri=uris.outputs["train_data"],
                               artifact_class=dsl.Dataset, reimport=True).set_display_name(
                                   "train-data")
    eval_table = dsl.importer(artifact_uri=uris.outputs["eval_data"],
                              artifact_class=dsl.Dataset, reimport=True).set_display_name(
                                  "eval-data")

    # Never cached: the champion changes whenever a push lands, also twice on one day.
    champion = _request(current_champion(destination=push_destination, run_date=date),
                        **cpu).set_caching_options(False).set_retry(**RETRY)
    # The kd sweep's holdout: no model of the run trains on it; they stop early on it and
    # select_candidate chooses on it, so the eval table (which blesses) chose nothing.
    sweep = _request(prepare_sweep(
        train_data=train_table.output, config=student_config, kd_variants=kd_variants,
        validation_fraction=validation_fraction, validation_key=validation_key,
        validation_split=validation_split, run_date=date, champion=champion.output,
        max_bad_rows_fraction=max_bad_rows_fraction),
        cpu=beam_cpu, memory=beam_memory).set_retry(**RETRY)
    train_rows, validation = sweep.outputs["train"], sweep.outputs["validation"]
    stopping = dict(eval_data=eval_table.output, validation=validation,
                    validation_fraction=validation_fraction)

    # Reusing ``teacher_uri`` only copies an export: no GPU, no GPU node.
    placement = _request(teacher_placement(teacher_uri=teacher_uri,
                                           node_selector=trainer_node_selector), **cpu)
    teacher = _request_gpu(
        prepare_teacher(config=teacher_config, teacher_uri=teacher_uri, train_data=train_rows,
                        run_date=date, num_steps=num_steps, workers=train_workers, **stopping),
        **{**gpu, "node_selector": placement.outputs["node_selector"]},
        gpus=placement.outputs["gpus"]).set_retry(**RETRY)
    fold_teachers = _fold_teachers(
        cross_fit_folds, cross_fit_key, student_config=student_config,
        teacher_config=teacher_config, train_rows=train_rows, eval_table=eval_table,
        validation=validation, validation_fraction=validation_fraction, date=date,
        num_steps=num_steps, node_selector=trainer_node_selector,
        tolerations=trainer_tolerations)
    soft_labels = _request(generate_soft_labels(
        teacher=teacher.outputs["teacher"], config=student_config,
        train_data=train_rows, run_date=date, runner=beam_runner, beam_args=beam_args,
        max_bad_rows_fraction=max_bad_rows_fraction, fold_teachers=fold_teachers),
        cpu=beam_cpu, memory=beam_memory).set_retry(**RETRY)

    # The configured kd student, each variant and the baseline: one pod each, in parallel
    # (prepare_sweep lists them; the baseline trains on the rows without soft labels and, like
    # the students, starts from the champion, so the choice compares kd, not warm vs cold).
    # Date and champion come in the items.
    with dsl.ParallelFor(sweep.outputs["Output"], name="sweep-candidates") as item:
        candidate = _request_gpu(
            train_model(config=student_config, train_data=train_rows,
                        soft_labels=soft_labels.outputs["soft_labels"], run_date=item.run_date,
                        warm_start=item.warm_start, num_steps=num_steps,
                        candidate=item.candidate, workers=train_workers, **stopping),
            **gpu).set_display_name("train-candidate").set_retry(**RETRY)

    chosen = _request(select_candidate(
        candidates=dsl.Collected(candidate.outputs["model"]), validation=validation,
        config=student_config, validation_fraction=validation_fraction,
        metric=selection_metric, run_date=date), **cpu).set_retry(**RETRY)
    evaluation = _request(evaluate(model=chosen.outputs["model"], eval_data=eval_table.output,
                                   config=student_config, teacher=teacher.outputs["teacher"],
                                   baseline=chosen.outputs["baseline"], champion=champion.output,
                                   thresholds=thresholds, run_date=date,
                                   selection=chosen.outputs["selection"]),
                          **cpu).set_retry(**RETRY)
    with dsl.If(evaluation.outputs["Output"] == True, name="blessed"):  # noqa: E712 (KFP DSL)
        _request(push_model(model=chosen.outputs["model"],
                            evaluation=evaluation.outputs["evaluation"],
                            destination=push_destination, run_date=date, keep=keep_versions),
                 **PUSH_REQUEST).set_retry(**RETRY)

