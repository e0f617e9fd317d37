"""Benchmark: the soft-label job's marginal rows/s against the same teacher's raw predict.

Start-up (Beam pipeline construction, teacher load, first-batch tracing) is excluded by
timing the job at two sizes over the same data and dividing the extra rows by the extra
seconds: ``(big - small) / (t_big - t_small)``. The same teacher is timed independently, in
the same round as the job runs (side by side, so load from other processes hits all alike):

* ``predict``: ``ExportedModel.predict`` on ``batch_size`` rows of in-memory numpy columns
  (the first 1M rows, read beforehand; reading excluded): what a caller of the export pays;
* ``signature``: the bare ``serving_default`` concrete function on in-memory tensors built
  beforehand (no conversion at all): the teacher's raw speed, the strictest yardstick;
* ``read + predict``: ``tables.iter_batches`` + predict, no writing.

Goal (issue 13 point 6): marginal job rows/s >= 0.6 of raw predict. Each measurement also
records the process's CPU seconds (user + sys, all threads), and the same ratios are printed
per CPU second: on a shared machine CPU time is robust to other processes' load, wall time
is not.

Teacher: the sample's DCN teacher config, untrained, exported by recdistill (what
bench/soft_labels.py uses); data: the sample's train split as one CSV file per size.
Each measurement runs in its own process; each round runs every measurement once, and the
fastest of ``--repeats`` rounds counts. Last line: the (wall) ratio to raw predict.

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
#: The measurements of one round, in the order they run.
_KINDS = ("small", "big", "predict", "signature", "read_predict")


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

        started, cpu = time.monotonic(), time.process_time()
        stats = job.generate_soft_labels(paths["teacher"], paths[kind],
                                         paths[kind] + ".out", cfg, batch_size=batch_size)
        return {"rows": stats["rows_written"], "seconds": time.monotonic() - started,
                "cpu": time.process_time() - cpu}
    model = exported.load_exported(paths["teacher"])
    read_config = config_lib.without_kd(cfg).data_config
    batches = tables.iter_batches(paths["big"], read_config, batch_size=batch_size)
    columns = []
    started, cpu = time.monotonic(), time.process_time()
    rows = 0
    for batch in batches:
        columns.append({n: batch.column(n).to_numpy(zero_copy_only=False) for n in model.inputs})
        if kind == "read_predict":
            model.predict(columns.pop())
        rows += batch.num_rows
        if kind != "read_predict" and rows >= _IN_MEMORY_ROWS:
            break  # the rate needs no more; the columns of 3M rows would not fit beside the job
    if kind == "read_predict":
        return {"rows": rows, "seconds": time.monotonic() - started,
                "cpu": time.process_time() - cpu}
    call = model.predict
    if kind == "signature":  # the bare serving function on tensors made beforehand
        import tensorflow as tf

        columns = [{name: tf.constant(values.astype(object) if model.inputs[name] == tf.string
                                      else values.astype(model.inputs[name].as_numpy_dtype))
                    for name, values in feed.items()} for feed in columns]
        call = lambda feed: model._signature(**feed)  # noqa: E731  pylint: disable=protected-access
    call(columns[0])  # trace once, outside the timing
    started, cpu = time.monotonic(), time.process_time()
    for feed in columns:
        call(feed)
    return {"rows": rows, "seconds": time.monotonic() - started,
            "cpu": time.process_time() - cpu}


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
                        help="rounds of measurements; the fastest of each counts (load noise)")
    parser.add_argument("--child", choices=["prepare", *_KINDS])
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
    best = {kind: {"rows": 0, "seconds": float("inf"), "cpu": float("inf")} for kind in _KINDS}
    for _ in range(args.repeats):  # every kind once per round, side by side under one load
        for kind in _KINDS:
            best[kind] = min(best[kind], _run(kind, paths, args.batch_size),
                             key=lambda r: r["seconds"])
    small, big = best["small"], best["big"]
    print(f"teacher: untrained sample DCN, batch_size {args.batch_size}, data {work}")
    names = {"small": "job", "big": "job", "predict": "predict only",
             "signature": "signature only", "read_predict": "read + predict"}
    for kind in _KINDS:
        run = best[kind]
        print(f"{names[kind]:15} {run['rows']:>9} rows {run['seconds']:8.1f} s "
              f"{run['rows'] / run['seconds']:10.0f} rows/s {run['cpu']:8.1f} cpu s "
              f"{run['rows'] / run['cpu']:10.0f} rows/cpu s")
    extra = big["rows"] - small["rows"]
    marginal = extra / (big["seconds"] - small["seconds"])
    marginal_cpu = extra / (big["cpu"] - small["cpu"])
    print(f"job marginal ({args.small} -> {args.big} rows): {marginal:.0f} rows/s, "
          f"{marginal_cpu:.0f} rows/cpu s")
    for kind in ("read_predict", "signature", "predict"):
        run = best[kind]
        print(f"marginal / {names[kind]}: {marginal / (run['rows'] / run['seconds']):.3f} wall, "
              f"{marginal_cpu / (run['rows'] / run['cpu']):.3f} cpu")
    print("marginal / raw predict (goal >= 0.6):")
    print(f"{marginal / (best['predict']['rows'] / best['predict']['seconds']):.3f}")

if __name__ == "__main__":
    main()
