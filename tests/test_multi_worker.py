"""Multi-worker training: two worker processes on loopback under MultiWorkerMirroredStrategy.

Each worker is its own Python process with its own ``TF_CONFIG``, as a Kubeflow TFJob starts
them. They must train like one worker with the same global batch, leave one set of files
(the chief's), and resume together from the chief's checkpoint after a worker is killed.
"""

import json
import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest
import tensorflow as tf

from recdistill import exported, training
from recdistill.data import sample
from tests import loopback

pytestmark = pytest.mark.slow

_WORKER = """
import logging, os, sys
os.environ["TF_CONFIG"] = sys.argv[1]
logging.basicConfig(level=logging.INFO)
import keras
from recdistill import config as config_lib, training
cfg = config_lib.load_config(sys.argv[2])
cfg.data_config.batch_size = int(sys.argv[4])
cfg.data_config.shuffle = False
cfg.train_config.log_step_count_steps = 5
cfg.train_config.save_checkpoints_steps = 10
keras.utils.set_random_seed(0)
result = training.train(cfg, model_dir=sys.argv[3], num_steps=int(sys.argv[5]))
print("RESULT", result.steps, flush=True)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample.write_sample_data(str(tmp_path_factory.mktemp("workers")), rows=400)


def _start(data, model_dir, *, steps: int, workers: int = 2):
    """Starts ``workers`` worker processes (one with no TF_CONFIG when 1) at 16 rows per step."""
    addresses = [f"127.0.0.1:{port}" for port in loopback.free_ports(workers)]
    processes = []
    for index in range(workers):
        config = json.dumps({"cluster": {"worker": addresses},
                             "task": {"type": "worker", "index": index}}) if workers > 1 else ""
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _WORKER, config, data.student_nokd_config, str(model_dir),
             str(16 // workers), str(steps)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def _finish(processes, timeout: float = 420) -> list:
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            outputs.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for code, out, err in outputs:
        assert code == 0, err[-3000:]
    return outputs


def test_two_workers_train_like_one_and_write_one_export(data, tmp_path):
    single = _finish(_start(data, tmp_path / "one", steps=20, workers=1))
    pair = _finish(_start(data, tmp_path / "two", steps=20))
    assert "RESULT 20" in single[0][1] and all("RESULT 20" in out for _, out, _ in pair)
    assert "MultiWorkerMirroredStrategy" in pair[0][2]
    one = training.read_scalars(str(tmp_path / "one"))["loss/loss"]
    two = training.read_scalars(str(tmp_path / "two"))["loss/loss"]
    assert sorted(one) == sorted(two) == [5, 10, 15, 20]
    for step in one:  # the same global batches: the same curve (batch norm sees 8 rows, not 16)
        assert two[step] == pytest.approx(one[step], rel=0.05), (one, two)
    # Only the chief wrote: no worker folder is left, one export of the same signature.
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))
    a = exported.load_exported(str(tmp_path / "one" / "export"))
    b = exported.load_exported(str(tmp_path / "two" / "export"))
    assert a.inputs == b.inputs and sorted(a.outputs) == sorted(b.outputs)


def test_a_killed_worker_s_job_resumes_from_the_chief_checkpoint(data, tmp_path):
    model_dir = tmp_path / "model"
    processes = _start(data, model_dir, steps=100000)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            latest = tf.train.latest_checkpoint(str(model_dir))
            if latest and int(latest.rsplit("-", 1)[1]) >= 20:
                break
            assert all(p.poll() is None for p in processes), processes[0].stderr.read()[-3000:]
            time.sleep(0.5)
        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait(timeout=60)
        try:  # the chief waits in a collective for the dead worker; a job restarts both
            processes[0].wait(timeout=20)
        except subprocess.TimeoutExpired:
            processes[0].send_signal(signal.SIGKILL)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
            process.stderr.close()
    reached = int(tf.train.latest_checkpoint(str(model_dir)).rsplit("-", 1)[1])
    assert reached >= 20

    outputs = _finish(_start(data, model_dir, steps=reached + 10))
    for _, out, err in outputs:  # both workers restored the chief's last checkpoint
        assert f"Resumed from {model_dir}/ckpt-{reached} at step {reached}" in err
        assert f"RESULT {reached + 10}" in out
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{reached + 10}")
    assert not [name for name in os.listdir(model_dir) if name.startswith(".worker")]
