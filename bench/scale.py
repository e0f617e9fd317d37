"""The scale curve of the whole chain: soft labels, one training epoch and evaluation at 1M,
4M and 16M rows of the sample generator.

Each size's rows are drawn shard by shard (``--shard-rows`` rows of ``sample.generate_sample``
per shard, its first 80% to ``train/``, the rest to ``eval/``, as Parquet), so no step and not
the generator ever holds the whole table. Ids get the shard's prefix, so users and items grow
with the rows (one user per ``sample.ROWS_PER_USER`` rows) as in a real log. Then, each in its
own subprocess, so that one step's memory cannot mask another's:

* ``soft_labels``: the real Beam job (``recdistill.soft_labels.job``, in-process runner) with an
  untrained sample DCN teacher (as bench/soft_labels.py) over ``train/``;
* ``train``: one epoch of the kd DSSM student (``recdistill.training.train``) on its output;
* ``evaluate``: ``recdistill.evaluation.evaluate`` of the student, with the teacher, on ``eval/``.

For every step and size it prints seconds per million rows the step read (timed inside the
child, start-up of the interpreter excluded) and the child's peak RSS (its ``VmHWM``), then the
ratios 16M/1M. Goals (issue 13.4): per-row cost at the largest size within 1.25x of the
smallest, peak RSS flat. A size's files are deleted before the next size is written.

    .venv/bin/python bench/scale.py                                # 1M, 4M, 16M rows
    .venv/bin/python bench/scale.py --sizes 2e5 4e5 --out /tmp/scale.md
    .venv/bin/python bench/scale.py --report W1/rows-1000000.json W2/rows-16000000.json
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STEPS = ("generate", "soft_labels", "train", "evaluate")
#: Soft labels and training read the train split, evaluation the eval split.
_SPLIT_OF = {"generate": None, "soft_labels": "train", "train": "train", "evaluate": "eval"}
EVAL_FRACTION = 0.2
RSS_GOAL = 1.25  # the same bound as the per-row cost: "flat" within the noise of 2 shared cores
COST_GOAL = 1.25


# ---------------------------------------------------------------- children (one step each)
def _configs(work: str) -> dict:
    """The sample's teacher and kd-student configs, reading Parquet, one epoch of training."""
    from recdistill.data import sample

    paths = {}
    texts = sample.render_configs(sample.SAMPLE_FEATURES, batch_size=1, num_steps=1)
    for name in ("teacher", "student"):
        paths[name] = os.path.join(work, f"{name}.config")
        with open(paths[name] + ".tmp", "w") as f:
            f.write(texts[name].replace("input_type: CSVInput", "input_type: ParquetInput"))
        os.replace(paths[name] + ".tmp", paths[name])
    return paths


def _student_config(work: str, batch_size: int):
    from recdistill import config as config_lib

    cfg = config_lib.load_config(os.path.join(work, "student.config"))
    cfg.ClearField("eval_input_path")  # the evaluate step evaluates; training only trains
    cfg.data_config.batch_size = batch_size
    cfg.data_config.num_epochs = 1
    cfg.train_config.num_steps = 0  # the epoch decides
    cfg.train_config.save_checkpoints_steps = 10 ** 9  # once, at the end
    cfg.train_config.log_step_count_steps = 500
    return cfg


def prepare(work: str) -> dict:
    """Writes the configs and exports an untrained sample DCN teacher."""
    from recdistill import config as config_lib
    from recdistill.models import build_model
    from recdistill.models.export import export_model

    paths = _configs(work)
    teacher = os.path.join(work, "teacher")
    export_model(build_model(config_lib.load_config(paths["teacher"])), teacher,
                 {"label_fields": ["clk"]})
    return {"teacher": teacher}


def generate(work: str, size_dir: str, rows: int, shard_rows: int, seed: int) -> dict:
    """Writes ``rows`` sample rows as Parquet shards of ``shard_rows``, one shard in memory."""
    import numpy as np
    import pyarrow as pa

    from recdistill import config as config_lib
    from recdistill.data import sample, tables

    data_config = config_lib.without_kd(_student_config(work, 1)).data_config
    counts = {"train": 0, "eval": 0}
    for shard, start in enumerate(range(0, rows, shard_rows)):
        drawn = sample.generate_sample(min(shard_rows, rows - start),
                                       eval_fraction=EVAL_FRACTION, seed=seed + shard)
        for column in (sample.USER_ID, sample.ITEM_ID):  # this shard's own users and items
            values = drawn.columns[column]
            drawn.columns[column] = np.char.add(f"s{shard}", values.astype(str)).astype(object)
        for split in counts:
            table = pa.table(drawn.split(split))
            tables.write_table(table, os.path.join(size_dir, split), data_config,
                               shard=f"part-{shard:05d}")
            counts[split] += table.num_rows
    return {"rows": rows, **counts}


def soft_labels(work: str, size_dir: str, batch_size: int) -> dict:
    from recdistill.soft_labels import job

    stats = job.generate_soft_labels(os.path.join(work, "teacher"), os.path.join(size_dir, "train"),
                                     os.path.join(size_dir, "soft"),
                                     _student_config(work, batch_size))
    return {"rows": stats["rows_written"]}


def train(work: str, size_dir: str, batch_size: int) -> dict:
    from recdistill import training

    result = training.train(_student_config(work, batch_size),
                            train_uri=os.path.join(size_dir, "soft"),
                            model_dir=os.path.join(size_dir, "student"))
    return {"steps": result.steps, "loss": result.metrics.get("loss")}


def evaluate(work: str, size_dir: str, batch_size: int) -> dict:
    from recdistill import evaluation

    result = evaluation.evaluate(os.path.join(size_dir, "student"), os.path.join(size_dir, "eval"),
                                 _student_config(work, batch_size),
                                 teacher_uri=os.path.join(work, "teacher"),
                                 out_dir=os.path.join(size_dir, "evaluation"),
                                 thresholds={"min_auc": 0.5})
    return {"rows": result.metrics["examples"],
            "users": result.metrics["models"]["student"]["gauc_users"]}


def _child(step: str, args: list, out: str) -> None:
    """Runs one step; writes its result and in-process seconds to ``out`` (JSON)."""
    function = {"prepare": prepare, "generate": generate, "soft_labels": soft_labels,
                "train": train, "evaluate": evaluate}[step]
    started = time.perf_counter()
    result = function(*args)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = _peak_rss_mb()
    with open(out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(out + ".tmp", out)


def _peak_rss_mb() -> float:
    """This process's peak resident set since its exec (``VmHWM``), in MB.

    Not ``ru_maxrss`` (of the child, from ``os.wait4``, or its own): Linux carries the forked
    copy's pre-exec peak into it, so a child started from a big parent (pytest with TF loaded)
    would report the parent's size.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("/proc/self/status has no VmHWM: bench/scale.py measures memory on "
                       "Linux only.")


# ---------------------------------------------------------------- the parent
def run_step(work: str, step: str, args: list) -> dict:
    """Runs ``step`` in a fresh interpreter; returns its result, with ``peak_rss_mb`` the
    child's own peak (not this process's, not an earlier step's)."""
    out = os.path.join(work, f"{step}.json")
    log_path = os.path.join(work, f"{step}.log")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log_path, "w") as log:
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", step,
                                  json.dumps(args), out], stdout=log, stderr=subprocess.STDOUT,
                                 env=env)
        child.wait()
    if child.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-4000:]
        raise RuntimeError(f"bench/scale.py: step {step} {args} failed (exit "
                           f"{child.returncode}); the end of {log_path}:\n{tail}")
    with open(out) as f:
        return json.load(f)


def run_size(work: str, rows: int, *, shard_rows: int, batch_size: int, seed: int) -> dict:
    """Generates one size's shards, runs the chain on them, deletes them; step -> result.

    Each step's line is printed, and ``<work>/rows-<N>.json`` rewritten, as soon as the step
    ends, so a run stopped part way (16M rows take hours on a loaded machine) keeps them.
    """
    size_dir = os.path.join(work, f"rows-{rows}")
    saved = os.path.join(work, f"rows-{rows}.json")
    results, split_rows = {}, {}
    for step in STEPS:
        args = [work, size_dir, rows, shard_rows, seed] if step == "generate" else \
            [work, size_dir, batch_size]
        results[step] = run_step(work, step, args)
        if step == "generate":
            split_rows = {split: results[step][split] for split in ("train", "eval")}
        split = _SPLIT_OF[step]
        results[step]["rows_read"] = split_rows[split] if split else rows
        print(f"{rows:>11,} rows  {step:12} {results[step]['seconds']:8.1f} s  "
              f"{results[step]['seconds'] / (results[step]['rows_read'] / 1e6):7.1f} s/M rows  "
              f"peak RSS {results[step]['peak_rss_mb']:6.0f} MB", flush=True)
        with open(saved + ".tmp", "w") as f:
            json.dump({rows: results}, f)
        os.replace(saved + ".tmp", saved)
    _check_rows(rows, results, split_rows)
    shutil.rmtree(size_dir)
    return results


def _check_rows(rows: int, results: dict, split_rows: dict) -> None:
    """Every step must have seen every row of its split, or its rate means nothing."""
    expected = {"soft_labels": split_rows["train"], "evaluate": split_rows["eval"]}
    for step, want in expected.items():
        if results[step]["rows"] != want:
            raise RuntimeError(f"{rows} rows: {step} saw {results[step]['rows']} rows, the "
                               f"{_SPLIT_OF[step]} split has {want}.")


def report(curve: dict, args) -> str:
    """The markdown table of seconds per million rows and peak RSS, and the ratios of each
    step's largest measured size to its smallest (a step a stopped run lacks shows "-")."""
    sizes = sorted(curve)
    lines = [f"Sample generator, Parquet shards of {args.shard_rows:,} rows (80% train, 20% "
             f"eval), student batch {args.batch_size}; s/M = seconds per million rows the step "
             "read (train split for soft labels and training, eval split for evaluation).", "",
             "| step | " + " | ".join(f"{rows / 1e6:g}M rows: s/M, peak RSS" for rows in sizes)
             + " | s/M ratio | RSS ratio |",
             "|---|" + "---|" * (len(sizes) + 2)]
    verdicts = []
    for step in STEPS:
        cells, measured = [], []
        for rows in sizes:
            result = curve[rows].get(step)
            if result is None:
                cells.append("-")
                continue
            per_million = result["seconds"] / (result["rows_read"] / 1e6)
            measured.append((rows, per_million, result["peak_rss_mb"]))
            cells.append(f"{result['seconds']:.0f} s, {per_million:.1f} s/M, "
                         f"{result['peak_rss_mb']:.0f} MB")
        ratios = "- | -"
        if len(measured) > 1:
            (small, cost_a, rss_a), (big, cost_b, rss_b) = measured[0], measured[-1]
            ratios = f"**{cost_b / cost_a:.2f}** | **{rss_b / rss_a:.2f}**"
            if step != "generate":
                verdicts.append(f"{step}: s/M {big:,}/{small:,} rows {cost_b / cost_a:.2f} "
                                f"(goal <= {COST_GOAL}), peak RSS {rss_b / rss_a:.2f} "
                                f"(goal <= {RSS_GOAL})")
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {ratios} |")
    return "\n".join(lines + [""] + verdicts)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 4e6, 16e6],
                        help="total sample rows per size (train + eval)")
    parser.add_argument("--shard-rows", type=int, default=250_000)
    parser.add_argument("--batch-size", type=int, default=4096, help="student training batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="scratch folder (default: a new temp folder, removed)")
    parser.add_argument("--out", help="also write the table and ratios to this markdown file")
    parser.add_argument("--report", nargs="+", metavar="JSON",
                        help="only print the table of earlier runs' rows-<N>.json files "
                             "(sizes run apart, e.g. in parallel on a shared machine)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        step, step_args, out = args.child
        _child(step, json.loads(step_args), out)
        return {}
    if args.report:
        curve = {}
        for path in args.report:
            with open(path) as f:
                curve.update({int(rows): steps for rows, steps in json.load(f).items()})
        _print_report(curve, args)
        return curve
    work = args.work or tempfile.mkdtemp(prefix="bench-scale-")
    os.makedirs(work, exist_ok=True)
    run_step(work, "prepare", [work])
    curve = {}
    for rows in sorted(int(size) for size in args.sizes):
        curve[rows] = run_size(work, rows, shard_rows=args.shard_rows,
                               batch_size=args.batch_size, seed=args.seed)
    _print_report(curve, args)
    if not args.work:
        shutil.rmtree(work)
    return curve


def _print_report(curve: dict, args) -> None:
    text = report(curve, args)
    print(text)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
