"""atomic_dir on object stores, with the publishing process killed (os._exit) between steps.

Whatever the step, a reader gets the complete old output, the complete new one, or a clear
IncompleteOutputError naming the complete staging copy; never a partial folder. The next run
publishes and removes the killed run's temporaries.
"""

import datetime
import os
import pathlib
import subprocess
import sys

import pytest

from recdistill.data import filesystems as fsys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Publishes part-0.csv and part-1.csv ("new") into argv[1], dying at the step argv[2].
_CHILD = r"""
import os, sys
from recdistill.data import filesystems as fsys

final, step = sys.argv[1], sys.argv[2]
copy, copied = fsys._copy_file, []

def dying_copy(src_fs, src, dst_fs, dst, local_dst):
    if step == "mid-copy" and copied:
        os._exit(9)
    copy(src_fs, src, dst_fs, dst, local_dst)
    copied.append(dst)
    if step == "after-marker" and dst.endswith("/_SUCCESS"):
        os._exit(9)

fsys._copy_file = dying_copy
with fsys.atomic_dir(final) as tmp:
    for name in ("part-0.csv", "part-1.csv"):
        with fsys.open_output(fsys.join(tmp, name)) as f:
            f.write(b"new")
    if step == "in-body":
        os._exit(9)
"""


def _publish(final: str, names: tuple, data: bytes) -> None:
    with fsys.atomic_dir(final) as tmp:
        for name in names:
            with fsys.open_output(fsys.join(tmp, name)) as f:
                f.write(data)


def _read(uri: str) -> bytes:
    with fsys.open_input(uri) as f:
        return f.read()


def _killed_publish(final: str, step: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", _CHILD, final, step], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]


@pytest.fixture(params=["gcs", "s3"])
def root(request):
    return request.getfixturevalue(f"{request.param}_bucket") + "/root"


def test_killed_in_the_body_keeps_the_old_output(root):
    final = fsys.join(root, "out")
    _publish(final, ("old-0.csv",), b"old")
    _killed_publish(final, "in-body")
    assert fsys.is_complete(final)
    assert fsys.expand(final) == [fsys.join(final, "old-0.csv")]
    assert fsys.expand(fsys.join(root, "*", "*.csv")) == [fsys.join(final, "old-0.csv")]


def test_killed_mid_copy_is_refused_by_readers_then_republished(root, monkeypatch):
    final = fsys.join(root, "out")
    _publish(final, ("old-0.csv", "old-1.csv"), b"old")
    _killed_publish(final, "mid-copy")
    # The half-rewritten folder: old files gone, one new file, no _SUCCESS.
    assert not fsys.is_complete(final)
    assert fsys.exists(fsys.join(final, "part-0.csv"))
    (staging,) = [n for n in fsys.listdir(root) if n.startswith(".tmp-out-") and "." not in n[1:]]
    staging_uri = fsys.join(root, staging)
    assert fsys.is_complete(staging_uri)  # the complete new output survives the kill
    readers = {
        "expand folder": lambda: fsys.expand(final),
        "expand glob": lambda: fsys.expand(fsys.join(root, "*", "*.csv")),
        "localize": lambda: fsys.localize(final),
        "open_input": lambda: fsys.open_input(fsys.join(final, "part-0.csv")),
    }
    for name, read in readers.items():
        with pytest.raises(fsys.IncompleteOutputError) as err:
            read()
        message = str(err.value)
        assert "its folder is incomplete" in message, name
        assert f"The complete new output is in {staging_uri}" in message, name
        assert "run the step that writes this folder again" in message, name
    # The next run (its own replaces= check accepts an interrupted publish) repairs it and,
    # once the killed run's staging counts as stale, removes it.
    monkeypatch.setattr(fsys, "STALE_AFTER", datetime.timedelta(0))
    with fsys.atomic_dir(final, replaces=("part-0.csv",)) as tmp:
        with fsys.open_output(fsys.join(tmp, "part-0.csv")) as f:
            f.write(b"again")
    assert fsys.expand(final) == [fsys.join(final, "part-0.csv")]
    assert _read(fsys.join(final, "part-0.csv")) == b"again"
    assert fsys.listdir(root) == ["out"]
    assert fsys.listdir(final) == ["_SUCCESS", "part-0.csv"]


def test_killed_after_the_new_marker_serves_the_new_output(root):
    final = fsys.join(root, "out")
    _publish(final, ("old-0.csv",), b"old")
    _killed_publish(final, "after-marker")
    assert fsys.is_complete(final)
    assert fsys.expand(final) == [fsys.join(final, "part-0.csv"), fsys.join(final, "part-1.csv")]
    assert _read(fsys.join(final, "part-1.csv")) == b"new"
    _publish(final, ("part-0.csv",), b"v3")
    assert fsys.listdir(final) == ["_SUCCESS", "part-0.csv"]
