"""The soft-label job: an Apache Beam batch pipeline that runs a teacher over the training table.

Pipeline (the named transforms of transforms.py; one element per columnar chunk, never per
row)::

    Create(splits) -> Reshuffle -> ReadShards -> ScoreWithTeacher
        -> AttachSoftLabels -> WriteShards -> MergeSummaries ---------\
        ReadShards/AttachSoftLabels dead letters -> DeadLetters ------+-> WriteStats
        ReadShards read summaries -----------------------------------/

Rows travel inside ``pyarrow.RecordBatch`` es of ``batch_size`` rows, so memory stays at a
few batches whatever the data size, and output shard ``part-<input index>-<chunk index>``
keeps the input order when shards are read sorted. The unit of parallel work is a split
(splits.py): a row range of a Parquet file, a byte range of a CSV or uncompressed TFRecord
file, or a whole file where it cannot be cut (gzip).

Everything is written under :func:`recdistill.data.filesystems.atomic_dir`, so a failed or
re-run job never leaves a mix of old and new shards. Workers only see the shard URIs, the
handler (teacher URI) and plain config values, so the job runs the same on DirectRunner and on
distributed runners (Dataflow, Flink, Spark, Dask): nothing depends on the launching process.

Imports ``recdistill.config``, ``recdistill.exported`` and ``recdistill.data``; never ``kfp``.
"""

import logging
import time
from typing import Optional, Sequence, Union

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils import shared

from recdistill import config as config_lib
from recdistill.data import filesystems, json_files
from recdistill.protos import pipeline_pb2
from recdistill.soft_labels import fold_teachers, handlers
from recdistill.soft_labels import splits as splits_lib
from recdistill.soft_labels import stats as stats_lib
from recdistill.soft_labels import transforms

logger = logging.getLogger(__name__)

DEAD_LETTER_SUBDIR = transforms.DEAD_LETTER_SUBDIR
#: Where a failed job's rejected rows are kept: beside the output it did not publish.
DEAD_LETTER_SUFFIX = ".dead_letter"
#: What proves a folder is an earlier soft-label output, so the job may replace it.
_OUTPUT_MARKERS = (stats_lib.STATS_FILE,)
#: Runner names that mean "run here". Beam's "DirectRunner" first tries the Prism runner,
#: whose binary it downloads from the internet on every run; FnApiRunner is the in-process
#: runner it falls back to, so a local run never reaches out.
_LOCAL_RUNNERS = {"DirectRunner": "FnApiRunner"}
_FieldType = pipeline_pb2.DatasetConfig.FieldType


def generate_soft_labels(teacher_uri: Union[str, Sequence[str]], input_uri: str,
                         output_uri: str, cfg: pipeline_pb2.EasyRecConfig, *,
                         runner: str = "DirectRunner", cross_fit_key: str = "",
                         beam_args: Sequence[str] = (), max_bad_rows_fraction: float = 0.0,
                         batch_size: int = handlers.DEFAULT_BATCH_SIZE,
                         sample_size: int = stats_lib.DEFAULT_SAMPLE_SIZE,
                         max_auc_gap: float = stats_lib.LEAK_AUC_GAP,
                         rows_per_split: int = splits_lib.DEFAULT_ROWS_PER_SPLIT) -> dict:
    """Writes the input rows with the teacher's soft labels, and stats.json, to ``output_uri``.

    Args:
      teacher_uri: the teacher's export folder or model_dir (local or gs://, readable by
        the workers); or a list of the K fold teachers of a cross-fitting split
        (``recdistill.cross_fit``), each row then scored by the one that never read it.
      input_uri: training data: a file, a folder of shards or a glob (local or gs://).
      output_uri: folder to write; replaced as a whole when the job succeeds.
      cfg: the student's loaded config (``config.load_config``). The input is read with its
        input_fields minus the soft-label fields, in its data format; each kd block names
        the soft-label column (soft_label_name), the teacher output (teacher_pred_name,
        default pred_name) and logits vs probabilities (label_is_logits).
      cross_fit_key: with fold teachers, the key column they must split by ('' = theirs).
      runner: Beam runner, e.g. "DirectRunner", "DataflowRunner", "FlinkRunner",
        "apache_beam.runners.dask.dask_runner.DaskRunner".
      beam_args: further Beam pipeline flags (``--project=...``, ``--setup_file=...``).
      max_bad_rows_fraction: rows that cannot be read or scored go to
        ``<output>/_dead_letter/`` with the reason, and the job fails only when more than this
        fraction of rows is rejected. At 0 (default) the first bad row fails the job, naming
        file and row.
      batch_size: rows per columnar batch (and per output shard at most).
      sample_size: rows sampled for the quantiles and AUC in stats.json.
      rows_per_split: the unit of parallel work: files are cut into ranges of at most this
        many rows (Parquet row ranges; CSV and uncompressed TFRecord byte ranges), so one big
        file spreads over the workers (splits.py); gzip files are read whole.
      max_auc_gap: the leak guard: when the teacher's AUC on the scored rows exceeds its eval
        AUC (from the export's recdistill.json) by more, the job warns "soft labels repeat
        the clicks" in the log and stats.json (``leak_guard``); see stats.LEAK_AUC_GAP.

    Returns:
      The stats.json content: rows read/written/rejected, per soft-label column
      mean/min/max/quantiles, teacher AUC against each hard label and its eval AUC and gap,
      the leak guard's verdict, timing. ``stats.metric_scalars`` flattens it for a KFP
      Metrics artifact.

    Raises:
      FileNotFoundError: no data file matches ``input_uri``, or no teacher export.
      TypeError: ``cfg`` is not a loaded config.
      ValueError: the teacher and the data or config do not fit (missing or mistyped input
        column, unknown teacher output), a bad argument, a bad row (at fraction 0), or more
        rejected rows than ``max_bad_rows_fraction`` allows.
    """
    if not isinstance(cfg, pipeline_pb2.EasyRecConfig):
        raise TypeError(f"generate_soft_labels takes a loaded EasyRecConfig, got "
                        f"{type(cfg).__name__}. Load it first with "
                        "recdistill.config.load_config(path).")
    if not 0.0 <= max_bad_rows_fraction <= 1.0:
        raise ValueError(f"max_bad_rows_fraction must be in [0, 1], got {max_bad_rows_fraction}. "
                         "Use 0 to fail on the first bad row.")
    filesystems.check_replaceable(output_uri, _OUTPUT_MARKERS)  # before any work
    shards = filesystems.expand(input_uri)  # FileNotFoundError naming input_uri when empty
    handler = fold_teachers.make_handler(teacher_uri, cross_fit_key=cross_fit_key,
                                         batch_size=batch_size)
    # Workers acquire the teacher through this handle: in-process runners (DirectRunner)
    # reuse the copy loaded here for the check while `model` keeps it alive; remote workers
    # load their own.
    model_handle = shared.Shared()
    model = model_handle.acquire(handler.load_model, tag=handler.teacher_uri)
    specs, input_config = _check_teacher(model, cfg, input_uri)
    teacher_metadata = model.metadata
    cross_fit = ({"key": model.key, "teachers": [m.uri for m in model.models]}  # fold order
                 if isinstance(model, fold_teachers.FoldTeachers) else None)
    units = splits_lib.plan_splits(shards, input_config, rows_per_split)
    started = time.monotonic()
    runner = _LOCAL_RUNNERS.get(runner, runner)
    with filesystems.atomic_dir(output_uri, replaces=_OUTPUT_MARKERS) as out_dir:
        logger.info("Soft labels: %d shard(s) in %d split(s) of %s -> %s with teacher %s on %s",
                    len(shards), len(units), input_uri, output_uri, handler.teacher_uri, runner)
        pipeline = beam.Pipeline(options=PipelineOptions(flags=[f"--runner={runner}",
                                                                *beam_args]))
        label_rows(pipeline | "Splits" >> beam.Create(list(enumerate(units))),
                   handler, specs, input_config=input_config,
                   output_config=_output_config(cfg, specs),
                   hard_labels=config_lib.hard_label_fields(cfg),
                   out_dir=out_dir, tolerate_bad_rows=max_bad_rows_fraction > 0,
                   sample_size=sample_size, model_handle=model_handle)
        _run(pipeline)
        del model
        stats = json_files.read_json(filesystems.join(out_dir, stats_lib.STATS_FILE))
        seconds = time.monotonic() - started
        stats.update(teacher=teacher_uri, input=input_uri, output=output_uri, runner=runner,
                     input_shards=len(shards), input_splits=len(units),
                     seconds=round(seconds, 3),
                     rows_per_second=round(stats["rows_read"] / seconds, 1))
        if cross_fit:
            stats["cross_fit"] = cross_fit
        _check_bad_rows(stats, max_bad_rows_fraction, input_uri, output_uri, out_dir)
        for warning in stats_lib.check_leak(stats, teacher_metadata, max_auc_gap):
            logger.warning("Soft labels: %s", warning)
        json_files.write_json(filesystems.join(out_dir, stats_lib.STATS_FILE), stats)
    logger.info("Soft labels: wrote %d rows (%d rejected) to %s in %.1f s (%.0f rows/s)",
                stats["rows_written"], stats["rows_rejected"], output_uri, seconds,
                stats["rows_per_second"])
    return stats


def label_rows(units, handler: handlers.TeacherModelHandler, specs, *, input_config,
               output_config, hard_labels, out_dir: str, tolerate_bad_rows: bool,
               sample_size: int, model_handle: Optional[shared.Shared] = None):
    """Wires the named transforms: ``(index, splits.Split)`` units in, soft-labelled shards,
    dead letters and stats.json out under ``out_dir``; returns the stats.json PCollection."""
    read = units | "Spread" >> beam.Reshuffle() | "ReadShards" >> transforms.ReadShards(
        input_config, batch_size=handler.batch_size, tolerate_bad_rows=tolerate_bad_rows)
    labelled = (read[transforms.CHUNKS]
                | "ScoreWithTeacher" >> transforms.ScoreWithTeacher(handler, model_handle)
                | "AttachSoftLabels" >> transforms.AttachSoftLabels(
                    specs, output_config, tolerate_bad_rows=tolerate_bad_rows))
    written = (labelled[transforms.CHUNKS]
               | "WriteShards" >> transforms.WriteShards(
                   out_dir, output_config, soft_columns=[s.column for s in specs],
                   hard_labels=hard_labels, sample_size=sample_size)
               # Merged in the writing stage: past the Flatten below, every chunk's sampled
               # rows would be held at once (transforms.MergeSummaries).
               | "MergeWritten" >> beam.CombineGlobally(
                   transforms.MergeSummaries(sample_size)))
    rejected = ((read[transforms.DEAD_LETTERS], labelled[transforms.DEAD_LETTERS])
                | "AllRejected" >> beam.Flatten()
                | "DeadLetters" >> transforms.DeadLetters(out_dir))
    return ((read[transforms.READ_SUMMARIES], written, rejected)
            | "AllSummaries" >> beam.Flatten()
            | "WriteStats" >> transforms.WriteStats(out_dir, specs, hard_labels, sample_size))


def _check_teacher(model, cfg, input_uri: str):
    """Checks the teacher against the config in the launcher, before any row is read."""
    input_config = config_lib.without_kd(cfg).data_config
    handlers.check_teacher_inputs(model, input_config.input_fields, input_uri)
    return handlers.soft_label_specs(cfg, model), input_config


def _output_config(cfg, specs) -> pipeline_pb2.DatasetConfig:
    """The student's data_config, plus a FLOAT field (last) for any undeclared soft label."""
    output_config = pipeline_pb2.DatasetConfig()
    output_config.CopyFrom(cfg.data_config)
    declared = {f.input_name for f in output_config.input_fields}
    for spec in specs:
        if spec.column not in declared:
            output_config.input_fields.add(input_name=spec.column, input_type=_FieldType.FLOAT)
    return output_config


def _run(pipeline: beam.Pipeline) -> None:
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        # Beam's DaskRunner opens a distributed.Client for each run and never closes it: the
        # launcher would keep a connection, and retry it noisily once the cluster is gone.
        client = getattr(result, "client", None)
        if client is not None:
            client.close()


def _check_bad_rows(stats: dict, max_fraction: float, input_uri: str, output_uri: str,
                    out_dir: str) -> None:
    """Fails the job past ``max_fraction``, keeping the rejected rows for the user to read.

    The output is not published then, but its dead letters are: they are what the user needs
    to fix the data, so they go to ``<output>.dead_letter/`` (replacing an earlier one).
    """
    if stats["rows_rejected"] and stats["bad_rows_fraction"] > max_fraction:
        kept = output_uri.rstrip("/") + DEAD_LETTER_SUFFIX
        with filesystems.atomic_dir(kept, replaces=()) as staging:
            filesystems.copy_tree(filesystems.join(out_dir, DEAD_LETTER_SUBDIR), staging)
        examples = "\n  ".join(stats["rejected_examples"])
        raise ValueError(
            f"{input_uri}: {stats['rows_rejected']} of {stats['rows_read']} rows "
            f"({stats['bad_rows_fraction']:.2%}) could not be read or scored, more than "
            f"max_bad_rows_fraction {max_fraction}; nothing was written to {output_uri}, the "
            f"rejected rows (with reasons) are in {kept}. First ones:\n  {examples}\n"
            "Fix the data or raise max_bad_rows_fraction.")
