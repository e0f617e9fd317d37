"""The pipeline's light steps never import TensorFlow, Keras or Beam.

Each step is its own process, and importing TensorFlow costs about 7 CPU s on a 2-core
machine: a step that imports it needlessly adds that to every ``recdistill run``. The push
step's own check (a blessed push without TF) is in tests/test_push.py.
"""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]

_CODE = """
import json, sys
from components.current_champion.component import current_champion
from components.fold_teacher_uris.component import fold_teacher_uris
from components.push_model.component import push_model
from components.resolve_data_uris.component import resolve_data_uris
from components.teacher_placement.component import teacher_placement

print(json.dumps({
    "champion": current_champion.python_func(destination=sys.argv[1], run_date="2026-01-02"),
    "uris": list(resolve_data_uris.python_func(run_date="2026-01-02",
                                               train_data_template="/d/{date}/train",
                                               eval_data_template="/d/eval")),
    "trained": list(teacher_placement.python_func(teacher_uri="", node_selector={"a": "b"})),
    "reused": list(teacher_placement.python_func(teacher_uri="/t", node_selector={"a": "b"})),
    "folds": fold_teacher_uris.python_func(),
    "heavy": sorted(m for m in sys.modules
                    if m.split(".")[0] in ("tensorflow", "keras", "apache_beam")),
}))
"""


def test_light_steps_run_without_importing_tensorflow_keras_or_beam(tmp_path):
    out = subprocess.run([sys.executable, "-c", _CODE, str(tmp_path / "serving")], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"champion": "", "uris": ["2026-01-02", "/d/2026-01-02/train", "/d/eval"],
                      "trained": [1, {"a": "b"}], "reused": [0, {}], "folds": [],
                      "heavy": []}


_SPLIT = """
import json, sys
from recdistill import steps
from recdistill.data import sample

data = sample.write_sample_data(sys.argv[1], rows=2000)
candidates, split = steps.prepare_sweep(data.student_config, data.train_path,
                                        sys.argv[1] + "/train", sys.argv[1] + "/valid",
                                        fraction=0.2, split="user")
print(json.dumps({"candidates": [c["name"] for c in candidates], "split": split,
                  "heavy": sorted(m for m in sys.modules
                                  if m.split(".")[0] in ("tensorflow", "keras", "apache_beam"))}))
"""


def test_the_sweeps_user_holdout_splits_without_tensorflow(tmp_path):
    """prepare_sweep hashes user keys with recdistill.data.farmhash, not TF's op."""
    out = subprocess.run([sys.executable, "-c", _SPLIT, str(tmp_path)], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["candidates"] == ["kd", "baseline"]
    split = result["split"]
    assert split["split"] == "user" and split["key"] == "user_id"
    assert 0.1 < split["validation_rows"] / (split["train_rows"] + split["validation_rows"]) < 0.3
