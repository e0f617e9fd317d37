"""The package a distributed Beam runner's workers install: the sdist builds, installs into a
fresh environment, and the soft-label job runs from that installed copy (not this checkout).

Workers get it either inside the Beam worker image (images/beam: the runtime image, which
``pip install``s this tree, plus Beam's harness) or as ``--setup_file=./setup.py`` /
``--extra_package=dist/recdistill-*.tar.gz`` on Beam's default SDK container."""

import json
import os
import pathlib
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

pytestmark = pytest.mark.slow
ROOT = pathlib.Path(__file__).resolve().parents[2]
STUDENT_CONFIG = ROOT / "tests" / "testdata" / "configs" / "easyrec_dssm_kd.config"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv holding only the sdist; the pinned dependencies come from this one (a .pth
    line), so the test stays offline and quick."""
    tmp = tmp_path_factory.mktemp("sdist")
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp),
                    "sdist", "-d", str(tmp / "dist")], cwd=ROOT, check=True, capture_output=True)
    [sdist] = (tmp / "dist").glob("recdistill-*.tar.gz")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    pathlib.Path(site, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    str(sdist)], check=True, capture_output=True, env=_clean_env())
    return env_dir, sdist


def _clean_env():
    """This process's environment without anything that would import the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def test_sdist_carries_the_packages_and_data_files_but_no_component_tests(venv):
    import tarfile

    _, sdist = venv
    names = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    for needed in ("recdistill/protos/pipeline.proto", "recdistill/soft_labels/job.py",
                   "pipelines/kd_pipeline.yaml", "components/evaluate/component.py", "setup.py",
                   "README.md"):
        assert needed in names, needed
    # The component folders' own tests stay in the repository (setuptools adds tests/*.py to
    # any sdist, but only packages get installed).
    assert not [name for name in names if name.startswith("components/") and "/tests/" in name]


def test_soft_label_job_runs_from_the_installed_package(venv, tmp_path):
    env_dir, _ = venv
    sys.path.insert(0, str(ROOT / "tests" / "soft_labels"))
    from soft_label_helpers import build_teacher, expected_logits, make_rows

    teacher = build_teacher(str(tmp_path / "teacher"))
    rows = make_rows(40, seed=3)
    columns = ["clk", "user_id", "age_level", "occupation", "tag_brand_list", "adgroup_id",
               "cate_id", "price"]
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part-0.csv").write_text("".join(
        ",".join(str(rows[c][i]) for c in columns) + "\n" for i in range(40)))
    cli = env_dir / "bin" / "recdistill"
    where = subprocess.run([env_dir / "bin" / "python", "-c",
                            "import recdistill; print(recdistill.__file__)"], cwd=tmp_path,
                           check=True, capture_output=True, text=True, env=_clean_env())
    assert where.stdout.startswith(str(env_dir)), where.stdout
    subprocess.run([cli, "soft-labels", "--teacher", teacher, "--input",
                    str(tmp_path / "train" / "*.csv"), "--output", str(tmp_path / "soft"),
                    "--config", str(STUDENT_CONFIG)],
                   cwd=tmp_path, check=True, env=_clean_env())
    stats = json.loads((tmp_path / "soft" / "stats.json").read_text())
    assert stats["rows_read"] == stats["rows_written"] == 40
    written = [line.split(",") for path in sorted((tmp_path / "soft").glob("*.csv"))
               for line in path.read_text().splitlines()]
    np.testing.assert_allclose([float(r[-1]) for r in written],
                               expected_logits(rows["user_id"], rows["cate_id"], rows["price"]),
                               rtol=1e-5)
