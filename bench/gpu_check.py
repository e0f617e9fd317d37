"""GPU check: trains the sample's teacher and kd student on the GPU and on the CPU, side by side.

On a machine with an NVIDIA GPU it trains the DCN teacher and the DSSM kd student (the student
reads the teacher's soft labels from the real Beam job) in float32 and in ``mixed_float16``,
then the same runs with the GPU hidden (``CUDA_VISIBLE_DEVICES=-1``, in a child process so
TensorFlow starts without it), and prints examples/s for each, the GPU/CPU ratio, the strategy
training chose and the GPU memory it used (a peak of 0 bytes would mean the run never touched
the GPU). Without a GPU it says so and exits 0, so it can run anywhere.

    .venv/bin/python bench/gpu_check.py [--rows 50000] [--steps 300]
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_RUNS = (("teacher", False), ("teacher", True), ("student", False), ("student", True))


def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def _train_all(rows: int, steps: int) -> dict:
    """Trains every run of ``_RUNS`` in this process; returns name -> examples/s and devices."""
    import tensorflow as tf

    from recdistill import config as config_lib
    from recdistill import steps as steps_lib
    from recdistill import training
    from recdistill.data import sample
    from recdistill.training import distribution

    work = tempfile.mkdtemp(prefix="gpu-check-")
    data = sample.write_sample_data(os.path.join(work, "data"), rows=rows)
    gpus = _gpus()
    results = {"devices": [d.name for d in gpus] or ["CPU"],
               "strategy": type(distribution.choose_strategy()).__name__}
    teacher_export = None
    for role, mixed in _RUNS:
        name = f"{role}{'_mixed_float16' if mixed else '_float32'}"
        if gpus:
            tf.config.experimental.reset_memory_stats("GPU:0")
        if role == "teacher":
            cfg, train_uri = config_lib.load_config(data.teacher_config), data.train_path
        else:
            if teacher_export is None:
                raise RuntimeError("the teacher must train before the student")
            train_uri = os.path.join(work, "soft_labels")
            if not os.path.exists(train_uri):
                steps_lib.generate_soft_labels(teacher_export, data.student_config,
                                               data.train_path, train_uri)
            cfg = config_lib.load_config(data.student_config)
        result = training.train(cfg, train_uri=train_uri, eval_uri=data.eval_path,
                                model_dir=os.path.join(work, name), num_steps=steps,
                                mixed_precision=mixed)
        if role == "teacher" and not mixed:
            teacher_export = result.export_dir
        results[name] = {
            "examples_per_sec": result.metrics["examples_per_sec"],
            "eval_auc": result.metrics.get("eval_auc"),
            "gpu_peak_bytes": (tf.config.experimental.get_memory_info("GPU:0")["peak"]
                               if gpus else 0)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if args.child:  # the CPU twin: started by the parent with the GPU hidden
        print(json.dumps(_train_all(args.rows, args.steps)))
        return 0
    gpus = _gpus()
    if not gpus:
        print("no NVIDIA GPU is visible to TensorFlow on this machine "
              f"(nvidia-smi: {'found' if _has_nvidia_smi() else 'not found'}); nothing to check.")
        return 0
    on_gpu = _train_all(args.rows, args.steps)
    child = subprocess.run(
        [sys.executable, __file__, "--child", "--rows", str(args.rows), "--steps", str(args.steps)],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}, check=True, capture_output=True,
        text=True)
    on_cpu = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"devices: {on_gpu['devices']}  strategy: {on_gpu['strategy']}  "
          f"(CPU twin: {on_cpu['devices']}, {on_cpu['strategy']})")
    print(f"{'run':<24}{'GPU ex/s':>12}{'CPU ex/s':>12}{'GPU/CPU':>9}{'GPU peak MiB':>14}"
          f"{'AUC GPU':>9}{'AUC CPU':>9}")
    for role, mixed in _RUNS:
        name = f"{role}{'_mixed_float16' if mixed else '_float32'}"
        gpu, cpu = on_gpu[name], on_cpu[name]
        print(f"{name:<24}{gpu['examples_per_sec']:>12.0f}{cpu['examples_per_sec']:>12.0f}"
              f"{gpu['examples_per_sec'] / cpu['examples_per_sec']:>9.2f}"
              f"{gpu['gpu_peak_bytes'] / 2**20:>14.1f}"
              f"{gpu['eval_auc'] or float('nan'):>9.4f}{cpu['eval_auc'] or float('nan'):>9.4f}")
    if any(on_gpu[name]["gpu_peak_bytes"] == 0 for name in on_gpu if isinstance(on_gpu[name], dict)):
        print("a run allocated no GPU memory: it did not train on the GPU")
        return 1
    return 0


def _has_nvidia_smi() -> bool:
    from shutil import which

    return which("nvidia-smi") is not None


if __name__ == "__main__":
    sys.exit(main())
