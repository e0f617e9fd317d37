"""Does training input keep the model busy? Student examples/s from files / from memory.

One DSSM student (the sample's kd student config, a ``kd_soft`` column of random logits added)
and one compiled train step (``recdistill.training.make_train_step``) are fed two ways:

* files: CSV shards read by the trainer's own pipeline
  (``recdistill.data.datasets.make_dataset``: interleave, shuffle, decode per batch, prefetch);
* memory: the same rows, already decoded to serving dtypes, as
  ``tf.data.Dataset.from_tensor_slices`` batched once and replayed from a cache: the rate
  when input costs nothing.

Timing windows alternate between the two in one process, so machine noise hits both alike; the
medians are compared. Goal: files / memory >= 0.9. The last line printed is the ratio.

    .venv/bin/python bench/input_throughput.py [--rows 25000 --shards 4 --steps 1000 --repeats 5]
"""

import argparse
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import _common  # noqa: E402  (bench/ is on sys.path when a script here runs)
from recdistill.data import datasets  # noqa: E402


def _in_memory(path, cfg, columns, labels, batch_size: int) -> tf.data.Dataset:
    """Every row of ``path`` as decoded tensors, cut into batches once and repeated from a
    cache, so producing a batch costs no per-row work."""
    batches = list(datasets.make_dataset(path, cfg, columns=columns, labels=labels,
                                         batch_size=65536, shuffle=False, num_epochs=1))
    rows = tuple({name: tf.concat([batch[part][name] for batch in batches], axis=0)
                  for name in batches[0][part]} for part in (0, 1))
    cached = tf.data.Dataset.from_tensor_slices(rows).batch(batch_size).cache()
    count = sum(1 for _ in cached)  # fills the cache
    logging.info("In memory: %d batches of %d rows", count, batch_size)
    return cached.repeat().prefetch(tf.data.AUTOTUNE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25000)
    parser.add_argument("--shards", type=int, default=4, help="CSV files the rows are split into")
    parser.add_argument("--steps", type=int, default=1000, help="steps per timing window")
    parser.add_argument("--repeats", type=int, default=5, help="windows per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cfg, path = _common.soft_labelled_sample(args.rows, args.seed, shards=args.shards)
    model = _common.new_student(cfg, args.seed)
    labels = _common.label_names(cfg, model)
    batch_size = cfg.data_config.batch_size
    files = datasets.make_dataset(path, cfg, columns=model.input_columns, labels=labels,
                                  batch_size=batch_size, shuffle=cfg.data_config.shuffle,
                                  num_epochs=0, seed=args.seed)
    memory = _in_memory(path, cfg, model.input_columns, labels, batch_size)
    if files.element_spec != memory.element_spec:
        raise ValueError(f"the two inputs differ: files give {files.element_spec}, memory "
                         f"gives {memory.element_spec}; the comparison would not be fair.")
    variants = {"files": iter(files), "memory": iter(memory)}
    step = _common.student_step(cfg, model, cfg.model_config.kd, next(variants["memory"])[0])
    rates = _common.alternate({name: (step, iterator) for name, iterator in variants.items()},
                              args.steps, args.repeats)
    medians = _common.report(rates, args.steps, batch_size)
    print(f"{medians['files'] / medians['memory']:.3f}")


if __name__ == "__main__":
    main()
