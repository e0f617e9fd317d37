"""What the student-throughput benchmarks share (kd_overhead.py, input_throughput.py).

A soft-labelled copy of the sample's training split, the trainer's own compiled step for a
DSSM student, and timing windows that alternate between variants in one process, so machine
noise (two shared cores here) hits every variant alike and the medians can be compared.
"""

import os
import tempfile
import time

import numpy as np
import pandas as pd
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import kd as kd_lib
from recdistill import training
from recdistill.data import sample
from recdistill.models import build_model

WARMUP_STEPS = 20


def soft_labelled_sample(rows: int, seed: int, *, shards: int = 1):
    """The sample's train split plus a ``kd_soft`` column of random teacher logits.

    Returns:
      (the student config, a temp folder holding the rows as ``shards`` CSV files in order).
    """
    out = tempfile.mkdtemp(prefix="bench-student-")
    written = sample.write_sample_data(out, rows=rows, seed=seed)
    cfg = config_lib.load_config(written.student_config)
    names = [field.input_name for field in cfg.data_config.input_fields]
    frame = pd.read_csv(written.train_path, header=None, names=names[:-1], keep_default_na=False)
    frame[names[-1]] = np.random.default_rng(seed).normal(-1.0, 1.0, len(frame))
    folder = os.path.join(out, "train_soft")
    os.makedirs(folder)
    for index, part in enumerate(np.array_split(np.arange(len(frame)), shards)):
        frame.iloc[part].to_csv(os.path.join(folder, f"part-{index:05d}.csv"), header=False,
                                index=False)
    return cfg, folder


def label_names(cfg, model) -> list:
    """The hard labels of the model's targets, then the config's soft labels."""
    return [label for _, label, _ in model.targets] + config_lib.soft_label_fields(cfg)


def student_step(cfg, model, kd_blocks, first_features):
    """Builds ``model`` on one batch and returns the trainer's compiled step for it.

    Args:
      cfg: the student config (train_config gives the optimizer).
      model: a fresh model from ``build_model(cfg)``.
      kd_blocks: the kd blocks the loss includes (``[]`` for the hard-label loss only).
      first_features: one batch of features, to create the variables.
    """
    model(first_features, training=False)
    optimizer = training.build_optimizer(cfg.train_config)
    optimizer.build(model.trainable_variables)
    return training.make_train_step(tf.distribute.get_strategy(), model, optimizer,
                                    kd_lib.KdTask(model.targets, kd_blocks), False)


def new_student(cfg, seed: int):
    """A freshly initialised student model (seeded, so variants start from the same weights)."""
    tf.keras.utils.set_random_seed(seed)
    return build_model(cfg)


def examples_per_sec(step, iterator, steps: int) -> float:
    """Training examples per second over ``steps`` steps (waits for the last one)."""
    start = time.perf_counter()
    examples = [step(iterator)[1] for _ in range(steps)]
    total = int(tf.add_n(examples).numpy())
    return total / (time.perf_counter() - start)


def alternate(variants: dict, steps: int, repeats: int) -> dict:
    """Times each ``name -> (step, iterator)`` variant in turn, ``repeats`` rounds.

    Every variant is traced and warmed up first. Returns name -> examples/s per window.
    """
    for step, iterator in variants.values():
        examples_per_sec(step, iterator, WARMUP_STEPS)
    rates = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (step, iterator) in variants.items():
            rates[name].append(examples_per_sec(step, iterator, steps))
    return rates


def report(rates: dict, steps: int, batch_size: int) -> dict:
    """Prints each variant's median and windows; returns name -> median examples/s."""
    medians = {name: float(np.median(values)) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name}: median {medians[name]:.0f} examples/s over {len(values)} windows "
              f"of {steps} steps (batch {batch_size}): " + ", ".join(f"{v:.0f}" for v in values))
    return medians
