"""The soft-label job: an Apache Beam batch pipeline that runs a teacher over the training table.

Pipeline (one element per input shard, never per row)::

    Create(shard list) -> Reshuffle -> ParDo(_LabelShardFn) -> key None -> GroupByKey
                                        |  per shard: stream RecordBatches
                                        |  (tables.iter_batches), teacher on each batch
                                        |  (TeacherModelHandler), write each batch as one
                                        |  output shard (tables.write_table); yield a
                                        |  SoftLabelSummary
                                                                 -> ParDo(_WriteStatsFn)

Per-row work in Beam costs more than the model (see dependency-study.md), so rows travel
inside ``pyarrow.RecordBatch`` es of ``batch_size`` rows that the DoFn reads, scores and writes
in one go: memory stays at a few batches whatever the data size, and output shard
``part-<input index>-<batch index>`` keeps the input order when shards are read sorted.

Everything is written under :func:`recdistill.data.filesystems.atomic_dir`, so a failed or
re-run job never leaves a mix of old and new shards. Workers only see the shard URIs, the
handler (teacher URI) and plain config values, so the job runs the same on DirectRunner and on
distributed runners (Dataflow, Flink, Spark, Dask): nothing depends on the launching process.

Imports ``recdistill.config``, ``recdistill.exported`` and ``recdistill.data``; never ``kfp``.
"""

import dataclasses
import itertools
import json
import logging
import time
from typing import Iterator, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils import shared

from recdistill import config as config_lib
from recdistill.data import filesystems, tables
from recdistill.protos import pipeline_pb2
from recdistill.soft_labels import handlers
from recdistill.soft_labels import stats as stats_lib

logger = logging.getLogger(__name__)

DEAD_LETTER_SUBDIR = "_dead_letter"
"""Rejected rows (JSON lines: file, row, reason, values) go to ``<output>/_dead_letter/``."""

_SHARD_NAME = "part-{shard:05d}-{batch:05d}"
_FieldType = pipeline_pb2.DatasetConfig.FieldType


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What every worker needs, as plain picklable values.

    The data configs travel serialized: the generated protobuf classes do not pickle.
    """

    handler: handlers.TeacherModelHandler
    specs: tuple
    input_config_bytes: bytes
    output_config_bytes: bytes
    hard_labels: tuple
    out_dir: str
    tolerate_bad_rows: bool
    sample_size: int

    def input_config(self) -> pipeline_pb2.DatasetConfig:
        return pipeline_pb2.DatasetConfig.FromString(self.input_config_bytes)

    def output_config(self) -> pipeline_pb2.DatasetConfig:
        return pipeline_pb2.DatasetConfig.FromString(self.output_config_bytes)


def generate_soft_labels(teacher_uri: str, input_uri: str, output_uri: str, config, *,
                         runner: str = "DirectRunner", beam_args: Sequence[str] = (),
                         max_bad_rows_fraction: float = 0.0,
                         batch_size: int = handlers.DEFAULT_BATCH_SIZE,
                         sample_size: int = stats_lib.DEFAULT_SAMPLE_SIZE) -> dict:
    """Writes the input rows with the teacher's soft labels, and stats.json, to ``output_uri``.

    Args:
      teacher_uri: the teacher's export folder or model_dir (local or gs://, readable by
        the workers).
      input_uri: training data: a file, a folder of shards or a glob (local or gs://).
      output_uri: folder to write; replaced as a whole when the job succeeds.
      config: the student's config (path, text or loaded EasyRecConfig). The input is read
        with its input_fields minus the soft-label fields, in its data format; each kd block
        names the soft-label column (soft_label_name), the teacher output
        (teacher_pred_name, default pred_name) and logits vs probabilities (label_is_logits).
      runner: Beam runner, e.g. "DirectRunner", "DataflowRunner", "FlinkRunner",
        "apache_beam.runners.dask.dask_runner.DaskRunner".
      beam_args: further Beam pipeline flags (``--project=...``, ``--setup_file=...``).
      max_bad_rows_fraction: rows that cannot be read or scored go to
        ``<output>/_dead_letter/`` with the reason, and the job fails only when more than this
        fraction of rows is rejected. At 0 (default) the first bad row fails the job, naming
        file and row.
      batch_size: rows per columnar batch (and per output shard at most).
      sample_size: rows sampled for the quantiles and AUC in stats.json.

    Returns:
      The stats.json content: rows read/written/rejected, per soft-label column
      mean/min/max/quantiles and teacher AUC against each hard label, timing.

    Raises:
      FileNotFoundError: no data file matches ``input_uri``, or no teacher export.
      ValueError: the teacher and the data or config do not fit (missing or mistyped input
        column, unknown teacher output), a bad argument, a bad row (at fraction 0), or more
        rejected rows than ``max_bad_rows_fraction`` allows.
    """
    cfg = config if isinstance(config, pipeline_pb2.EasyRecConfig) else config_lib.load_config(config)
    if not 0.0 <= max_bad_rows_fraction <= 1.0:
        raise ValueError(f"max_bad_rows_fraction must be in [0, 1], got {max_bad_rows_fraction}. "
                         "Use 0 to fail on the first bad row.")
    shards = filesystems.expand(input_uri)  # FileNotFoundError naming input_uri when empty
    handler = handlers.TeacherModelHandler(teacher_uri, batch_size=batch_size)
    # Workers acquire the teacher through this handle: in-process runners (DirectRunner)
    # reuse the model loaded here for the check while `model` keeps it alive; remote
    # workers load their own.
    model_handle = shared.Shared()
    model = model_handle.acquire(handler.load_model, tag=teacher_uri)
    specs, input_config = _check_teacher(model, cfg, input_uri)
    started = time.monotonic()
    with filesystems.atomic_dir(output_uri) as out_dir:
        plan = _Plan(handler=handler, specs=tuple(specs),
                     input_config_bytes=input_config.SerializeToString(),
                     output_config_bytes=_output_config(cfg, specs).SerializeToString(),
                     hard_labels=tuple(name for name in config_lib.label_fields(cfg)
                                       if name not in {s.column for s in specs}),
                     out_dir=out_dir, tolerate_bad_rows=max_bad_rows_fraction > 0,
                     sample_size=sample_size)
        logger.info("Soft labels: %d shard(s) of %s -> %s with teacher %s on %s", len(shards),
                    input_uri, output_uri, teacher_uri, runner)
        _run_pipeline(_LabelShardFn(plan, model_handle), plan, shards, runner, beam_args)
        del model
        stats = _read_stats(out_dir)
        seconds = time.monotonic() - started
        stats.update(teacher=teacher_uri, input=input_uri, output=output_uri, runner=runner,
                     input_shards=len(shards), seconds=round(seconds, 3),
                     rows_per_second=round(stats["rows_read"] / seconds, 1))
        _check_bad_rows(stats, max_bad_rows_fraction, input_uri, output_uri)
        _write_json(filesystems.join(out_dir, stats_lib.STATS_FILE), stats)
    logger.info("Soft labels: wrote %d rows (%d rejected) to %s in %.1f s (%.0f rows/s)",
                stats["rows_written"], stats["rows_rejected"], output_uri, seconds,
                stats["rows_per_second"])
    return stats


def _check_teacher(model, cfg, input_uri: str):
    """Checks the teacher against the config in the launcher, before any row is read."""
    soft = set(config_lib.soft_label_fields(cfg))
    input_config = pipeline_pb2.DatasetConfig()
    input_config.CopyFrom(cfg.data_config)
    del input_config.input_fields[:]
    input_config.input_fields.extend(f for f in cfg.data_config.input_fields
                                     if f.input_name not in soft)
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


def _run_pipeline(label_fn: beam.DoFn, plan: _Plan, shards: list, runner: str,
                  beam_args: Sequence[str]) -> None:
    options = PipelineOptions(flags=[f"--runner={runner}", *beam_args])
    pipeline = beam.Pipeline(options=options)
    _ = (pipeline
         | "Shards" >> beam.Create(list(enumerate(shards)))
         | "Spread" >> beam.Reshuffle()
         | "LabelShards" >> beam.ParDo(label_fn)
         | "KeyAll" >> beam.Map(lambda summary: (None, summary))
         | "Gather" >> beam.GroupByKey()
         | "WriteStats" >> beam.ParDo(_WriteStatsFn(plan)))
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        # Beam's DaskRunner opens a distributed.Client for each run and never closes it: the
        # launcher would keep a connection, and retry it noisily once the cluster is gone.
        client = getattr(result, "client", None)
        if client is not None:
            client.close()


@dataclasses.dataclass
class _Rejected:
    """A row that could not be read or scored."""

    file: str
    row: int
    reason: str
    values: Optional[dict] = None

    def line(self) -> str:
        return f"{self.file}: row {self.row}: {self.reason}"


class _LabelShardFn(beam.DoFn):
    """Reads one input shard in batches, scores each with the teacher and writes it out."""

    def __init__(self, plan: _Plan, model_handle: shared.Shared):
        self._plan = plan
        self._model_handle = model_handle
        self._model = None
        namespace = handlers.METRICS_NAMESPACE
        self._rows_read = beam.metrics.Metrics.counter(namespace, "rows_read")
        self._rows_written = beam.metrics.Metrics.counter(namespace, "rows_written")
        self._rows_rejected = beam.metrics.Metrics.counter(namespace, "rows_rejected")
        self._shards_done = beam.metrics.Metrics.counter(namespace, "input_shards_done")
        self._batch_ms = beam.metrics.Metrics.distribution(namespace, "inference_batch_ms")

    def setup(self):
        handler = self._plan.handler
        self._input_config = self._plan.input_config()
        self._output_config = self._plan.output_config()
        self._model = self._model_handle.acquire(handler.load_model, tag=handler.teacher_uri)

    def process(self, element) -> Iterator[stats_lib.SoftLabelSummary]:
        index, uri = element
        started = time.monotonic()
        summary = stats_lib.SoftLabelSummary()
        for batch_index, (batch, rejected, rows_read) in enumerate(self._read(uri)):
            chunk = self._label_batch(uri, index, batch_index, summary.rows_written, batch,
                                      rejected, rows_read)
            summary = summary.merge(chunk, self._plan.sample_size)
        seconds = time.monotonic() - started
        self._shards_done.inc()
        logger.info("Soft labels: shard %d %s: %d rows read, %d written, %d rejected in %.1f s "
                    "(%.0f rows/s)", index, uri, summary.rows_read, summary.rows_written,
                    summary.rows_rejected, seconds, summary.rows_read / max(seconds, 1e-9))
        yield summary

    def _read(self, uri: str) -> Iterator[tuple]:
        """Yields (RecordBatch of at most batch_size rows, rejected rows, rows read).

        At max_bad_rows_fraction 0 the first unreadable row raises tables.DataError (file,
        row, field). Otherwise the shard is read tolerating every bad row, each one is handed
        on for the dead-letter output, and the job-wide fraction is checked at the end.
        """
        report = tables.ReadReport()
        seen = 0
        batches = tables.iter_batches(uri, self._input_config,
                                      batch_size=self._plan.handler.batch_size,
                                      max_bad_rows_fraction=1.0 if self._plan.tolerate_bad_rows
                                      else 0.0,
                                      report=report)
        for batch in itertools.chain(batches, [None]):
            rejected = [_Rejected(r.uri, r.row, r.message(), {r.field: r.value} if r.field else
                                  {"row": r.value}) for r in report.bad_rows]
            report.bad_rows.clear()
            rows_read, seen = report.rows_read - seen, report.rows_read
            if batch is not None or rejected:
                yield batch, rejected, rows_read

    def _label_batch(self, uri: str, index: int, batch_index: int, first_row: int,
                     batch: Optional[pa.RecordBatch], rejected: list, rows_read: int
                     ) -> stats_lib.SoftLabelSummary:
        """Scores, writes and summarises one batch; ``first_row`` counts the good rows before
        it (unscorable rows are numbered by it)."""
        plan = self._plan
        if batch is None:  # only rejected rows were left at the end of the shard
            batch = _empty_batch(self._input_config)
            soft = {spec.column: np.zeros(0, spec.dtype) for spec in plan.specs}
        else:
            started = time.monotonic()
            predictions = plan.handler.run_inference([batch], self._model)[0].inference
            self._batch_ms.update(int((time.monotonic() - started) * 1000))
            soft = {spec.column: spec.values(predictions) for spec in plan.specs}
        good = np.logical_and.reduce([np.isfinite(v) for v in soft.values()])
        if not good.all():
            rejected = rejected + self._non_finite(uri, first_row, batch, soft, good)
            batch = batch.filter(pa.array(good))
            soft = {name: values[good] for name, values in soft.items()}
        self._rows_read.inc(rows_read)
        self._rows_rejected.inc(len(rejected))
        shard = _SHARD_NAME.format(shard=index, batch=batch_index)
        if batch.num_rows:
            tables.write_table(_with_soft_labels(batch, soft, self._output_config),
                               plan.out_dir, self._output_config, shard=shard)
            self._rows_written.inc(batch.num_rows)
        if rejected:
            _write_dead_letter(plan.out_dir, shard, rejected)
        hard = {name: batch.column(name).to_numpy(zero_copy_only=False)
                for name in plan.hard_labels}
        return stats_lib.SoftLabelSummary.of_chunk(
            soft, hard, rows_read=rows_read, rejected=[r.line() for r in rejected],
            seed=(index, batch_index), sample_size=plan.sample_size,
            shards_written=1 if batch.num_rows else 0)

    def _non_finite(self, uri, first_row, batch, soft, good) -> list:
        rows = np.flatnonzero(~good)
        rejected = [
            _Rejected(uri, first_row + int(i) + 1, "teacher output is not finite: " + ", ".join(
                f"{name}={values[i]}" for name, values in soft.items()),
                batch.slice(int(i), 1).to_pylist()[0])
            for i in rows]
        if not self._plan.tolerate_bad_rows:
            raise ValueError(f"{rejected[0].line()} (of {len(rejected)} such rows in this batch). "
                             "Check the row's values, or pass max_bad_rows_fraction to send such "
                             "rows to the dead-letter output.")
        return rejected


def _empty_batch(data_config) -> pa.RecordBatch:
    schema = pa.schema([(f.input_name, tables.ARROW_TYPES[f.input_type])
                        for f in data_config.input_fields])
    return pa.RecordBatch.from_pylist([], schema=schema)


def _with_soft_labels(batch: pa.RecordBatch, soft: dict, output_config) -> pa.Table:
    """The batch's columns plus the soft-label columns, in the output input_fields order."""
    columns = {name: batch.column(name) for name in batch.schema.names}
    columns.update({name: pa.array(values) for name, values in soft.items()})
    names = [f.input_name for f in output_config.input_fields if f.input_name in columns]
    return pa.table({name: columns[name] for name in names})


def _write_dead_letter(out_dir: str, shard: str, rejected: list) -> None:
    uri = filesystems.join(out_dir, DEAD_LETTER_SUBDIR, shard + ".jsonl")
    lines = "".join(json.dumps(dataclasses.asdict(r), default=str) + "\n" for r in rejected)
    with filesystems.open_output(uri) as f:
        f.write(lines.encode())


class _WriteStatsFn(beam.DoFn):
    """Merges every shard's summary and writes stats.json (data facts only; the launcher adds
    timing)."""

    def __init__(self, plan: _Plan):
        self._plan = plan

    def process(self, element):
        _, summaries = element
        total = stats_lib.SoftLabelSummary()
        for summary in summaries:
            total = total.merge(summary, self._plan.sample_size)
        content = total.to_dict({s.column: s.describe() for s in self._plan.specs},
                                self._plan.hard_labels)
        _write_json(filesystems.join(self._plan.out_dir, stats_lib.STATS_FILE), content)
        yield content["rows_read"]


def _write_json(uri: str, content: dict) -> None:
    with filesystems.open_output(uri) as f:
        f.write(json.dumps(content, indent=2, sort_keys=True).encode())


def _read_stats(out_dir: str) -> dict:
    with filesystems.open_input(filesystems.join(out_dir, stats_lib.STATS_FILE)) as f:
        return json.loads(f.read())


def _check_bad_rows(stats: dict, max_fraction: float, input_uri: str, output_uri: str) -> None:
    if stats["rows_rejected"] and stats["bad_rows_fraction"] > max_fraction:
        examples = "\n  ".join(stats["rejected_examples"])
        raise ValueError(
            f"{input_uri}: {stats['rows_rejected']} of {stats['rows_read']} rows "
            f"({stats['bad_rows_fraction']:.2%}) could not be read or scored, more than "
            f"max_bad_rows_fraction {max_fraction}; nothing was written to {output_uri}. "
            f"First ones:\n  {examples}\nFix the data or raise max_bad_rows_fraction.")
