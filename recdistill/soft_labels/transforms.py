"""The soft-label job's steps as named Beam transforms, each testable on its own.

The job (job.py) is these transforms wired together::

    (index, Split) --ReadShards--> (ChunkKey, RecordBatch) --ScoreWithTeacher-->
    (ChunkKey, PredictionResult) --AttachSoftLabels--> (ChunkKey, pa.Table) --WriteShards-->
    SoftLabelSummary --WriteStats--> stats.json
                   rejected rows (read or score) --DeadLetters--> _dead_letter/*.jsonl

Elements are whole columnar chunks of ``batch_size`` rows, never single rows: per-element
work in Beam costs more than the model (see dependency-study.md). Each chunk carries a
:class:`ChunkKey` (input shard, chunk number, file, first row), so the output shard
``part-<shard>-<chunk>`` keeps the input order when shards are read sorted, and every
rejected row names its file and row. Every transform that reads, writes or rejects rows also
emits a :class:`~recdistill.soft_labels.stats.SoftLabelSummary` of what it did; ``WriteStats``
merges them all.

Batching (one RecordBatch per model call), sharing the loaded teacher, metrics and dead
letters are these transforms'; the teacher handler (handlers.py) only loads and calls the
model, per Beam's ModelHandler contract.

Imports ``recdistill.data`` and the soft_labels modules; never ``kfp``.
"""

import dataclasses
import json
import logging
import os
import queue
import socket
import threading
import time
from typing import Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.utils import shared

from recdistill.data import filesystems, json_files, tables
from recdistill.protos import pipeline_pb2
from recdistill.soft_labels import handlers, splits
from recdistill.soft_labels import stats as stats_lib

logger = logging.getLogger(__name__)

DEAD_LETTER_SUBDIR = "_dead_letter"
"""Rejected rows (JSON lines: file, row, reason, values) go to ``<output>/_dead_letter/``."""

CHUNKS = "chunks"
"""The main output of ReadShards and AttachSoftLabels: (ChunkKey, rows) per chunk."""
READ_SUMMARIES = "read_summaries"
"""The ReadShards output with one SoftLabelSummary (rows read) per input shard."""
DEAD_LETTERS = "dead_letters"
"""The output of ReadShards and AttachSoftLabels with (ChunkKey, [Rejected]) per chunk."""

_SHARD_NAME = "part-{shard:05d}-{chunk:05d}"
#: Batches read ahead of the one being scored (see ``_read_ahead``).
_READ_AHEAD = 1


def _worker() -> str:
    """This process, as stats.json's rows_by_worker names it (asked per call: a forked
    worker has its own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclasses.dataclass(frozen=True)
class ChunkKey:
    """Where a chunk of rows comes from, travelling beside it through the job.

    Attributes:
      shard: index of the input split (a file or a row range of one) in the job's list.
      chunk: index of the chunk within the split.
      uri: the input file, named in every rejected row.
      first_row: rows of the file before the split plus good rows of the split before this
        chunk (numbers the unscorable rows).
    """

    shard: int
    chunk: int
    uri: str
    first_row: int = 0

    @property
    def name(self) -> str:
        """The output shard name: sorts like the input order."""
        return _SHARD_NAME.format(shard=self.shard, chunk=self.chunk)


@dataclasses.dataclass
class Rejected:
    """A row that could not be read or scored."""

    file: str
    row: int
    reason: str
    values: Optional[dict] = None

    def line(self) -> str:
        return f"{self.file}: row {self.row}: {self.reason}"


def _counter(name: str):
    return beam.metrics.Metrics.counter(handlers.METRICS_NAMESPACE, name)


def _split(tagged, tags: Sequence[str]) -> dict:
    """``(tag, value)`` elements -> {tag: PCollection of values}.

    Used instead of ``ParDo.with_outputs``: Beam's DaskRunner keys its bags by producing
    transform, not by output tag, so a multi-output ParDo would mix its outputs there.
    """
    return {tag: tagged | f"Only{tag.title().replace('_', '')}" >> beam.FlatMap(
        lambda item, tag=tag: [item[1]] if item[0] == tag else [])
        for tag in tags}


class _ReadShardFn(beam.DoFn):
    def __init__(self, input_config_bytes: bytes, batch_size: int, tolerate_bad_rows: bool):
        # The data config travels serialized: generated protobuf classes do not pickle.
        self._input_config_bytes = input_config_bytes
        self._batch_size = batch_size
        self._tolerate = tolerate_bad_rows
        self._rows_read = _counter("rows_read")
        self._shards_read = _counter("input_shards_read")

    def setup(self):
        self._input_config = pipeline_pb2.DatasetConfig.FromString(self._input_config_bytes)

    def process(self, element):
        index, split = element
        report = tables.ReadReport()
        good = 0
        chunk = 0
        batches = splits.iter_batches(split, self._input_config, batch_size=self._batch_size,
                                      tolerate_bad_rows=self._tolerate, report=report)
        for batch, bad_rows in _read_ahead(batches, report):
            key = ChunkKey(index, chunk, split.uri, split.start + good)
            yield from self._dead_letters(key, bad_rows)
            if batch is None:  # the bad rows after the last chunk
                break
            yield CHUNKS, (key, batch)
            good += batch.num_rows
            chunk += 1
        self._rows_read.inc(report.rows_read)
        self._shards_read.inc()
        yield READ_SUMMARIES, stats_lib.SoftLabelSummary(rows_read=report.rows_read)

    @staticmethod
    def _dead_letters(key: ChunkKey, bad_rows: list):
        if bad_rows:
            rejected = [Rejected(r.uri, r.row, r.message(),
                                 {r.field: r.value} if r.field else {"row": r.value})
                        for r in bad_rows]
            yield DEAD_LETTERS, (key, rejected)


def _read_ahead(batches, report: tables.ReadReport):
    """Yields ``(batch, bad rows read with it)`` while a thread already reads the next batch,
    then ``(None, bad rows after the last batch)``.

    Parsing the next chunk (Arrow's reader, mostly outside the GIL) so overlaps the teacher
    scoring this one (TensorFlow, outside the GIL) instead of waiting for it. The thread
    takes each batch's bad rows from ``report`` itself, so no row is read on one thread and
    cleared on the other; a read error is raised here, on the consumer's thread. At most
    :data:`_READ_AHEAD` batches wait, so memory stays at a few batches.
    """
    ready = queue.Queue(maxsize=_READ_AHEAD)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read():
        try:
            for batch in batches:
                if not put((batch, _take(report.bad_rows))):
                    return
            put((None, _take(report.bad_rows)))
        except BaseException as error:  # handed to the consumer, which raises it
            put(error)

    reader = threading.Thread(target=read, name="soft-labels-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item[0] is None:
                break
    finally:
        stop.set()  # a consumer that stops early (a failed step) releases the thread
        reader.join()


def _take(items: list) -> list:
    taken = list(items)
    items.clear()
    return taken


@beam.ptransform_fn
def ReadShards(shards, input_config: pipeline_pb2.DatasetConfig, *, batch_size: int,
               tolerate_bad_rows: bool = False):
    """Reads ``(index, splits.Split)`` units of input as ``(ChunkKey, RecordBatch)`` chunks.

    Args:
      shards: PCollection of ``(index, Split)`` (a whole file or a row range of one, see
        splits.py); the index orders the output shards.
      input_config: how the data is laid out (the student's data_config minus soft labels).
      batch_size: rows per RecordBatch (the last of a shard may be shorter).
      tolerate_bad_rows: send unreadable rows to the ``dead_letters`` output; when False the
        first one fails the job with ``tables.DataError`` naming file, row and field.

    Returns:
      A dict of PCollections: ``chunks`` ((ChunkKey, RecordBatch)), ``dead_letters``
      ((ChunkKey, [Rejected])) and ``read_summaries`` (one SoftLabelSummary of rows read
      per shard).
    """
    tagged = shards | "Read" >> beam.ParDo(
        _ReadShardFn(input_config.SerializeToString(), batch_size, tolerate_bad_rows))
    return _split(tagged, (CHUNKS, DEAD_LETTERS, READ_SUMMARIES))


class _ScoreFn(beam.DoFn):
    def __init__(self, handler: handlers.TeacherModelHandler, model_handle: shared.Shared):
        self._handler = handler
        self._model_handle = model_handle
        self._batch_ms = beam.metrics.Metrics.distribution(handlers.METRICS_NAMESPACE,
                                                           "inference_batch_ms")
        self._batches = _counter("inference_batches")

    def setup(self):
        self._model = self._model_handle.acquire(self._handler.load_model,
                                                 tag=self._handler.teacher_uri)

    def process(self, element):
        key, batch = element
        started = time.monotonic()
        (result,) = self._handler.run_inference([batch], self._model)
        self._batch_ms.update(int((time.monotonic() - started) * 1000))
        self._batches.inc()
        yield key, result


@beam.ptransform_fn
def ScoreWithTeacher(chunks, handler: handlers.TeacherModelHandler,
                     model_handle: Optional[shared.Shared] = None):
    """``(ChunkKey, RecordBatch)`` -> ``(ChunkKey, PredictionResult)``: one model call per chunk.

    What Beam's ``RunInference`` does for the handler, without its ``BatchElements`` step:
    chunks are already batches (the handler's ``batch_elements_kwargs`` asks for one element
    per call), and BatchElements emits its last batch from ``finish_bundle``, which Beam's
    DaskRunner drops (it collects a bundle's outputs before finishing it). The teacher is
    loaded once per worker process through ``model_handle`` (pass the handle the launcher
    loaded it with to reuse that copy on in-process runners); per-batch latency goes to the
    ``inference_batch_ms`` distribution.
    """
    return chunks | "Score" >> beam.ParDo(_ScoreFn(handler, model_handle or shared.Shared()))


class _AttachSoftLabelsFn(beam.DoFn):
    def __init__(self, specs: Sequence[handlers.SoftLabelSpec], output_config_bytes: bytes,
                 tolerate_bad_rows: bool):
        self._specs = tuple(specs)
        self._output_config_bytes = output_config_bytes
        self._tolerate = tolerate_bad_rows

    def setup(self):
        output_config = pipeline_pb2.DatasetConfig.FromString(self._output_config_bytes)
        self._order = [f.input_name for f in output_config.input_fields]

    def process(self, element):
        key, result = element
        batch = result.example
        soft = {spec.column: spec.values(result.inference) for spec in self._specs}
        good = np.logical_and.reduce([np.isfinite(v) for v in soft.values()])
        if not good.all():
            yield DEAD_LETTERS, (key, self._non_finite(key, batch, soft, good))
            batch = batch.filter(pa.array(good))
            soft = {name: values[good] for name, values in soft.items()}
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns.update({name: pa.array(values) for name, values in soft.items()})
        yield CHUNKS, (key, pa.table({name: columns[name] for name in self._order
                                      if name in columns}))

    def _non_finite(self, key: ChunkKey, batch, soft: dict, good) -> list:
        rejected = [
            Rejected(key.uri, key.first_row + int(i) + 1,
                     "teacher output is not finite: " + ", ".join(
                         f"{name}={values[i]}" for name, values in soft.items()),
                     batch.slice(int(i), 1).to_pylist()[0])
            for i in np.flatnonzero(~good)]
        if not self._tolerate:
            raise ValueError(f"{rejected[0].line()} (of {len(rejected)} such rows in this batch). "
                             "Check the row's values, or pass max_bad_rows_fraction to send such "
                             "rows to the dead-letter output.")
        return rejected


@beam.ptransform_fn
def AttachSoftLabels(scored, specs: Sequence[handlers.SoftLabelSpec],
                     output_config: pipeline_pb2.DatasetConfig, *,
                     tolerate_bad_rows: bool = False):
    """``(ChunkKey, PredictionResult)`` -> ``(ChunkKey, pa.Table)`` with the soft-label columns.

    Columns come in ``output_config.input_fields`` order. A row whose soft label is not
    finite goes to ``dead_letters`` (or fails the job, naming file and row, when
    ``tolerate_bad_rows`` is False).

    Returns:
      A dict of PCollections: ``chunks`` and ``dead_letters``.
    """
    tagged = scored | "Attach" >> beam.ParDo(
        _AttachSoftLabelsFn(specs, output_config.SerializeToString(), tolerate_bad_rows))
    return _split(tagged, (CHUNKS, DEAD_LETTERS))


class _WriteShardFn(beam.DoFn):
    def __init__(self, out_dir: str, output_config_bytes: bytes, soft_columns: tuple,
                 hard_labels: tuple, sample_size: int):
        self._out_dir = out_dir
        self._output_config_bytes = output_config_bytes
        self._soft_columns = soft_columns
        self._hard_labels = hard_labels
        self._sample_size = sample_size
        self._rows_written = _counter("rows_written")

    def setup(self):
        self._output_config = pipeline_pb2.DatasetConfig.FromString(self._output_config_bytes)

    def process(self, element):
        key, table = element
        if table.num_rows:
            tables.write_table(table, self._out_dir, self._output_config, shard=key.name)
            self._rows_written.inc(table.num_rows)

        def column(name):
            return table.column(name).to_numpy()

        yield stats_lib.SoftLabelSummary.of_chunk(
            {name: column(name) for name in self._soft_columns},
            {name: column(name) for name in self._hard_labels},
            rows_read=0, rejected=[], seed=(key.shard, key.chunk),
            sample_size=self._sample_size, shards_written=1 if table.num_rows else 0,
            worker=_worker())


@beam.ptransform_fn
def WriteShards(chunks, out_dir: str, output_config: pipeline_pb2.DatasetConfig, *,
                soft_columns: Sequence[str], hard_labels: Sequence[str],
                sample_size: int = stats_lib.DEFAULT_SAMPLE_SIZE):
    """Writes each ``(ChunkKey, pa.Table)`` as ``<out_dir>/<key.name><ext>``.

    Returns:
      One SoftLabelSummary per chunk (rows written, soft-label statistics and a sample of
      the soft and hard labels for quantiles and the teacher's AUC).
    """
    return chunks | beam.ParDo(_WriteShardFn(out_dir, output_config.SerializeToString(),
                                             tuple(soft_columns), tuple(hard_labels),
                                             sample_size))


def _write_dead_letters(element, out_dir: str):
    name, groups = element
    rejected = sorted((r for group in groups for r in group), key=lambda r: (r.file, r.row))
    uri = filesystems.join(out_dir, DEAD_LETTER_SUBDIR, name + ".jsonl")
    lines = "".join(json.dumps(dataclasses.asdict(r), default=str) + "\n" for r in rejected)
    with filesystems.open_output(uri) as f:
        f.write(lines.encode())
    _counter("rows_rejected").inc(len(rejected))
    return stats_lib.SoftLabelSummary(rows_rejected=len(rejected),
                                      rejected_examples=[r.line() for r in
                                                         rejected[:stats_lib.MAX_REJECTED_EXAMPLES]])


@beam.ptransform_fn
def DeadLetters(rejected, out_dir: str):
    """Writes ``(ChunkKey, [Rejected])`` as JSON lines, one file per chunk, under
    ``<out_dir>/_dead_letter/``; returns one SoftLabelSummary (rows rejected) per file."""
    return (rejected
            | "ByChunk" >> beam.Map(lambda item: (item[0].name, item[1]))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.Map(_write_dead_letters, out_dir))


class MergeSummaries(beam.CombineFn):
    """Merges SoftLabelSummaries as they arrive, keeping one bounded summary per bundle.

    Each chunk's summary carries a sample of up to ``sample_size`` rows, so holding them all
    in one place holds every row's labels (the job's peak RSS grew with the data:
    bench/scale.py). Apply it right after ``WriteShards``, in the same stage: Beam then merges
    there and only one summary per bundle crosses the shuffle. Behind a Flatten of inputs from
    several stages the in-process runner materialises every summary first.
    """

    def __init__(self, sample_size: int):
        self._sample_size = sample_size

    def create_accumulator(self):
        return stats_lib.SoftLabelSummary()

    def add_input(self, accumulator, summary):
        return accumulator.merge(summary, self._sample_size)

    def merge_accumulators(self, accumulators):
        total = stats_lib.SoftLabelSummary()
        for accumulator in accumulators:
            total = total.merge(accumulator, self._sample_size)
        return total

    def extract_output(self, accumulator):
        return accumulator


def _write_stats(total, out_dir: str, sources: dict, hard_labels: tuple):
    content = total.to_dict(sources, hard_labels)
    json_files.write_json(filesystems.join(out_dir, stats_lib.STATS_FILE), content)
    return content


@beam.ptransform_fn
def WriteStats(summaries, out_dir: str, specs: Sequence[handlers.SoftLabelSpec],
               hard_labels: Sequence[str], sample_size: int = stats_lib.DEFAULT_SAMPLE_SIZE):
    """Merges every SoftLabelSummary and writes ``<out_dir>/stats.json`` (data facts only).

    Returns:
      A one-element PCollection: the stats.json content.
    """
    sources = {spec.column: spec.describe() for spec in specs}
    return (summaries
            | "Merge" >> beam.CombineGlobally(MergeSummaries(sample_size))
            | "Write" >> beam.Map(_write_stats, out_dir, sources, tuple(hard_labels)))
