"""Run ``kd_pipeline`` end to end on one machine with ``kfp.local`` (``recdistill run``).

The same DAG as in Kubeflow, each step in a subprocess of this Python (no Docker): with no
arguments it writes the bundled synthetic sample and distils its DCN teacher into the DSSM
student, leaving the pushed model in ``<workdir>/serving/<version>/``.
"""

import builtins
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import time
import warnings

from kfp import local

from pipelines.kd_pipeline import PIPELINE_NAME, kd_pipeline
from recdistill.data import filesystems

logger = logging.getLogger(__name__)

#: Blessing thresholds of the embedded sample run (any real run passes its own).
SAMPLE_THRESHOLDS = {"min_auc": 0.6, "max_auc_drop": 0.01}
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class LocalRun:
    """What a local run produced.

    Attributes:
      run_dir: the kfp.local folder of this run (one sub-folder per task).
      artifacts: "<task>/<output>" -> local path, for every output of every task.
      metrics: the evaluate step's metrics.json (empty if evaluate did not run).
      serving_dir: the push destination (versions appear there when blessed).
      seconds: wall time of the pipeline.
    """

    run_dir: str
    artifacts: dict
    metrics: dict
    serving_dir: str
    seconds: float


def run_local(workdir: str = "runs/local", *, student_config: str | None = None,
              teacher_config: str | None = None, teacher_uri: str = "",
              train_data: str | None = None, eval_data: str | None = None,
              thresholds: str | None = None, num_steps: int = 0,
              run_date: str | None = None, runner=None,
              serving_dir: str | None = None, cross_fit_folds: int = 0,
              cross_fit_key: str = "", kd_variants: list | None = None,
              validation_fraction: float = 0.1, validation_key: str = "",
              selection_metric: str = "auc", validation_split: str = "user") -> LocalRun:
    """Runs the pipeline with kfp.local (by default its SubprocessRunner).

    Args:
      workdir: where sample data, pipeline outputs and the serving folder go.
      student_config: the student's config; None runs the embedded sample (and then
        every other data/config argument defaults to the sample's).
      teacher_config: the teacher's config (trained unless ``teacher_uri`` is given).
      teacher_uri: an existing teacher export to reuse.
      train_data: training table URI (``{date}`` is filled with the run date).
      eval_data: evaluation table URI.
      thresholds: thresholds file or inline YAML/JSON; the sample run uses SAMPLE_THRESHOLDS.
      num_steps: training steps for every model (0: each config's num_steps).
      run_date: YYYY-MM-DD (default: today, UTC).
      runner: a kfp.local runner, e.g. ``docker_runner()`` to run each step in its image.
        DockerRunner mounts only the pipeline root, so then ``workdir`` itself is the
        pipeline root and the sample data and serving folder are inside it.
      serving_dir: the push destination (default ``<workdir>/serving``); any store the
        library reaches (``gs://``, ``s3://``, ``minio://``), as on a cluster.
      cross_fit_folds: K >= 2: cross-fitted soft labels from K fold teachers (0: off).
      cross_fit_key: their fold key column ('' = the student config's).
      kd_variants: the kd sweep's overrides of the kd blocks (``recdistill.kd.variants``).
      validation_fraction: training rows held out to choose among the kd students and the
        baseline (0: no split, the configured kd student goes on).
      validation_key: the holdout's column: the key for ``user`` ('' = the GAUC uid_field),
        the time column for ``time`` ('' = row order).
      selection_metric: auc or gauc on the validation rows.
      validation_split: user (whole users held out) or time (the latest training rows).

    Raises:
      ValueError: a user config was given without its data.
    """
    work = pathlib.Path(workdir).resolve()
    if student_config is None:
        from recdistill.data import sample

        data = sample.write_sample_data(str(work / "sample"))
        student_config, teacher_config = data.student_config, data.teacher_config
        train_data, eval_data = data.train_path, data.eval_path
        thresholds = thresholds or json.dumps(SAMPLE_THRESHOLDS)
    elif not (train_data and eval_data and (teacher_config or teacher_uri)):
        raise ValueError("with --student-config also pass --train, --eval and --teacher-config "
                         "(or --teacher to reuse an exported teacher)")
    serving = serving_dir or str(work / "serving")
    docker = isinstance(runner, local.DockerRunner)
    root = work if docker else work / "pipeline_root"
    # Each step is a subprocess that imports TensorFlow; keep its C++ start-up noise (CUDA
    # probing on CPU machines) out of the run's output unless the user asked for it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Expected on one machine: the steps run in this Python, not in their images, and GPU /
    # CPU / memory requests do not apply. kfp.local warns about both for every step.
    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
    local.init(runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    before = set(os.listdir(root)) if root.exists() else set()
    started = time.perf_counter()
    # The containers' user shares only its group with this process: folders created here
    # (run and task folders included) must be group-writable while the run lasts.
    umask = os.umask(0o002) if docker else None
    # kfp.local (2.17.3) indents every task's output by swapping builtins.print in and out;
    # ParallelFor iterations run in threads, and two of them swapping at once can leave the
    # indenting print installed after the run. Put this process's own print back.
    own_print = builtins.print
    try:
        if docker:
            _share_with_containers(work)
        kd_pipeline(student_config=student_config, teacher_config=teacher_config or "",
                    teacher_uri=teacher_uri, train_data=train_data, eval_data=eval_data,
                    push_destination=serving, thresholds=thresholds or "",
                    num_steps=num_steps, cross_fit_folds=cross_fit_folds,
                    cross_fit_key=cross_fit_key, kd_variants=kd_variants or [],
                    validation_fraction=validation_fraction, validation_key=validation_key,
                    selection_metric=selection_metric, validation_split=validation_split,
                    run_date=run_date or datetime.datetime.now(datetime.timezone.utc).strftime(
                        "%Y-%m-%d"))
    finally:
        builtins.print = own_print
        if umask is not None:
            os.umask(umask)
    seconds = time.perf_counter() - started
    [run_name] = [n for n in os.listdir(root) if n not in before and n.startswith(PIPELINE_NAME)]
    return _summarize(root / run_name, serving, seconds)


def docker_runner(**container_run_args) -> "local.DockerRunner":
    """A DockerRunner whose containers may write the host's pipeline root.

    The images run as a non-root user of group 0 (images/*/Dockerfile). The container gets the
    host user's uid and gid (uid 1000, the image's user, when the host runs as root) and group
    0 as a supplementary group, so it owns what it writes on the host and can write the image's
    HOME and artifact roots. ``container_run_args`` go to docker's ``containers.run``, e.g.
    ``network_mode="host"`` where the Docker engine has no bridge network.
    """
    user = f"{os.getuid() or 1000}:{os.getgid()}"
    return local.DockerRunner(user=user, group_add=["0"], **container_run_args)


def _share_with_containers(work: pathlib.Path) -> None:
    """Makes the folders under ``work`` group-writable for the containers' user (a root
    host's group 0 is the containers' supplementary group)."""
    for folder in [work, *(p for p in work.rglob("*") if p.is_dir())]:
        folder.chmod(folder.stat().st_mode | 0o070)


def _summarize(run_dir: pathlib.Path, serving: str, seconds: float) -> LocalRun:
    # A ParallelFor iteration (the kd sweep's students) is a folder of task folders.
    tasks = [folder for child in sorted(run_dir.iterdir()) if child.is_dir()
             for folder in (sorted(p for p in child.iterdir() if p.is_dir())
                            if "-iteration-" in child.name else [child])]
    artifacts = {f"{task.relative_to(run_dir)}/{output.name}": str(output)
                 for task in tasks
                 for output in sorted(task.iterdir()) if output.name != "executor_output.json"}
    metrics_file = run_dir / "evaluate" / "evaluation" / METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return LocalRun(run_dir=str(run_dir), artifacts=artifacts, metrics=metrics,
                    serving_dir=serving, seconds=seconds)


def format_summary(run: LocalRun) -> str:
    """The run's outputs, per-model metrics, kd gain, blessing and serving folder, as text."""
    lines = [f"pipeline finished in {run.seconds:.0f} s; outputs under {run.run_dir}:"]
    lines += [f"  {name:30s} {path}" for name, path in run.artifacts.items()]
    models = run.metrics.get("models", {})
    lines += ["", f"  {'model':10s} {'AUC':>7s} {'GAUC':>7s} {'logloss':>8s}"]
    for role in ("teacher", "student", "baseline", "champion"):
        if role in models:
            m = models[role]
            lines.append(f"  {role:10s} {_num(m.get('auc'))} {_num(m.get('gauc'))} "
                         f"{_num(m.get('logloss'), 8)}")
    gain = run.metrics.get("kd_gain") or {}
    if gain:
        lines.append(f"  kd gain (student - baseline): AUC {_num(gain.get('auc'), 0, '+.4f')}, "
                     f"GAUC {_num(gain.get('gauc'), 0, '+.4f')}")
    agreement = run.metrics.get("teacher_student") or {}
    if agreement:
        lines.append(f"  teacher-student agreement: Spearman "
                     f"{_num(agreement['spearman'], 0, '.3f')}, "
                     f"top-{agreement['topk_overlap']['k']} overlap "
                     f"{_num(agreement['topk_overlap']['mean'], 0, '.3f')}")
    chosen = run.metrics.get("selection") or {}
    if chosen:
        lines.append(f"  kd sweep: {chosen['chosen']} went on ({chosen['reason']})")
    blessing = run.metrics.get("blessing", {})
    lines.append(f"  blessed: {run.metrics.get('blessed')} "
                 f"({'; '.join(blessing.get('reasons', []))})")
    versions = [name for name in (filesystems.listdir(run.serving_dir)
                                  if filesystems.exists(run.serving_dir) else [])
                if not name.startswith(".")]  # push's claims and staging folders
    lines += ["", f"serving folder {run.serving_dir}: {', '.join(versions) or 'empty'}",
              f"report: {run.artifacts.get('evaluate/report', '-')}"]
    return "\n".join(lines)


def _num(value, width: int = 7, spec: str = ".4f") -> str:
    """``value`` formatted with ``spec``, or '-' for a metric that was not computed (None)."""
    return (format(value, spec) if isinstance(value, (int, float)) else "-").rjust(width)
