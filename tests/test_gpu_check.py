"""bench/gpu_check.py: says so and exits 0 without a GPU; its training runs work on any device."""

import os
import subprocess
import sys

import pytest

import bench_scripts

SCRIPT = bench_scripts.path("gpu_check")


def _module():
    return bench_scripts.load("gpu_check")


def test_without_a_gpu_it_says_so_and_exits_0():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no NVIDIA GPU is visible" in done.stdout


@pytest.mark.slow
def test_every_run_trains_the_teacher_and_the_kd_student_and_reports_speed():
    results = _module()._train_all(rows=800, steps=8)
    assert results["devices"] == ["CPU"] and results["strategy"] == "_DefaultDistributionStrategy"
    for name in ("teacher_float32", "teacher_mixed_float16", "student_float32",
                 "student_mixed_float16"):
        assert results[name]["examples_per_sec"] > 0
        assert 0.0 < results[name]["eval_auc"] < 1.0
