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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _common  # noqa: E402  (bench/ is on sys.path when a script here runs)
from recdistill.data import datasets  # noqa: E402


def _variant(cfg, path, kd_blocks, seed):
    """A fresh student and its compiled step, reading its own iterator over the same files."""
    model = _common.new_student(cfg, seed)
    dataset = datasets.make_dataset(path, cfg, columns=model.input_columns,
                                    labels=_common.label_names(cfg, model),
                                    batch_size=cfg.data_config.batch_size, shuffle=True,
                                    num_epochs=0, seed=seed)
    iterator = iter(dataset)
    return _common.student_step(cfg, model, kd_blocks, next(iterator)[0]), iterator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25000)
    parser.add_argument("--steps", type=int, default=200, help="steps per timing window")
    parser.add_argument("--repeats", type=int, default=5, help="windows per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cfg, path = _common.soft_labelled_sample(args.rows, args.seed)
    variants = {"kd": _variant(cfg, path, cfg.model_config.kd, args.seed),
                "no_kd": _variant(cfg, path, [], args.seed)}
    rates = _common.alternate(variants, args.steps, args.repeats)
    medians = _common.report(rates, args.steps, cfg.data_config.batch_size)
    print(f"{medians['kd'] / medians['no_kd']:.3f}")


if __name__ == "__main__":
    main()
