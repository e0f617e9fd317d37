"""One file layer for local paths and ``gs://`` URIs, built on ``pyarrow.fs``.

Every module that reads or writes files (tables, soft labels, training, push) goes
through here, so that local runs, tests against gcp-storage-emulator and real GCS take
the same code path. The only local-versus-remote decision is parsing the URI scheme in
``_resolve``; everything else is a ``pyarrow.fs.FileSystem`` call.

``gs://`` honours ``STORAGE_EMULATOR_HOST`` (e.g. ``http://127.0.0.1:9023``): the
filesystem then talks plain HTTP to that host, anonymously. ``tf.io.gfile`` cannot do
that (its GCS endpoint is compiled in), which is why IO is not done through TensorFlow.

GCS has no atomic rename. ``atomic_dir`` therefore writes a ``_SUCCESS`` marker last
(locally too, so the rule is the same everywhere); readers of a directory produced by
another process must check ``is_complete(uri)`` before trusting it.

This module imports nothing from recdistill.
"""

import atexit
import contextlib
import datetime
import fnmatch
import functools
import logging
import os
import re
import shutil
import tempfile
import uuid
from typing import BinaryIO, Iterator

import pyarrow.fs as pafs

logger = logging.getLogger(__name__)

GCS_SCHEME = "gs://"
SUCCESS_MARKER = "_SUCCESS"
# Files in a data directory that are bookkeeping, not data.
NON_DATA_NAMES = frozenset({"stats.json"})
_GLOB_CHARS = re.compile(r"[*?\[]")
# GCS bucket names: 3-222 chars of lowercase letters, digits, '-', '_' and '.'.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# How long one GCS call may keep retrying against an emulator before failing a test.
_EMULATOR_RETRY_LIMIT = datetime.timedelta(seconds=10)


def is_remote(uri: str) -> bool:
    """Returns True for ``gs://`` URIs (validated), False for local paths."""
    return _split_gcs(uri) is not None


def join(*parts: str) -> str:
    """Joins path parts; a ``gs://`` first part joins with '/' whatever the OS.

    Raises:
        ValueError: no parts, or a malformed first part (see ``is_remote``).
    """
    if not parts:
        raise ValueError("join() needs at least one part, got none.")
    if is_remote(parts[0]):
        pieces = [parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]]
        return "/".join(p for p in pieces if p)
    return os.path.join(*parts)


def exists(uri: str) -> bool:
    """Returns whether a file or directory exists at ``uri``."""
    fs, path = _resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def makedirs(uri: str) -> None:
    """Creates a directory and its parents; an existing directory is fine."""
    fs, path = _resolve(uri)
    fs.create_dir(path, recursive=True)


def listdir(uri: str) -> list[str]:
    """Returns the sorted names (files and folders) directly inside a directory.

    Raises:
        FileNotFoundError: ``uri`` is not an existing directory.
    """
    fs, path = _resolve(uri)
    _require_dir(fs, path, uri)
    # Recursive, because pyarrow's GCS listing reports a sub-folder only when it has a
    # marker object, and folders written by other tools (or by open_output) have none.
    base = len(path.rstrip("/")) + 1
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted({info.path[base:].split("/", 1)[0] for info in infos})


def open_input(uri: str) -> BinaryIO:
    """Opens a file for binary random-access reading (seekable; Parquet needs that).

    Raises:
        FileNotFoundError: no file at ``uri``.
    """
    fs, path = _resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        what = "is a directory" if info.type == pafs.FileType.Directory else "does not exist"
        raise FileNotFoundError(
            f"{uri}: cannot open for reading, it {what}. Check the path (for a folder of "
            "data files use expand() first)."
        )
    return fs.open_input_file(path)


def open_output(uri: str) -> BinaryIO:
    """Opens a file for binary writing, creating missing parent directories.

    On GCS the object appears only when the stream is closed.
    """
    fs, path = _resolve(uri)
    if not is_remote(uri):
        fs.create_dir(os.path.dirname(path), recursive=True)
    # compression=None: write the bytes given; pyarrow would otherwise gzip "*.gz" names.
    return fs.open_output_stream(path, compression=None)


def expand(uri_or_dir_or_glob: str) -> list[str]:
    """Resolves a file, a directory or a glob to a sorted list of data file URIs.

    A directory yields its files (not recursively). A glob may use ``*``, ``?`` and
    ``[...]`` in any path component; a wildcard never matches '/'. Directories and
    bookkeeping files (names starting with '_' or '.', and ``stats.json``) are skipped
    for directories and globs; a file named explicitly is returned as is.

    Raises:
        FileNotFoundError: nothing matches; the message names the pattern.
        ValueError: malformed URI.
    """
    pattern = uri_or_dir_or_glob
    fs, path = _resolve(pattern)
    prefix = _uri_prefix(pattern)
    if _GLOB_CHARS.search(path):
        matches = _glob(fs, path)
    else:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [pattern if is_remote(pattern) else path]
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
            matches = [i.path for i in infos if i.type == pafs.FileType.File]
        else:
            matches = []
    found = sorted(prefix + m for m in matches if _is_data_name(m.rsplit("/", 1)[-1]))
    if not found:
        raise FileNotFoundError(
            f"{pattern}: no data files match (names starting with '_' or '.' and "
            f"{', '.join(sorted(NON_DATA_NAMES))} are not data). Check the path and that "
            "the step that writes it succeeded."
        )
    return found


def copy_tree(src: str, dst: str) -> None:
    """Copies a file or a directory tree to ``dst`` (local <-> gs:// in any direction).

    A directory's contents land under ``dst`` (``dst/<relative path>``); a file is
    copied to exactly ``dst``.

    Raises:
        FileNotFoundError: ``src`` does not exist.
    """
    src_fs, src_path = _resolve(src)
    dst_fs, dst_path = _resolve(dst)
    info = src_fs.get_file_info(src_path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{src}: cannot copy, it does not exist.")
    if info.type == pafs.FileType.File:
        if not is_remote(dst):
            dst_fs.create_dir(os.path.dirname(dst_path), recursive=True)
        pafs.copy_files(src_path, dst_path, source_filesystem=src_fs, destination_filesystem=dst_fs)
        return
    # File by file, so that GCS directory-marker objects are not copied as files.
    for item in src_fs.get_file_info(pafs.FileSelector(src_path, recursive=True)):
        if item.type != pafs.FileType.File:
            continue
        rel = item.path[len(src_path.rstrip("/")) + 1 :]
        target = f"{dst_path.rstrip('/')}/{rel}"
        if not is_remote(dst):
            dst_fs.create_dir(os.path.dirname(target), recursive=True)
        pafs.copy_files(item.path, target, source_filesystem=src_fs, destination_filesystem=dst_fs)
    logger.debug("Copied %s to %s", src, dst)


def delete_tree(uri: str) -> None:
    """Deletes a file or a directory tree; a missing ``uri`` is not an error."""
    if is_remote(uri) and not _split_gcs(uri)[1]:
        raise ValueError(f"{uri}: refusing to delete a whole bucket. Name a folder in it.")
    fs, path = _resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        fs.delete_file(path)
    elif info.type == pafs.FileType.Directory:
        fs.delete_dir_contents(path, missing_dir_ok=True)
        # On GCS a folder without a marker object vanishes with its last file.
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)


def localize(uri: str) -> str:
    """Returns a local path holding ``uri``'s content.

    A local path is returned unchanged. A ``gs://`` file or folder is downloaded into a
    fresh folder under a temporary directory that lives until the process exits (each
    call downloads again, so a changed remote is never served stale).

    Raises:
        FileNotFoundError: ``uri`` does not exist.
    """
    if not is_remote(uri):
        return _resolve(uri)[1] if os.fspath(uri).startswith("file:") else uri
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    local = os.path.join(tempfile.mkdtemp(dir=_process_tempdir()), name)
    copy_tree(uri, local)
    logger.info("Downloaded %s to %s", uri, local)
    return local


def is_complete(uri: str) -> bool:
    """Returns whether ``uri`` is a directory finished by ``atomic_dir``.

    Readers of a directory that another process may still be writing (always the case on
    GCS, which cannot rename atomically) check this before reading.
    """
    return exists(join(uri, SUCCESS_MARKER))


@contextlib.contextmanager
def atomic_dir(final_uri: str) -> Iterator[str]:
    """Yields a temporary sibling directory that becomes ``final_uri`` on success.

    Write everything into the yielded location. On success a ``_SUCCESS`` marker is
    written and the directory is published: locally by ``os.replace`` (an existing
    ``final_uri`` is renamed aside first and deleted afterwards), on GCS by deleting the
    old ``final_uri`` (marker first), copying every object over and writing the marker
    last. On an exception the temporary directory is removed and the exception re-raised,
    so nothing new is visible at ``final_uri``.

    Example::

        with atomic_dir("gs://bkt/run1/model") as tmp:
            write_model(tmp)
        assert is_complete("gs://bkt/run1/model")

    Raises:
        ValueError: ``final_uri`` has no parent (a bucket or filesystem root).
    """
    parent, name = _parent_and_name(final_uri)
    tmp = join(parent, f".tmp-{name}-{uuid.uuid4().hex[:12]}")
    makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        delete_tree(tmp)
        raise
    try:
        with open_output(join(tmp, SUCCESS_MARKER)):
            pass
        if is_remote(final_uri):
            _publish_gcs(tmp, final_uri)
        else:
            _publish_local(tmp, final_uri, parent, name)
    finally:
        delete_tree(tmp)
    logger.info("Published %s", final_uri)


def _publish_local(tmp: str, final: str, parent: str, name: str) -> None:
    if not os.path.exists(final):
        os.replace(tmp, final)
        return
    old = os.path.join(parent, f".old-{name}-{uuid.uuid4().hex[:12]}")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _publish_gcs(tmp: str, final: str) -> None:
    marker = join(final, SUCCESS_MARKER)
    # Marker first, so readers stop trusting the old content before it changes.
    delete_tree(marker)
    delete_tree(final)
    fs, tmp_path = _resolve(tmp)
    for item in fs.get_file_info(pafs.FileSelector(tmp_path, recursive=True)):
        rel = item.path[len(tmp_path) + 1 :]
        if item.type == pafs.FileType.File and rel != SUCCESS_MARKER:
            copy_tree(GCS_SCHEME + item.path, join(final, rel))
    copy_tree(join(tmp, SUCCESS_MARKER), marker)


def _parent_and_name(uri: str) -> tuple[str, str]:
    fs, path = _resolve(uri)
    stripped = path.rstrip("/")
    if "/" not in stripped or stripped.rsplit("/", 1)[-1] == "":
        raise ValueError(f"{uri}: atomic_dir needs a folder inside a parent, not a root.")
    parent_path, name = stripped.rsplit("/", 1)
    parent = _uri_prefix(uri) + (parent_path or "/")
    return parent, name


def _glob(fs: pafs.FileSystem, path: str) -> list[str]:
    parts = path.split("/")
    first_glob = next(i for i, p in enumerate(parts) if _GLOB_CHARS.search(p))
    base = "/".join(parts[:first_glob]) or "/"
    wanted = parts[first_glob:]
    selector = pafs.FileSelector(base, recursive=len(wanted) > 1, allow_not_found=True)
    matches = []
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base.rstrip("/")) + 1 :].split("/")
        if len(rel) == len(wanted) and all(map(fnmatch.fnmatchcase, rel, wanted)):
            matches.append(info.path)
    return matches


def _is_data_name(name: str) -> bool:
    return not name.startswith(("_", ".")) and name not in NON_DATA_NAMES


def _require_dir(fs: pafs.FileSystem, path: str, uri: str) -> None:
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{uri}: not an existing directory. Check the path.")


def _split_gcs(uri: str) -> tuple[str, str] | None:
    """Returns (bucket, object path) for a gs:// URI, None for a local path."""
    if not isinstance(uri, (str, os.PathLike)):
        raise ValueError(f"Expected a path or gs:// URI string, got {uri!r}.")
    uri = os.fspath(uri)
    scheme = _SCHEME_RE.match(uri)
    if scheme is None:
        return None
    name = scheme.group(1).lower()
    if name == "file":
        return None
    if name != "gs":
        raise ValueError(f"{uri!r}: unsupported scheme '{name}:'. Use a local path or gs://bucket/path.")
    if not uri.startswith(GCS_SCHEME):
        raise ValueError(f"{uri!r}: malformed GCS URI. Write it as gs://bucket/path (two slashes).")
    bucket, _, rest = uri[len(GCS_SCHEME) :].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise ValueError(
            f"{uri!r}: bucket name {bucket!r} is not valid. Write gs://bucket/path with a "
            "3-222 character lowercase bucket name."
        )
    if rest.startswith("/") or "//" in rest:
        raise ValueError(f"{uri!r}: empty path component ('//'). Remove the extra slash.")
    return bucket, rest.rstrip("/")


def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Returns the pyarrow filesystem and its path for a local path or gs:// URI."""
    gcs = _split_gcs(uri)
    if gcs is not None:
        bucket, rest = gcs
        return _gcs_filesystem(os.environ.get("STORAGE_EMULATOR_HOST", "")), (
            f"{bucket}/{rest}" if rest else bucket
        )
    path = os.fspath(uri)
    if path.startswith("file:"):
        path = path[len("file:") :]
        path = "/" + path.lstrip("/")
    return _local_filesystem(), os.path.abspath(os.path.expanduser(path))


def _uri_prefix(uri: str) -> str:
    """What to put before a pyarrow path to get a URI in the same scheme as ``uri``."""
    return GCS_SCHEME if is_remote(uri) else ""


@functools.lru_cache(maxsize=None)
def _local_filesystem() -> pafs.LocalFileSystem:
    return pafs.LocalFileSystem()


@functools.lru_cache(maxsize=None)
def _gcs_filesystem(emulator_host: str) -> pafs.GcsFileSystem:
    """Builds (once per emulator setting) the GCS filesystem.

    Args:
        emulator_host: value of STORAGE_EMULATOR_HOST, '' for real GCS (default
            credentials). Cached by value so a test that sets the variable gets its own.
    """
    if not emulator_host:
        return pafs.GcsFileSystem()
    scheme, sep, hostport = emulator_host.partition("://")
    if not sep:
        scheme, hostport = "http", emulator_host
    return pafs.GcsFileSystem(
        anonymous=True,
        scheme=scheme,
        endpoint_override=hostport.rstrip("/"),
        retry_time_limit=_EMULATOR_RETRY_LIMIT,
    )


@functools.lru_cache(maxsize=None)
def _process_tempdir() -> str:
    path = tempfile.mkdtemp(prefix="recdistill-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
