"""Training from an S3 store shard by shard: student examples/s from S3 / from local disk.

The sample's training split (a ``kd_soft`` column added) is written as CSV shards, once on
local disk and once in a bucket of moto's S3 server on loopback (started here). One DSSM
student and the trainer's compiled step are fed two ways, each shard read in order by the
trainer's own reader (``recdistill.data.datasets.make_dataset``):

* local: the local folder of shards, as training reads it today;
* s3: ``recdistill.data.filesystems.local_shards`` over the bucket's shards: the next shard
  downloads while the current one is read, and each copy is deleted once read. The shards'
  paths feed the same reader (its CSV line and decode steps) through ``flat_map``: how
  ``make_dataset`` should read remote input (today it downloads every shard first).

A third variant, local-flat_map, runs the s3 pipeline over the local files, to tell the cost
of the pipeline's shape from the cost of downloading. Timing windows alternate between the
variants in one process (``_common.alternate``); medians are compared. Peak disk is the largest total size of the downloaded copies, sampled every
2 ms, in shards. Goal: s3 / local >= 0.8 with at most 2 shards on disk. The last line printed
is the ratio.

    .venv/bin/python bench/remote_input.py [--rows 48000 --shards 4 --steps 200 --repeats 3]

Shards of 12,000 rows (~700 KB) by default: each S3 object costs moto ~50-140 ms whatever its
size, so much smaller shards are read faster than the next one downloads.
"""

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import _common  # noqa: E402  (bench/ is on sys.path when a script here runs)
from recdistill.data import datasets, filesystems  # noqa: E402


def _start_s3_server() -> tuple:
    """moto's S3 server on a free loopback port; returns (process, http URL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto S3 server did not start on {url}") from None
            time.sleep(0.1)


class _DiskPeak(threading.Thread):
    """Samples the total size of the shard copies under ``folder``; ``peak`` is the largest.

    Only ``shards-*`` folders count (``local_shards``'s), not TF's own temporary files.
    """

    def __init__(self, folder: str):
        super().__init__(daemon=True)
        self.folder, self.peak, self.running = folder, 0, True

    def run(self):
        while self.running:
            total = 0
            for root, _, names in os.walk(self.folder):
                if "shards-" not in root:
                    continue
                for name in names:
                    try:
                        total += os.path.getsize(os.path.join(root, name))
                    except OSError:  # deleted between listing and stat
                        pass
            self.peak = max(self.peak, total)
            time.sleep(0.002)


def _streamed(uris, reader, batch_size) -> tf.data.Dataset:
    """The trainer's CSV pipeline over ``uris`` in order, forever, through ``local_shards``.

    What ``datasets.make_dataset`` should do for remote input (its reader's ``_lines`` and
    ``_decode``, unshuffled): paths come from a generator instead of a list, and ``flat_map``
    opens a shard only after the previous one is read to the end, which is
    ``local_shards``'s contract (a shard's copy is deleted when the next path is asked for).
    """
    def paths():
        while True:
            yield from filesystems.local_shards(uris)

    lines = tf.data.Dataset.from_generator(
        paths, output_signature=tf.TensorSpec([], tf.string)).flat_map(reader._lines)
    return lines.batch(batch_size).map(reader._decode, num_parallel_calls=tf.data.AUTOTUNE,
                                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=48000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="steps per timing window")
    parser.add_argument("--repeats", type=int, default=3, help="windows per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cfg, folder = _common.soft_labelled_sample(args.rows, args.seed, shards=args.shards)
    # Downloads land under this folder only, so its size is the disk the s3 variant uses.
    tempfile.tempdir = tempfile.mkdtemp(prefix="bench-remote-downloads-")
    proc, url = _start_s3_server()
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")
    try:
        import pyarrow.fs as pafs

        pafs.S3FileSystem(access_key="bench", secret_key="bench", region="us-east-1",
                          scheme="http", endpoint_override=url.split("://", 1)[1],
                          allow_bucket_creation=True).create_dir("bench")
        filesystems.copy_tree(folder, "s3://bench/train")
        uris = filesystems.expand("s3://bench/train")
        largest = max(os.path.getsize(p) for p in filesystems.expand(folder))
        print(f"{len(uris)} shards, largest {largest} bytes, {args.rows} rows, S3 at {url}")

        model = _common.new_student(cfg, args.seed)
        labels = _common.label_names(cfg, model)
        batch_size = cfg.data_config.batch_size
        local = datasets.make_dataset(folder, cfg, columns=model.input_columns, labels=labels,
                                      batch_size=batch_size, shuffle=False, num_epochs=0)
        reader = datasets._CsvReader(filesystems.expand(folder), cfg, model.input_columns,
                                     labels)
        s3 = _streamed(uris, reader, batch_size)
        if s3.element_spec != local.element_spec:
            raise ValueError(f"the two inputs differ: {s3.element_spec} vs {local.element_spec}")
        # The s3 pipeline over the local files: what the pipeline shape costs without S3.
        flat = _streamed(filesystems.expand(folder), reader, batch_size)
        variants = {"local": iter(local), "local-flat_map": iter(flat), "s3": iter(s3)}
        step = _common.student_step(cfg, model, cfg.model_config.kd, next(variants["local"])[0])
        disk = _DiskPeak(tempfile.tempdir)
        disk.start()
        rates = _common.alternate({name: (step, it) for name, it in variants.items()},
                                  args.steps, args.repeats)
        disk.running = False
        disk.join()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    medians = _common.report(rates, args.steps, batch_size)
    print(f"peak disk for s3 copies: {disk.peak} bytes = {disk.peak / largest:.2f} shards "
          "(goal <= 2)")
    print(f"{medians['s3'] / medians['local']:.3f}")


if __name__ == "__main__":
    main()
