"""Benchmark: the Beam soft-label job vs a plain in-process batched predict loop.

Teacher: the project's DCN (recdistill.data.sample teacher config, untrained weights, exported
with recdistill.models.export) over the synthetic sample's train.csv (or the same rows as one
Parquet or GZIP TFRecord shard, ``--format``). Prints rows/s of generate_soft_labels
(DirectRunner) and of an in-process loop (tables.iter_batches + ExportedModel.predict, same
batch size, no writing), their ratio (goal >= 0.5), and the peak RSS of the job at 100k vs 1M
rows, each in its own subprocess (goal ratio <= 1.2). Last line: the throughput ratio.

``--baseline DIR`` instead compares two versions of the library side by side in one run: the
reader alone (tables.iter_batches, no teacher) and the whole job, each timed with this
checkout's ``recdistill`` and with the one in DIR (e.g. a ``git worktree`` of an older commit),
alternating. Last line: this checkout's job rows/s / DIR's.

    .venv/bin/python bench/soft_labels.py [--rows 1000000] [--small-rows 100000] [--work DIR]
    .venv/bin/python bench/soft_labels.py --format tfrecord --rows 200000 --baseline ../old
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_INPUT_TYPES = {"csv": "CSVInput", "parquet": "ParquetInput", "tfrecord": "TFRecordInput"}


def _prepare(work: str, rows: int, fmt: str) -> dict:
    """Writes the sample (train.csv holds ~rows rows) and exports an untrained DCN teacher;
    for another ``fmt`` also writes train.csv's rows as one shard in that format."""
    from recdistill import config as config_lib
    from recdistill.data import sample, tables
    from recdistill.models import build_model
    from recdistill.models.export import export_model

    data = os.path.join(work, f"rows{rows}")
    student = os.path.join(data, sample.STUDENT_CONFIG)
    if not os.path.exists(os.path.join(data, "teacher", "saved_model.pb")):
        paths = sample.write_sample_data(data, rows=int(rows / 0.8) + 1)
        teacher_cfg = config_lib.load_config(paths.teacher_config)
        model = build_model(teacher_cfg)
        export_model(model, os.path.join(data, "teacher"), {"label_fields": ["clk"]})
    train = os.path.join(data, sample.TRAIN_FILE)
    if fmt != "csv":
        shards = os.path.join(data, f"train-{fmt}")
        if not os.path.isdir(shards):
            read_config = _read_config(config_lib.load_config(student), "csv")
            write_config = _read_config(config_lib.load_config(student), fmt)
            tables.write_table(tables.read_table(train, read_config), shards, write_config)
        train = shards
    return {"data": data, "train": train, "format": fmt,
            "teacher": os.path.join(data, "teacher"), "student": student}


def _read_config(cfg, fmt: str):
    """The data_config of the raw rows (no soft-label fields) in ``fmt``."""
    from recdistill import config as config_lib

    read_config = config_lib.without_kd(cfg).data_config
    read_config.input_type = read_config.InputType.Value(_INPUT_TYPES[fmt])
    return read_config


def _read_rows(uri: str, read_config, batch_size: int) -> int:
    from recdistill.data import tables

    return sum(batch.num_rows for batch in tables.iter_batches(uri, read_config,
                                                               batch_size=batch_size))


def _child(kind: str, paths: dict, batch_size: int) -> dict:
    from recdistill import config as config_lib
    from recdistill import exported
    from recdistill.data import tables
    from recdistill.soft_labels import job

    import tensorflow  # noqa: F401  (both timings start with TF imported, nothing loaded)

    cfg = config_lib.load_config(paths["student"])
    cfg.data_config.input_type = cfg.data_config.InputType.Value(_INPUT_TYPES[paths["format"]])
    read_config = _read_config(cfg, paths["format"])
    if kind == "read":  # steady state: an untimed pass first imports what the reader needs
        _read_rows(paths["train"], read_config, batch_size)
    started = time.monotonic()
    if kind == "beam":
        out = os.path.join(paths["data"], f"out-{os.getpid()}")
        stats = job.generate_soft_labels(paths["teacher"], paths["train"], out, cfg,
                                         batch_size=batch_size)
        rows = stats["rows_written"]
        shutil.rmtree(out)
    elif kind == "read":
        rows = _read_rows(paths["train"], read_config, batch_size)
    else:
        model = exported.load_exported(paths["teacher"])
        rows = 0
        for batch in tables.iter_batches(paths["train"], read_config, batch_size=batch_size):
            model.predict({n: batch.column(n).to_numpy(zero_copy_only=False) for n in model.inputs})
            rows += batch.num_rows
    seconds = time.monotonic() - started
    return {"kind": kind, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(kind: str, paths, batch_size: int, code: str = "") -> dict:
    """Runs one step in a fresh process (peak RSS is inherited across exec, so the parent
    itself never imports TensorFlow), importing recdistill from ``code`` when given."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--paths", json.dumps(paths),
                          "--batch-size", str(batch_size), "--code", code], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(paths: dict, batch_size: int, baseline: str, repeats: int = 2) -> None:
    """Times the reader and the job with this checkout and with ``baseline``, alternating."""
    results = {}
    for _ in range(repeats):
        for kind in ("read", "beam"):
            for name, code in (("this", ""), ("baseline", baseline)):
                result = _run_child(kind, paths, batch_size, code)
                best = results.get((kind, name))
                if best is None or result["rows_per_s"] > best["rows_per_s"]:
                    results[(kind, name)] = result
    print(f"format {paths['format']}, batch_size {batch_size}, {results[('read', 'this')]['rows']} "
          f"rows, best of {repeats}; baseline code {baseline}")
    for kind, label in (("read", "reader (tables.iter_batches)"), ("beam", "soft-label job")):
        this, base = results[(kind, "this")], results[(kind, "baseline")]
        print(f"{label:30s} this {this['rows_per_s']:10.0f} rows/s   baseline "
              f"{base['rows_per_s']:10.0f} rows/s   ratio {this['rows_per_s'] / base['rows_per_s']:.2f}")
    print("soft-label job rows/s, this / baseline:")
    print(f"{results[('beam', 'this')]['rows_per_s'] / results[('beam', 'baseline')]['rows_per_s']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--work", default=None)
    parser.add_argument("--format", choices=sorted(_INPUT_TYPES), default="csv")
    parser.add_argument("--baseline", default="",
                        help="a checkout whose recdistill to compare with, side by side")
    parser.add_argument("--child", choices=["prepare", "beam", "loop", "read"])
    parser.add_argument("--paths")
    parser.add_argument("--code", default="")
    args = parser.parse_args()
    if args.code:
        sys.path[0] = os.path.abspath(args.code)
    batch_size = args.batch_size or 65536  # handlers.DEFAULT_BATCH_SIZE, without importing it
    if args.child == "prepare":
        work, rows, fmt = json.loads(args.paths)
        print(json.dumps(_prepare(work, rows, fmt)))
        return
    if args.child:
        print(json.dumps(_child(args.child, json.loads(args.paths), batch_size)))
        return
    work = args.work or tempfile.mkdtemp(prefix="bench-soft-labels-")
    big = _run_child("prepare", [work, args.rows, args.format], batch_size)
    if args.baseline:
        _compare(big, batch_size, args.baseline)
        return
    small = _run_child("prepare", [work, args.small_rows, args.format], batch_size)
    beam_big = _run_child("beam", big, batch_size)
    loop_big = _run_child("loop", big, batch_size)
    beam_small = _run_child("beam", small, batch_size)
    print(f"teacher: DCN (sample teacher config), batch_size {batch_size}, data {work}")
    print(f"beam job      {beam_big['rows']:>9} rows  {beam_big['seconds']:7.1f} s  "
          f"{beam_big['rows_per_s']:10.0f} rows/s  peak RSS {beam_big['maxrss_mb']:.0f} MB")
    print(f"in-process    {loop_big['rows']:>9} rows  {loop_big['seconds']:7.1f} s  "
          f"{loop_big['rows_per_s']:10.0f} rows/s  peak RSS {loop_big['maxrss_mb']:.0f} MB")
    print(f"beam job      {beam_small['rows']:>9} rows  {beam_small['seconds']:7.1f} s  "
          f"{beam_small['rows_per_s']:10.0f} rows/s  peak RSS {beam_small['maxrss_mb']:.0f} MB")
    print(f"peak RSS ratio {args.rows} / {args.small_rows} rows: "
          f"{beam_big['maxrss_mb'] / beam_small['maxrss_mb']:.3f} (goal <= 1.2)")
    print(f"throughput ratio beam / in-process (goal >= 0.5):")
    print(f"{beam_big['rows_per_s'] / loop_big['rows_per_s']:.3f}")


if __name__ == "__main__":
    main()
