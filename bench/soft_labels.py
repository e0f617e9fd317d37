"""Benchmark: the Beam soft-label job vs a plain in-process batched predict loop.

Teacher: the project's DCN (recdistill.data.sample teacher config, untrained weights, exported
with recdistill.models.export) over the synthetic sample's train.csv. Prints rows/s of
generate_soft_labels (DirectRunner) and of an in-process loop (tables.iter_batches +
ExportedModel.predict, same batch size, no writing), their ratio (goal >= 0.5), and the peak
RSS of the job at 100k vs 1M rows, each in its own subprocess (goal ratio <= 1.2).
Last line: the throughput ratio.

    .venv/bin/python bench/soft_labels.py [--rows 1000000] [--small-rows 100000] [--work DIR]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _prepare(work: str, rows: int) -> dict:
    """Writes the sample (train.csv holds ~rows rows) and exports an untrained DCN teacher."""
    from recdistill import config as config_lib
    from recdistill.data import sample
    from recdistill.models import build_model
    from recdistill.models.export import export_model

    data = os.path.join(work, f"rows{rows}")
    if not os.path.exists(os.path.join(data, "teacher", "saved_model.pb")):
        paths = sample.write_sample_data(data, rows=int(rows / 0.8) + 1)
        teacher_cfg = config_lib.load_config(paths.teacher_config)
        model = build_model(teacher_cfg)
        export_model(model, os.path.join(data, "teacher"), {"label_fields": ["clk"]})
    return {"data": data, "train": os.path.join(data, sample.TRAIN_FILE),
            "teacher": os.path.join(data, "teacher"),
            "student": os.path.join(data, sample.STUDENT_CONFIG)}


def _child(kind: str, paths: dict, batch_size: int) -> dict:
    from recdistill import config as config_lib
    from recdistill import exported
    from recdistill.data import tables
    from recdistill.soft_labels import job

    import tensorflow  # noqa: F401  (both timings start with TF imported, nothing loaded)

    cfg = config_lib.load_config(paths["student"])
    started = time.monotonic()
    if kind == "beam":
        stats = job.generate_soft_labels(paths["teacher"], paths["train"],
                                         os.path.join(paths["data"], "out"), cfg,
                                         batch_size=batch_size)
        rows = stats["rows_written"]
    else:
        soft = set(config_lib.soft_label_fields(cfg))
        read_config = type(cfg.data_config)()
        read_config.CopyFrom(cfg.data_config)
        del read_config.input_fields[:]
        read_config.input_fields.extend(f for f in cfg.data_config.input_fields
                                        if f.input_name not in soft)
        model = exported.load_exported(paths["teacher"])
        rows = 0
        for batch in tables.iter_batches(paths["train"], read_config, batch_size=batch_size):
            model.predict({n: batch.column(n).to_numpy(zero_copy_only=False) for n in model.inputs})
            rows += batch.num_rows
    seconds = time.monotonic() - started
    return {"kind": kind, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(kind: str, paths, batch_size: int) -> dict:
    """Runs one step in a fresh process (peak RSS is inherited across exec, so the parent
    itself never imports TensorFlow)."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--paths", json.dumps(paths),
                          "--batch-size", str(batch_size)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--work", default=None)
    parser.add_argument("--child", choices=["prepare", "beam", "loop"])
    parser.add_argument("--paths")
    args = parser.parse_args()
    batch_size = args.batch_size or 65536  # handlers.DEFAULT_BATCH_SIZE, without importing it
    if args.child == "prepare":
        work, rows = json.loads(args.paths)
        print(json.dumps(_prepare(work, rows)))
        return
    if args.child:
        print(json.dumps(_child(args.child, json.loads(args.paths), batch_size)))
        return
    work = args.work or tempfile.mkdtemp(prefix="bench-soft-labels-")
    big = _run_child("prepare", [work, args.rows], batch_size)
    small = _run_child("prepare", [work, args.small_rows], batch_size)
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
