"""recdistill.data.farmhash is TF's Fingerprint64 bit for bit, on every length branch."""

import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import tensorflow as tf

from recdistill.data import farmhash, folds


def _tf_fingerprint(values) -> list:
    # to_hash_bucket_fast(x, n) is Fingerprint64(x) mod n; with n = 2^63 - 1 only the
    # fingerprints at or above n fold, so compare mod n.
    n = 2**63 - 1
    return [int(v) for v in tf.strings.to_hash_bucket_fast(tf.constant(values), n).numpy()]


def test_every_length_from_0_to_300_bytes_matches_tensorflow():
    rng = random.Random(7)
    # 0-16, 17-32, 33-64 bytes and 1 to 4 chunks of 64 past that; any byte value
    values = [bytes(rng.randrange(256) for _ in range(size)) for size in range(301)] * 2
    mine = [int(v) % (2**63 - 1) for v in farmhash.fingerprint64(values)]
    assert mine == _tf_fingerprint(values)


def test_the_keys_of_real_splits_match_tensorflow():
    values = [f"{folds.HOLDOUT_SALT}:{key}".encode() for key in
              ["u1", "0", "-42", "user_000123", "é", "x" * 70, "9" * 19]]
    mine = [int(v) % (2**63 - 1) for v in farmhash.fingerprint64(values)]
    assert mine == _tf_fingerprint(values)
    assert farmhash.fingerprint64([]).shape == (0,)


def test_buckets_of_repeated_and_chunked_keys_match_tensorflow():
    keys = pa.chunked_array([["a", "b", "a"], ["c", "a", None]])
    text = [f"s:{k}" for k in ["a", "b", "a", "c", "a", "None"]]
    expected = tf.strings.to_hash_bucket_fast(text, 11).numpy()
    assert list(folds.buckets(keys, 11, salt="s")) == list(expected)


def test_a_table_split_never_imports_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from recdistill.data import folds\n"
        "print(list(folds.buckets(np.arange(5), 3, salt='s')))\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = tf.strings.to_hash_bucket_fast([f"s:{i}" for i in range(5)], 3).numpy()
    assert done.stdout.strip() == str(list(expected))
