"""How evaluation scales: `evaluate()` at 1M and 5M eval rows, 10^5 and 10^6 users.

Each size runs the real ``recdistill.evaluation.evaluate`` (student and teacher: the tests' toy
linear SavedModels, GAUC by user, teacher agreement, per-session consistency, report) over a
Parquet eval table in a fresh subprocess, which reports its wall time and peak RSS. Goals
(issue 13.3): time 5M/1M <= 6, peak RSS 5M/1M <= 1.5, 5M rows in under 3 minutes.

    .venv/bin/python bench/evaluate_scale.py                  # all four sizes
    .venv/bin/python bench/evaluate_scale.py --rows 1e6 --users 1e5 1e6
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # toy_models: the tests' tiny SavedModels
SHARD_ROWS = 1_000_000
STUDENT, TEACHER = (1.2, 0.1), (1.5, 0.5)


def write_table(folder: str, rows: int, users: int, seed: int = 0) -> None:
    """Writes ``rows`` eval rows (clk, user_id, x, z) over ``users`` users as Parquet shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    os.makedirs(folder)
    for shard, start in enumerate(range(0, rows, SHARD_ROWS)):
        n = min(SHARD_ROWS, rows - start)
        x = rng.normal(size=n).astype(np.float32)
        z = rng.normal(size=n).astype(np.float32)
        clk = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x + 0.5 * z)))).astype(np.int32)
        user = pa.array(rng.integers(0, users, n)).cast(pa.string())
        pq.write_table(pa.table({"clk": clk, "user_id": user, "x": x, "z": z}),
                       os.path.join(folder, f"part-{shard:05d}.parquet"))


def child(data: str, student: str, teacher: str, out: str) -> None:
    """Runs one evaluation; prints its seconds and this process's RSS before and at peak."""
    import toy_models
    from recdistill import config as config_lib
    from recdistill import evaluation

    cfg = config_lib.load_config(toy_models.config_text().replace("input_type: CSVInput",
                                                                  "input_type: ParquetInput"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = evaluation.evaluate(student, data, cfg, teacher_uri=teacher, out_dir=out,
                                 thresholds={"min_auc": 0.5}, top_k=10, top_m=20)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_before_mb": before, "peak_rss_mb": peak,
                      "examples": result.metrics["examples"],
                      "users": result.metrics["models"]["student"]["gauc_users"],
                      "gauc": result.metrics["models"]["student"]["gauc"],
                      "teacher_ndcg": result.metrics["models"]["student"]["teacher_ndcg"]}))


def measure(work: str, rows: int, users: int, student: str, teacher: str) -> dict:
    data = os.path.join(work, f"eval-{rows}-{users}")
    write_table(data, rows, users)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, __file__, "--child", data, student, teacher,
                           os.path.join(work, f"out-{rows}-{users}")],
                          env=env, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{rows:>9,} rows {users:>9,} users: {result['seconds']:7.1f} s, peak RSS "
          f"{result['peak_rss_mb']:6.0f} MB (after imports {result['rss_before_mb']:.0f} MB), "
          f"GAUC over {result['users']:,} users", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e6, 5e6])
    parser.add_argument("--users", nargs="+", type=float, default=[1e5, 1e6])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    import toy_models

    work = tempfile.mkdtemp(prefix="bench-evaluate-")
    student = toy_models.save_linear(os.path.join(work, "student"), *STUDENT)
    teacher = toy_models.save_linear(os.path.join(work, "teacher"), *TEACHER)
    rows, users = [int(r) for r in args.rows], [int(u) for u in args.users]
    results = {(r, u): measure(work, r, u, student, teacher) for u in users for r in rows}
    if len(rows) == 2:
        small, big = rows
        for u in users:
            a, b = results[(small, u)], results[(big, u)]
            time_ratio = b["seconds"] / a["seconds"]
            rss_ratio = b["peak_rss_mb"] / a["peak_rss_mb"]
            print(f"{u:,} users, {big:,}/{small:,} rows: time ratio {time_ratio:.2f} "
                  f"(goal <= {big / small * 1.2:.0f}), peak RSS ratio {rss_ratio:.2f} "
                  f"(goal <= 1.5); {big:,} rows in {b['seconds']:.0f} s (goal < 180 s)")


if __name__ == "__main__":
    main()
