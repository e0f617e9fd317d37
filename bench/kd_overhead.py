"""Throughput cost of distillation: student examples/s with the kd loss / without it.

Both variants train the same DSSM student on the same sample data (a ``kd_soft`` column of
random logits added) through the trainer's own step (``recdistill.training.make_train_step``)
and input pipeline (``recdistill.data.datasets.make_dataset``). Timing windows alternate
between the two in one process, so machine noise hits both alike; the medians are compared.
Goal: ratio >= 0.95. The last line printed is the ratio.

    .venv/bin/python bench/kd_overhead.py [--rows 25000] [--steps 200] [--repeats 5]
"""

import argparse
import logging
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import kd as kd_lib
from recdistill import training
from recdistill.data import datasets, sample
from recdistill.models import build_model


def _soft_labelled_sample(rows: int, seed: int):
    """The sample's train split plus a column of random teacher logits, in a temp folder."""
    out = tempfile.mkdtemp(prefix="kd-overhead-")
    written = sample.write_sample_data(out, rows=rows, seed=seed)
    cfg = config_lib.load_config(written.student_config)
    names = [field.input_name for field in cfg.data_config.input_fields]
    frame = pd.read_csv(written.train_path, header=None, names=names[:-1], keep_default_na=False)
    frame[names[-1]] = np.random.default_rng(seed).normal(-1.0, 1.0, len(frame))
    path = os.path.join(out, "train_soft.csv")
    frame.to_csv(path, header=False, index=False)
    return cfg, path


def _variant(cfg, path, kd_blocks, seed):
    """A fresh student and its compiled step, reading its own iterator over the same files."""
    tf.keras.utils.set_random_seed(seed)
    model = build_model(cfg)
    labels = [label for _, label, _ in model.targets] + config_lib.soft_label_fields(cfg)
    dataset = datasets.make_dataset(path, cfg, columns=model.input_columns, labels=labels,
                                    batch_size=cfg.data_config.batch_size, shuffle=True,
                                    num_epochs=0, seed=seed)
    iterator = iter(dataset)
    model(next(iterator)[0], training=False)
    optimizer = training.build_optimizer(cfg.train_config)
    optimizer.build(model.trainable_variables)
    step = training.make_train_step(tf, tf.distribute.get_strategy(), model, optimizer,
                                    kd_lib.KdTask(model.targets, kd_blocks), False)
    return step, iterator


def _examples_per_sec(step, iterator, steps: int) -> float:
    start = time.perf_counter()
    examples = [step(iterator)[1] for _ in range(steps)]
    total = int(tf.add_n(examples).numpy())  # waits for the last step
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25000)
    parser.add_argument("--steps", type=int, default=200, help="steps per timing window")
    parser.add_argument("--repeats", type=int, default=5, help="windows per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cfg, path = _soft_labelled_sample(args.rows, args.seed)
    variants = {"kd": _variant(cfg, path, cfg.model_config.kd, args.seed),
                "no_kd": _variant(cfg, path, [], args.seed)}
    for step, iterator in variants.values():  # trace and warm up both first
        _examples_per_sec(step, iterator, 20)
    rates = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (step, iterator) in variants.items():
            rates[name].append(_examples_per_sec(step, iterator, args.steps))
    medians = {name: float(np.median(values)) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name}: median {medians[name]:.0f} examples/s over {args.repeats} windows "
              f"of {args.steps} steps (batch {cfg.data_config.batch_size}): "
              + ", ".join(f"{v:.0f}" for v in values))
    print(f"{medians['kd'] / medians['no_kd']:.3f}")


if __name__ == "__main__":
    main()
