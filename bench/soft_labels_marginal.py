"""Benchmark: the soft-label job's marginal rows/s against the same teacher's raw predict.

Start-up (Beam pipeline construction, teacher load, first-batch tracing) is excluded by
timing the job at two sizes over the same data and dividing the extra rows by the extra
seconds: ``(big - small) / (t_big - t_small)``. The same teacher is then timed independently
on in-memory columns (``ExportedModel.predict`` on ``batch_size`` rows of the first 1M;
reading excluded) and
on read + predict (``tables.iter_batches`` + predict, no writing). Goal (issue 13 point 6):
marginal job rows/s >= 0.6 of raw predict.

Teacher: the sample's DCN teacher config, untrained, exported by recdistill (what
bench/soft_labels.py uses); data: the sample's train split as one CSV file per size.
Each measurement runs in its own process; each job size runs ``--repeats`` times, alternating,
and the fastest run counts. Last line: the ratio to raw predict.

    .venv/bin/python bench/soft_labels_marginal.py [--small 1000000] [--big 3000000] [--work DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_IN_MEMORY_ROWS = 1_000_000


def _prepare(work: str, small: int, big: int) -> dict:
    """Writes the sample's train split (>= big rows), its first ``small`` and ``big`` rows as
    two inputs, and an untrained DCN teacher export."""
    from recdistill import config as config_lib
    from recdistill.data import sample
    from recdistill.models import build_model
    from recdistill.models.export import export_model

    paths = {"teacher": os.path.join(work, "teacher"),
             "student": os.path.join(work, "sample", sample.STUDENT_CONFIG),
             "small": os.path.join(work, "small", "train.csv"),
             "big": os.path.join(work, "big", "train.csv")}
    if os.path.exists(os.path.join(paths["teacher"], "saved_model.pb")):
        return paths  # prepared by an earlier run with the same --work
    written = sample.write_sample_data(os.path.join(work, "sample"), rows=int(big / 0.8) + 1)
    with open(written.train_path) as source:
        lines = source.readlines()
    for name, rows in (("small", small), ("big", big)):
        os.makedirs(os.path.dirname(paths[name]))
        with open(paths[name], "w") as out:
            out.writelines(lines[:rows])
    export_model(build_model(config_lib.load_config(written.teacher_config)), paths["teacher"],
                 {"label_fields": ["clk"]})
    return paths


def _child(kind: str, paths: dict, batch_size: int) -> dict:
    from recdistill import config as config_lib
    from recdistill import exported
    from recdistill.data import tables

    cfg = config_lib.load_config(paths["student"])
    if kind in ("small", "big"):
        from recdistill.soft_labels import job

        started = time.monotonic()
        stats = job.generate_soft_labels(paths["teacher"], paths[kind],
                                         paths[kind] + ".out", cfg, batch_size=batch_size)
        return {"rows": stats["rows_written"], "seconds": time.monotonic() - started}
    model = exported.load_exported(paths["teacher"])
    read_config = config_lib.without_kd(cfg).data_config
    batches = tables.iter_batches(paths["big"], read_config, batch_size=batch_size)
    columns = []
    started = time.monotonic()
    rows = 0
    for batch in batches:
        columns.append({n: batch.column(n).to_numpy(zero_copy_only=False) for n in model.inputs})
        if kind == "read_predict":
            model.predict(columns.pop())
        rows += batch.num_rows
        if kind == "predict" and rows >= _IN_MEMORY_ROWS:
            break  # the rate needs no more; the columns of 3M rows would not fit beside the job
    if kind == "read_predict":
        return {"rows": rows, "seconds": time.monotonic() - started}
    model.predict(columns[0])  # trace once, outside the timing
    started = time.monotonic()
    for feed in columns:
        model.predict(feed)
    return {"rows": rows, "seconds": time.monotonic() - started}


def _run(kind: str, paths, batch_size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--paths",
                          json.dumps(paths), "--batch-size", str(batch_size)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, default=3_000_000)
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--work", default=None, help="data folder; reused when prepared")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each job size; the fastest counts (load noise)")
    parser.add_argument("--child", choices=["prepare", "small", "big", "predict",
                                            "read_predict"])
    parser.add_argument("--paths")
    args = parser.parse_args()
    if args.child == "prepare":
        print(json.dumps(_prepare(*json.loads(args.paths))))
        return
    if args.child:
        print(json.dumps(_child(args.child, json.loads(args.paths), args.batch_size)))
        return
    work = args.work or tempfile.mkdtemp(prefix="bench-soft-labels-marginal-")
    paths = _run("prepare", [work, args.small, args.big], args.batch_size)
    small, big = ({"rows": 0, "seconds": float("inf")} for _ in range(2))
    for _ in range(args.repeats):  # alternate, so load from other processes hits both
        small = min(small, _run("small", paths, args.batch_size), key=lambda r: r["seconds"])
        big = min(big, _run("big", paths, args.batch_size), key=lambda r: r["seconds"])
    predict = _run("predict", paths, args.batch_size)
    read_predict = _run("read_predict", paths, args.batch_size)
    marginal = (big["rows"] - small["rows"]) / (big["seconds"] - small["seconds"])
    raw = predict["rows"] / predict["seconds"]
    with_read = read_predict["rows"] / read_predict["seconds"]
    print(f"teacher: untrained sample DCN, batch_size {args.batch_size}, data {work}")
    for name, run in (("job", small), ("job", big), ("predict only", predict),
                      ("read + predict", read_predict)):
        print(f"{name:15} {run['rows']:>9} rows {run['seconds']:8.1f} s "
              f"{run['rows'] / run['seconds']:10.0f} rows/s")
    print(f"job marginal rows/s ({args.small} -> {args.big} rows): {marginal:.0f}")
    print(f"marginal / read + predict: {marginal / with_read:.3f}")
    print("marginal / raw predict (goal >= 0.6):")
    print(f"{marginal / raw:.3f}")


if __name__ == "__main__":
    main()
