"""Tests for recdistill.data.filesystems: locally, on gcp-storage-emulator and on moto's S3."""

import datetime
import os
import time

import pytest

from recdistill.data import filesystems as fsys


@pytest.fixture(params=["local", "gcs", "s3", "minio"])
def root(request, tmp_path):
    """A fresh folder URI on local disk, in a GCS emulator bucket and in an S3 bucket.

    ``minio://`` is the S3 API under the scheme Kubeflow's bundled store gives artifacts.
    """
    if request.param == "local":
        return str(tmp_path / "root")
    if request.param == "minio":
        return request.getfixturevalue("s3_bucket").replace("s3://", "minio://") + "/root"
    return request.getfixturevalue(f"{request.param}_bucket") + "/root"


def _write(uri: str, data: bytes) -> None:
    with fsys.open_output(uri) as f:
        f.write(data)


def _read(uri: str) -> bytes:
    with fsys.open_input(uri) as f:
        return f.read()


def test_write_read_exists_listdir(root):
    _write(fsys.join(root, "a", "b", "x.bin"), b"\x00\x01payload")
    _write(fsys.join(root, "a", "y.gz"), b"not gzip")  # bytes are kept as given
    assert _read(fsys.join(root, "a", "b", "x.bin")) == b"\x00\x01payload"
    assert _read(fsys.join(root, "a", "y.gz")) == b"not gzip"
    assert fsys.exists(fsys.join(root, "a"))
    assert not fsys.exists(fsys.join(root, "nope"))
    assert fsys.listdir(fsys.join(root, "a")) == ["b", "y.gz"]


def test_open_input_names_the_missing_file(root):
    with pytest.raises(FileNotFoundError, match="nope.csv.*does not exist"):
        fsys.open_input(fsys.join(root, "nope.csv"))


def test_random_access_read(root):
    uri = fsys.join(root, "r.bin")
    _write(uri, bytes(range(100)))
    with fsys.open_input(uri) as f:
        f.seek(90)
        assert f.read(5) == bytes([90, 91, 92, 93, 94])


def test_expand_directory_skips_bookkeeping_files(root):
    for name in ["part-1.csv", "part-0.csv", "_SUCCESS", ".hidden", "stats.json"]:
        _write(fsys.join(root, "d", name), b"x")
    _write(fsys.join(root, "d", "sub", "deep.csv"), b"x")
    assert fsys.expand(fsys.join(root, "d")) == [
        fsys.join(root, "d", "part-0.csv"), fsys.join(root, "d", "part-1.csv")]


def test_expand_glob_in_name_and_folder(root):
    for rel in ["2024/a.csv", "2024/b.tsv", "2025/c.csv", "2025/_x.csv", "top.csv"]:
        _write(fsys.join(root, *rel.split("/")), b"x")
    assert fsys.expand(fsys.join(root, "202?", "*.csv")) == [
        fsys.join(root, "2024", "a.csv"), fsys.join(root, "2025", "c.csv")]
    assert fsys.expand(fsys.join(root, "2024", "[ab].*")) == [
        fsys.join(root, "2024", "a.csv"), fsys.join(root, "2024", "b.tsv")]
    # '*' does not cross folders.
    assert fsys.expand(fsys.join(root, "*.csv")) == [fsys.join(root, "top.csv")]


def test_expand_single_file_is_returned_as_named(root):
    uri = fsys.join(root, "_only")
    _write(uri, b"x")
    assert fsys.expand(uri) == [uri]


def test_expand_nothing_names_the_pattern(root):
    pattern = fsys.join(root, "missing", "*.csv")
    with pytest.raises(FileNotFoundError, match="no data files match") as err:
        fsys.expand(pattern)
    assert pattern in str(err.value)


def test_copy_tree_and_delete_tree(root, tmp_path):
    _write(fsys.join(root, "src", "a.txt"), b"A")
    _write(fsys.join(root, "src", "sub", "b.txt"), b"B")
    fsys.copy_tree(fsys.join(root, "src"), fsys.join(root, "dst"))
    assert _read(fsys.join(root, "dst", "sub", "b.txt")) == b"B"
    # And across filesystems, to local disk.
    fsys.copy_tree(fsys.join(root, "src"), str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "a.txt").read_bytes() == b"A"
    fsys.delete_tree(fsys.join(root, "src"))
    assert not fsys.exists(fsys.join(root, "src"))
    assert fsys.exists(fsys.join(root, "dst", "a.txt"))
    fsys.delete_tree(fsys.join(root, "src"))  # missing is fine


def test_makedirs_then_listdir_is_empty(root):
    fsys.makedirs(fsys.join(root, "empty", "deeper"))
    assert fsys.exists(fsys.join(root, "empty", "deeper"))
    assert fsys.listdir(fsys.join(root, "empty", "deeper")) == []


def test_atomic_dir_publishes_on_success_and_replaces_old(root):
    final = fsys.join(root, "out")
    _write(fsys.join(final, "stale.txt"), b"old")
    with fsys.atomic_dir(final) as tmp:
        assert not fsys.exists(fsys.join(final, "new.txt"))
        _write(fsys.join(tmp, "new.txt"), b"new")
        _write(fsys.join(tmp, "sub", "deep.txt"), b"deep")
    assert fsys.is_complete(final)
    assert sorted(fsys.listdir(final)) == ["_SUCCESS", "new.txt", "sub"]
    assert _read(fsys.join(final, "sub", "deep.txt")) == b"deep"
    assert fsys.listdir(root) == ["out"]  # no temporary sibling left


def test_atomic_dir_failure_leaves_nothing_visible(root):
    final = fsys.join(root, "out")
    with pytest.raises(RuntimeError, match="boom"):
        with fsys.atomic_dir(final) as tmp:
            _write(fsys.join(tmp, "half.txt"), b"half")
            raise RuntimeError("boom")
    assert not fsys.exists(final)
    assert not fsys.is_complete(final)
    assert not fsys.exists(root) or fsys.listdir(root) == []


def test_atomic_dir_failure_keeps_previous_content(root):
    final = fsys.join(root, "out")
    with fsys.atomic_dir(final) as tmp:
        _write(fsys.join(tmp, "v1.txt"), b"1")
    with pytest.raises(RuntimeError):
        with fsys.atomic_dir(final) as tmp:
            _write(fsys.join(tmp, "v2.txt"), b"2")
            raise RuntimeError("boom")
    assert fsys.listdir(final) == ["_SUCCESS", "v1.txt"]


def test_localize_gcs_folder_and_file(gcs_bucket):
    _write(gcs_bucket + "/model/saved_model.pb", b"pb")
    _write(gcs_bucket + "/model/variables/variables.index", b"idx")
    local = fsys.localize(gcs_bucket + "/model")
    assert not fsys.is_remote(local)
    assert os.path.basename(local) == "model"
    with open(os.path.join(local, "variables", "variables.index"), "rb") as f:
        assert f.read() == b"idx"
    single = fsys.localize(gcs_bucket + "/model/saved_model.pb")
    with open(single, "rb") as f:
        assert f.read() == b"pb"


def test_localize_local_path_is_unchanged(tmp_path):
    assert fsys.localize(str(tmp_path)) == str(tmp_path)


def test_join_and_is_remote():
    assert fsys.join("gs://bkt/", "a/", "/b") == "gs://bkt/a/b"
    assert fsys.is_remote("gs://bkt/a")
    assert not fsys.is_remote("/tmp/a")
    assert fsys.join("/tmp", "a") == os.path.join("/tmp", "a")


@pytest.mark.parametrize("uri, message", [
    ("gs:/bkt/x", "two slashes"),
    ("gs://", "bucket name"),
    ("gs:///x", "bucket name"),
    ("gs://Bad_Bucket/x", "bucket name"),
    ("gs://bkt//x", "empty path component"),
    ("ftp://bkt/x", "unsupported scheme"),
])
def test_malformed_uris_are_rejected(uri, message):
    with pytest.raises(ValueError, match=message):
        fsys.exists(uri)


def test_delete_tree_refuses_a_bucket(gcs_bucket):
    with pytest.raises(ValueError, match="whole bucket"):
        fsys.delete_tree(gcs_bucket)


def test_glob_wildcards_never_match_hidden_or_temporary_folders(root):
    """A killed job's `.tmp-<name>-<hex>/` of complete-looking shards must not be read."""
    for rel in ["out/a/part-0.csv", "out/.tmp-a-0123456789ab/part-0.csv", "out/_tmp/part-0.csv",
                "out/b/.part-1.csv", "out/b/part-1.csv"]:
        _write(fsys.join(root, *rel.split("/")), b"x")
    assert fsys.expand(fsys.join(root, "out", "*", "*.csv")) == [
        fsys.join(root, "out", "a", "part-0.csv"), fsys.join(root, "out", "b", "part-1.csv")]
    assert fsys.expand(fsys.join(root, "out", "?", "part-?.csv")) == [
        fsys.join(root, "out", "a", "part-0.csv"), fsys.join(root, "out", "b", "part-1.csv")]
    # Named explicitly, a hidden folder is the user's choice.
    assert fsys.expand(fsys.join(root, "out", ".tmp-*", "*.csv")) == [
        fsys.join(root, "out", ".tmp-a-0123456789ab", "part-0.csv")]
    assert fsys.expand(fsys.join(root, "out", "_tmp", "*.csv")) == [
        fsys.join(root, "out", "_tmp", "part-0.csv")]


def test_atomic_dir_with_replaces_refuses_a_folder_it_did_not_write(root):
    final = fsys.join(root, "mine")
    for name, data in [("input.csv", b"1,2"), ("student.config", b"cfg"), ("notes.txt", b"n")]:
        _write(fsys.join(final, name), data)
    entered = []
    with pytest.raises(FileExistsError) as err:
        with fsys.atomic_dir(final, replaces=("stats.json",)):
            entered.append(True)
    message = str(err.value)
    assert message.startswith(f"{final}: already exists and is not an earlier output")
    assert "lacks _SUCCESS, stats.json" in message and "3 entries" in message
    assert "Choose a new or empty folder" in message
    assert not entered  # refused before the expensive part
    assert fsys.listdir(final) == ["input.csv", "notes.txt", "student.config"]
    assert _read(fsys.join(final, "notes.txt")) == b"n"
    assert fsys.listdir(root) == ["mine"]  # no staging left behind


def test_atomic_dir_with_replaces_replaces_its_own_output_or_an_empty_folder(root):
    final = fsys.join(root, "labels")
    fsys.makedirs(final)
    for version in (b"1", b"2"):
        with fsys.atomic_dir(final, replaces=("stats.json",)) as tmp:
            _write(fsys.join(tmp, "stats.json"), version)
    assert _read(fsys.join(final, "stats.json")) == b"2"
    # Without the producer's own marker it is not "its" output, even with _SUCCESS.
    other = fsys.join(root, "other")
    with fsys.atomic_dir(other) as tmp:
        _write(fsys.join(tmp, "metrics.json"), b"{}")
    with pytest.raises(FileExistsError, match="lacks stats.json"):
        with fsys.atomic_dir(other, replaces=("stats.json",)):
            pass


def test_atomic_dir_refuses_a_file(root):
    final = fsys.join(root, "afile")
    _write(final, b"x")
    with pytest.raises(FileExistsError, match="is a file, not an output folder"):
        with fsys.atomic_dir(final):
            pass
    assert _read(final) == b"x"


def test_live_staging_is_kept_and_a_dead_one_removed(tmp_path):
    """Locally the staging folder's .lock is flock-ed: held means a live run."""
    final = str(tmp_path / "out")
    with fsys.atomic_dir(final) as live:
        with fsys.atomic_dir(final) as other:
            _write(os.path.join(other, "x"), b"1")
        assert os.path.isdir(live)  # the other run's cleanup left the live one alone
    dead = tmp_path / ".tmp-out-0123456789ab"  # a killed run: lock file, nobody holds it
    dead.mkdir()
    (dead / "part-0.csv").write_bytes(b"x")
    (tmp_path / ".tmp-out-0123456789ab.lock").write_bytes(b"")
    young = tmp_path / ".tmp-out-ba9876543210"  # no lock (an older version): judged by age
    young.mkdir()
    (young / "part-0.csv").write_bytes(b"x")
    old = tmp_path / ".tmp-out-aaaaaaaaaaaa"
    old.mkdir()
    (old / "part-0.csv").write_bytes(b"x")
    long_ago = time.time() - fsys.STALE_AFTER.total_seconds() - 60
    os.utime(old / "part-0.csv", (long_ago, long_ago))
    unrelated = tmp_path / ".tmp-outer-0123456789ab"  # another output's staging
    unrelated.mkdir()
    with fsys.atomic_dir(final) as tmp:
        _write(os.path.join(tmp, "y"), b"2")
    assert sorted(os.listdir(tmp_path)) == [
        ".tmp-out-ba9876543210", ".tmp-outer-0123456789ab", "out"]


def test_remote_stale_staging_is_removed_after_stale_after(root, monkeypatch):
    final = fsys.join(root, "out")
    stale = fsys.join(root, ".tmp-out-0123456789ab")
    _write(fsys.join(stale, "part-0.csv"), b"x")
    if fsys.is_remote(root):  # as a killed run leaves it (locally a lock nobody holds is dead)
        _write(stale + ".lock", b"{}")
    with fsys.atomic_dir(final) as tmp:
        _write(fsys.join(tmp, "a"), b"1")
    assert fsys.exists(stale)  # just written: could be a live run on another machine
    monkeypatch.setattr(fsys, "STALE_AFTER", datetime.timedelta(0))
    with fsys.atomic_dir(final) as tmp:
        _write(fsys.join(tmp, "a"), b"2")
    assert fsys.listdir(root) == ["out"]


def test_a_lock_left_without_its_folder_is_removed(tmp_path):
    (tmp_path / ".tmp-out-0123456789ab.lock").write_bytes(b"")
    with fsys.atomic_dir(str(tmp_path / "out")) as tmp:
        _write(os.path.join(tmp, "a"), b"1")
    assert os.listdir(tmp_path) == ["out"]


def test_local_shards_keeps_at_most_two_shards_on_disk(root, tmp_path):
    uris = [fsys.join(root, "t", f"part-{i}.csv") for i in range(4)]
    for i, uri in enumerate(uris):
        _write(uri, f"row {i}\n".encode())
    local_file = str(tmp_path / "local.csv")
    with open(local_file, "wb") as f:
        f.write(b"local\n")
    seen, on_disk = [], []
    for path in fsys.local_shards(fsys.expand(fsys.join(root, "t")) + [local_file]):
        with open(path, "rb") as f:
            seen.append(f.read())
        if fsys.is_remote(root) and path != local_file:
            on_disk.append(len(os.listdir(os.path.dirname(path))))
    assert seen == [b"row 0\n", b"row 1\n", b"row 2\n", b"row 3\n", b"local\n"]
    if fsys.is_remote(root):
        assert 1 <= max(on_disk) <= 2
    assert os.path.exists(local_file)  # a local input is never deleted


def test_local_shards_cleans_up_when_closed_early(s3_bucket):
    uris = [f"{s3_bucket}/t/part-{i}.csv" for i in range(3)]
    for uri in uris:
        _write(uri, b"x\n")
    shards = fsys.local_shards(uris)
    first = next(shards)
    folder = os.path.dirname(first)
    shards.close()
    assert not os.path.exists(folder)
    with pytest.raises(ValueError, match="ahead=0"):
        next(fsys.local_shards(uris, ahead=0))
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        list(fsys.local_shards(uris[:1] + [f"{s3_bucket}/t/absent.csv"]))
