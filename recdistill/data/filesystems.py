"""One file layer for local paths, ``gs://``, ``s3://`` and ``minio://`` URIs, on ``pyarrow.fs``.

Every module that reads or writes files (tables, soft labels, training, push) goes through
here, so that local runs, tests against emulators on loopback and real object stores take the
same code path. Which store a URI names, how it is reached (endpoints, credentials, timeouts)
and how its failures are explained lives in :mod:`recdistill.data.stores`; everything here is
``pyarrow.fs.FileSystem`` calls. ``tf.io.gfile`` is not used: its GCS endpoint is compiled in
(no emulator) and TF 2.21 has no S3 at all.

Publishing a directory (``atomic_dir``)
---------------------------------------
The output is written into a hidden staging sibling ``.tmp-<name>-<hex>`` and finished with a
``_SUCCESS`` marker written last. Then:

* local disk: ``os.replace`` swaps it in, so readers see the old or the new folder, never a mix;
* object stores (no rename): ``<final>/_PUBLISHING`` (naming the staging copy) is written
  first, then ``<final>/_SUCCESS`` is deleted, the old objects are deleted, the new ones are
  copied, ``<final>/_SUCCESS`` is written, ``_PUBLISHING`` deleted, the staging copy deleted.
  Whenever ``_SUCCESS`` is present the folder is complete (old before the delete, new after
  the write). A run killed in between leaves ``_PUBLISHING`` without ``_SUCCESS``: readers
  (``expand``, ``localize``, ``open_input``) refuse such a folder with an
  :class:`IncompleteOutputError` that names the complete staging copy, and the next run of
  the step publishes again. A pointer-flip scheme would be atomic for concurrent readers too,
  but every reader of ``<final>/file`` would have to follow the pointer; the pipeline never
  reads an output while its producer writes it, so the marker rule is enough.

``replaces`` makes a publish refuse to wipe a folder that is not an earlier output of the same
producer (issue: an output folder pointed at a user's data folder emptied it).

Temporaries of a killed run are removed by the next successful publish of the same output:
a local staging folder is stale when no live process holds its ``.lock`` sibling (``flock``,
released by the kernel when its owner dies, whatever the cause); one without a lock (object
stores, where nothing can be locked, or older versions) when nothing in it changed for
``STALE_AFTER``. A local ``.old-<name>-<hex>`` (a kill between the two renames) is removed once
``<final>`` is complete again.

This module imports nothing from recdistill but its sibling ``stores``.
"""

import atexit
import collections
import concurrent.futures
import contextlib
import datetime
import fcntl
import fnmatch
import functools
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from typing import BinaryIO, Iterator, Sequence

import pyarrow.fs as pafs

from recdistill.data import stores

logger = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
# Present while an object-store publish rewrites a folder; names the complete staging copy.
PUBLISHING_MARKER = "_PUBLISHING"
# Files in a data directory that are bookkeeping, not data.
NON_DATA_NAMES = frozenset({"stats.json"})
# A staging folder without a live lock is stale after this long without a change.
STALE_AFTER = datetime.timedelta(hours=6)
_GLOB_CHARS = re.compile(r"[*?\[]")
_HIDDEN_PREFIXES = ("_", ".")
_DOWNLOAD_CHUNK = 1 << 20


class IncompleteOutputError(FileNotFoundError):
    """A folder whose publish was interrupted: it lacks ``_SUCCESS``; do not read it."""


def is_remote(uri: str) -> bool:
    """Returns True for object-store URIs (validated), False for local paths.

    Raises:
        ValueError: an unsupported scheme or a malformed URI (see ``stores.locate``).
    """
    return stores.locate(uri) is not None


def bucket_uri(uri: str) -> str:
    """Returns the bucket of a remote URI as a URI, e.g. ``s3://bkt`` for ``s3://bkt/a/b``.

    Raises:
        ValueError: ``uri`` is local or malformed.
    """
    loc = stores.locate(uri)
    if loc is None:
        raise ValueError(f"{uri}: a local path has no bucket.")
    return loc.prefix + loc.bucket


def join(*parts: str) -> str:
    """Joins path parts; a remote first part joins with '/' whatever the OS.

    Raises:
        ValueError: no parts, or a malformed first part (see ``is_remote``).
    """
    if not parts:
        raise ValueError("join() needs at least one part, got none.")
    if is_remote(parts[0]):
        pieces = [parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]]
        return "/".join(p for p in pieces if p)
    return os.path.join(*parts)


def _named(function):
    """Explains a store failure inside ``function`` with the URIs it was given."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with stores.store_errors(*[a for a in args if isinstance(a, str)]):
            return function(*args, **kwargs)
    return wrapper


@_named
def exists(uri: str) -> bool:
    """Returns whether a file or directory exists at ``uri``."""
    fs, path = stores.resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


@_named
def makedirs(uri: str) -> None:
    """Creates a directory and its parents; an existing directory is fine."""
    fs, path = stores.resolve(uri)
    fs.create_dir(path, recursive=True)


@_named
def listdir(uri: str) -> list[str]:
    """Returns the sorted names (files and folders) directly inside a directory.

    Raises:
        FileNotFoundError: ``uri`` is not an existing directory.
    """
    fs, path = stores.resolve(uri)
    _require_dir(fs, path, uri)
    # Recursive, because pyarrow's GCS listing reports a sub-folder only when it has a
    # marker object, and folders written by other tools (or by open_output) have none.
    base = len(path.rstrip("/")) + 1
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted({info.path[base:].split("/", 1)[0] for info in infos})


@_named
def open_input(uri: str) -> BinaryIO:
    """Opens a file for binary random-access reading (seekable; Parquet needs that).

    Raises:
        FileNotFoundError: no file at ``uri``.
        IncompleteOutputError: its folder's publish was interrupted.
    """
    fs, path = stores.resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        what = "is a directory" if info.type == pafs.FileType.Directory else "does not exist"
        raise FileNotFoundError(
            f"{uri}: cannot open for reading, it {what}. Check the path (for a folder of "
            "data files use expand() first)."
        )
    _refuse_unfinished(fs, _parent_path(path), uri)
    return fs.open_input_file(path)


@_named
def open_output(uri: str) -> BinaryIO:
    """Opens a file for binary writing, creating missing parent directories.

    On object stores the object appears only when the stream is closed.
    """
    fs, path = stores.resolve(uri)
    if not is_remote(uri):
        fs.create_dir(os.path.dirname(path), recursive=True)
    # compression=None: write the bytes given; pyarrow would otherwise gzip "*.gz" names.
    return fs.open_output_stream(path, compression=None)


@_named
def expand(uri_or_dir_or_glob: str) -> list[str]:
    """Resolves a file, a directory or a glob to a sorted list of data file URIs.

    A directory yields its files (not recursively). A glob may use ``*``, ``?`` and
    ``[...]`` in any path component; a wildcard never matches '/', nor a name starting with
    '_' or '.' unless that pattern component starts with the same character (so a killed
    run's ``.tmp-*`` staging folder is never read as data). Bookkeeping files (names starting
    with '_' or '.', and ``stats.json``) are skipped for directories and globs; a file named
    explicitly is returned as is.

    Raises:
        FileNotFoundError: nothing matches; the message names the pattern.
        IncompleteOutputError: a matched folder's publish was interrupted.
        ValueError: malformed URI.
    """
    pattern = uri_or_dir_or_glob
    fs, path = stores.resolve(pattern)
    prefix = _uri_prefix(pattern)
    if _GLOB_CHARS.search(path):
        matches, names_by_folder = _glob(fs, path)
        for folder in sorted({_parent_path(m) for m in matches}):
            _refuse_unfinished(fs, folder, prefix + folder, names_by_folder[folder])
    else:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            _refuse_unfinished(fs, _parent_path(path), pattern)
            return [pattern if is_remote(pattern) else path]
        matches = []
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
            _refuse_unfinished(fs, path, pattern, {i.base_name for i in infos})
            matches = [i.path for i in infos if i.type == pafs.FileType.File]
    found = sorted(prefix + m for m in matches if _is_data_name(m.rsplit("/", 1)[-1]))
    if not found:
        raise FileNotFoundError(
            f"{pattern}: no data files match (names starting with '_' or '.' and "
            f"{', '.join(sorted(NON_DATA_NAMES))} are not data). Check the path and that "
            "the step that writes it succeeded."
        )
    return found


@_named
def copy_tree(src: str, dst: str) -> None:
    """Copies a file or a directory tree to ``dst`` (between any two stores, any direction).

    A directory's contents land under ``dst`` (``dst/<relative path>``); a file is
    copied to exactly ``dst``.

    Raises:
        FileNotFoundError: ``src`` does not exist.
    """
    src_fs, src_path = stores.resolve(src)
    dst_fs, dst_path = stores.resolve(dst)
    info = src_fs.get_file_info(src_path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{src}: cannot copy, it does not exist.")
    if info.type == pafs.FileType.File:
        _copy_file(src_fs, src_path, dst_fs, dst_path, local_dst=not is_remote(dst))
        return
    # File by file, so that directory-marker objects are not copied as files.
    for item in src_fs.get_file_info(pafs.FileSelector(src_path, recursive=True)):
        if item.type == pafs.FileType.File:
            rel = item.path[len(src_path.rstrip("/")) + 1:]
            _copy_file(src_fs, item.path, dst_fs, f"{dst_path.rstrip('/')}/{rel}",
                       local_dst=not is_remote(dst))
    logger.debug("Copied %s to %s", src, dst)


@_named
def delete_tree(uri: str) -> None:
    """Deletes a file or a directory tree; a missing ``uri`` is not an error."""
    loc = stores.locate(uri)
    if loc is not None and not loc.key:
        raise ValueError(f"{uri}: refusing to delete a whole bucket. Name a folder in it.")
    fs, path = stores.resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        fs.delete_file(path)
    elif info.type == pafs.FileType.Directory:
        fs.delete_dir_contents(path, missing_dir_ok=True)
        # On object stores a folder without a marker object vanishes with its last file.
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)


@_named
def localize(uri: str) -> str:
    """Returns a local path holding ``uri``'s content.

    A local path is returned unchanged. A remote file or folder is downloaded into a
    fresh folder under a temporary directory that lives until the process exits (each
    call downloads again, so a changed remote is never served stale).

    Raises:
        FileNotFoundError: ``uri`` does not exist.
        IncompleteOutputError: the folder's (or the file's folder's) publish was interrupted.
    """
    if not is_remote(uri):
        return stores.resolve(uri)[1] if os.fspath(uri).startswith("file:") else uri
    fs, path = stores.resolve(uri)
    is_dir = fs.get_file_info(path).type == pafs.FileType.Directory
    _refuse_unfinished(fs, path if is_dir else _parent_path(path), uri)
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    local = os.path.join(tempfile.mkdtemp(dir=_process_tempdir()), name)
    copy_tree(uri, local)
    logger.info("Downloaded %s to %s", uri, local)
    return local


def local_shards(uris: Sequence[str], ahead: int = 1) -> Iterator[str]:
    """Yields a local path for each of ``uris``, in order, downloading remote ones on demand.

    So that training reads a remote table shard by shard instead of copying all of it to
    local disk first: while the caller reads shard ``i``, shard ``i + 1`` downloads in a
    background thread (pyarrow releases the GIL), and shard ``i``'s copy is deleted when the
    caller asks for the next path or closes the generator. At most ``ahead + 1`` shards are
    on local disk at once. Local paths are yielded unchanged and never deleted.

    The caller must be done with a path when it asks for the next one (read each shard to
    the end before advancing; a reader that opens shards ahead, like ``interleave`` with a
    cycle longer than 1, needs ``ahead`` at least that long).

    Args:
        uris: data files, e.g. from :func:`expand`.
        ahead: shards downloaded ahead of the one being read (>= 1).

    Raises:
        ValueError: ``ahead`` < 1.
        StoreError, FileNotFoundError: a download failed (raised where its path is due).
    """
    if ahead < 1:
        raise ValueError(f"local_shards(ahead={ahead}): need at least 1 shard ahead.")
    uris = list(uris)
    folder = tempfile.mkdtemp(prefix="shards-", dir=_process_tempdir())

    def fetch(index: int) -> str:
        uri = uris[index]
        if not is_remote(uri):
            return uri
        local = os.path.join(folder, f"{index:06d}-{uri.rstrip('/').rsplit('/', 1)[-1]}")
        fs, path = stores.resolve(uri)
        # One streamed GET: copy_tree's metadata requests cost 30-40% of a small shard.
        with stores.store_errors(uri), fs.open_input_stream(path) as src, \
                open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, _DOWNLOAD_CHUNK)
        return local

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pending = collections.deque(pool.submit(fetch, i)
                                        for i in range(min(ahead, len(uris))))
            try:
                for index in range(len(uris)):
                    path = pending.popleft().result()
                    if index + ahead < len(uris):
                        pending.append(pool.submit(fetch, index + ahead))
                    try:
                        yield path
                    finally:
                        if path.startswith(folder + os.sep):
                            os.remove(path)
            finally:
                for future in pending:
                    future.cancel()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def is_complete(uri: str) -> bool:
    """Returns whether ``uri`` is a directory finished by ``atomic_dir``.

    Readers of a directory that another process may still be writing (always the case on
    object stores, which cannot rename atomically) check this before reading.
    """
    return exists(join(uri, SUCCESS_MARKER))


@contextlib.contextmanager
def atomic_dir(final_uri: str, replaces: Sequence[str] | None = None) -> Iterator[str]:
    """Yields a temporary sibling directory that becomes ``final_uri`` on success.

    Write everything into the yielded location. On success a ``_SUCCESS`` marker is
    written and the directory is published as the module docstring describes. On an
    exception the temporary directory is removed and the exception re-raised, so nothing
    new is visible at ``final_uri``. A successful publish also removes stale temporaries a
    killed earlier run of the same output left.

    Example::

        with atomic_dir("s3://bkt/run1/labels", replaces=("stats.json",)) as tmp:
            write_labels(tmp)
        assert is_complete("s3://bkt/run1/labels")

    Args:
        final_uri: the folder to publish.
        replaces: marker files that prove an existing ``final_uri`` is an earlier output of
            the same producer (``_SUCCESS`` is always required too), e.g. ``("stats.json",)``.
            An existing folder without them is refused before anything is written, unless it
            is empty or an interrupted publish. None (the default) replaces any folder.

    Raises:
        ValueError: ``final_uri`` has no parent (a bucket or filesystem root).
        FileExistsError: ``final_uri`` is a file, or (with ``replaces``) a folder that is not
            an earlier output of this producer.
    """
    parent, name = _parent_and_name(final_uri)
    with stores.store_errors(final_uri):
        _check_replaceable(final_uri, replaces)
        staging = _Staging(parent, name)
    try:
        yield staging.uri
    except BaseException:
        staging.discard()
        raise
    try:
        with stores.store_errors(final_uri):
            with open_output(join(staging.uri, SUCCESS_MARKER)):
                pass
            _check_replaceable(final_uri, replaces)
            if is_remote(final_uri):
                _publish_remote(staging.uri, final_uri)
            else:
                _publish_local(staging.uri, final_uri, parent, name)
    finally:
        staging.discard()
    logger.info("Published %s", final_uri)
    with stores.store_errors(final_uri):
        _remove_stale_temporaries(parent, name)


class _Staging:
    """A staging folder ``.tmp-<name>-<hex>`` and its ``.lock`` sibling.

    Locally the lock file is created and ``flock``-ed before the folder exists, so a folder
    whose lock can be taken by someone else belongs to a dead process. On object stores the
    lock is an object that records who started the run (for people; stale means old).
    """

    def __init__(self, parent: str, name: str):
        stem = f".tmp-{name}-{uuid.uuid4().hex[:12]}"
        self.uri = join(parent, stem)
        self.lock_uri = join(parent, stem + ".lock")
        self._lock_file = None
        if is_remote(parent):
            with open_output(self.lock_uri) as f:
                f.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                    "started": time.time()}).encode())
        else:
            os.makedirs(parent, exist_ok=True)
            self._lock_file = open(self.lock_uri, "w")  # noqa: SIM115 (held until discard)
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        makedirs(self.uri)

    def discard(self) -> None:
        delete_tree(self.uri)
        delete_tree(self.lock_uri)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _check_replaceable(final: str, replaces: Sequence[str] | None) -> None:
    fs, path = stores.resolve(final)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        raise FileExistsError(f"{final}: is a file, not an output folder. Choose a folder path.")
    if replaces is None or info.type == pafs.FileType.NotFound:
        return
    names = listdir(final)
    if not names or PUBLISHING_MARKER in names:
        return
    missing = [m for m in (SUCCESS_MARKER, *replaces) if m not in names]
    if missing:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise FileExistsError(
            f"{final}: already exists and is not an earlier output of this step (it lacks "
            f"{', '.join(missing)}); replacing it would delete its {len(names)} entries "
            f"({shown}). Choose a new or empty folder, or delete {final} yourself.")


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


def _publish_remote(tmp: str, final: str) -> None:
    """Rewrites ``final`` from the complete staging copy ``tmp``; see the module docstring."""
    fs, final_path = stores.resolve(final)
    _, tmp_path = stores.resolve(tmp)
    publishing = f"{final_path}/{PUBLISHING_MARKER}"
    with fs.open_output_stream(publishing, compression=None) as f:
        f.write(tmp.encode())
    _delete_if_present(fs, f"{final_path}/{SUCCESS_MARKER}")
    for item in fs.get_file_info(pafs.FileSelector(final_path, recursive=False)):
        if item.base_name == PUBLISHING_MARKER:
            continue
        if item.type == pafs.FileType.Directory:
            fs.delete_dir(item.path)
        else:
            fs.delete_file(item.path)
    for item in fs.get_file_info(pafs.FileSelector(tmp_path, recursive=True)):
        rel = item.path[len(tmp_path) + 1:]
        if item.type == pafs.FileType.File and rel != SUCCESS_MARKER:
            _copy_file(fs, item.path, fs, f"{final_path}/{rel}", local_dst=False)
    _copy_file(fs, f"{tmp_path}/{SUCCESS_MARKER}", fs, f"{final_path}/{SUCCESS_MARKER}",
               local_dst=False)
    fs.delete_file(publishing)


def _remove_stale_temporaries(parent: str, name: str) -> None:
    """Deletes ``.tmp-<name>-*`` and ``.old-<name>-*`` siblings that no live run owns."""
    fs, parent_path = stores.resolve(parent)
    pattern = re.compile(rf"^\.(tmp|old)-{re.escape(name)}-[0-9a-f]{{12}}$")
    # Not recursive (the parent may hold whole tables): a staging folder shows up through its
    # lock object or its folder marker (makedirs writes one on object stores too).
    selector = pafs.FileSelector(parent_path, recursive=False, allow_not_found=True)
    names = {info.base_name for info in fs.get_file_info(selector)}
    # A lock without its folder is a run killed while it cleaned up.
    for entry in sorted({n.removesuffix(".lock") for n in names}):
        match = pattern.match(entry)
        if match is None:
            continue
        uri = join(parent, entry)
        if match.group(1) == "old" or _is_stale(fs, f"{parent_path.rstrip('/')}/{entry}",
                                                 entry + ".lock" in names):
            logger.warning("Removing %s, left by a run of %s that did not finish.", uri, name)
            delete_tree(uri)
            delete_tree(uri + ".lock")


def _is_stale(fs: pafs.FileSystem, path: str, has_lock: bool) -> bool:
    if has_lock and isinstance(fs, pafs.LocalFileSystem):
        with open(path + ".lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its owner is alive
            return True
    selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    times = [i.mtime for i in fs.get_file_info(selector)]
    if has_lock:
        times.append(fs.get_file_info(path + ".lock").mtime)
    times = [t for t in times if t is not None]
    if not times:  # nothing in it says when it was written: an empty folder is no loss
        return True
    return datetime.datetime.now(datetime.timezone.utc) - max(times) > STALE_AFTER


def _refuse_unfinished(fs: pafs.FileSystem, folder: str, uri: str,
                       names: set | None = None) -> None:
    """Raises IncompleteOutputError when ``folder`` is an interrupted object-store publish.

    Args:
        names: the folder's file names when a listing already has them; else one HEAD
            request looks for the publishing marker (and a second only when it is there).
    """
    def present(marker: str) -> bool:
        if names is not None:
            return marker in names
        return fs.get_file_info(f"{folder}/{marker}").type == pafs.FileType.File

    if not present(PUBLISHING_MARKER) or present(SUCCESS_MARKER):
        return
    with fs.open_input_stream(f"{folder}/{PUBLISHING_MARKER}") as f:
        staging = f.read().decode(errors="replace")
    raise IncompleteOutputError(
        f"{uri}: its folder is incomplete (a publish was interrupted: {PUBLISHING_MARKER} "
        f"without {SUCCESS_MARKER}). The complete new output is in {staging}; run the step "
        "that writes this folder again.")


def _delete_if_present(fs: pafs.FileSystem, path: str) -> None:
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def _copy_file(src_fs: pafs.FileSystem, src: str, dst_fs: pafs.FileSystem, dst: str,
               local_dst: bool) -> None:
    if local_dst:
        dst_fs.create_dir(os.path.dirname(dst), recursive=True)
    pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)


def _parent_and_name(uri: str) -> tuple[str, str]:
    _, path = stores.resolve(uri)
    stripped = path.rstrip("/")
    if "/" not in stripped or stripped.rsplit("/", 1)[-1] == "":
        raise ValueError(f"{uri}: atomic_dir needs a folder inside a parent, not a root.")
    parent_path, name = stripped.rsplit("/", 1)
    parent = _uri_prefix(uri) + (parent_path or "/")
    return parent, name


def _parent_path(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0]


def _glob(fs: pafs.FileSystem, path: str) -> tuple[list[str], dict[str, set]]:
    """Returns the files matching ``path`` and, per folder listed, its file names."""
    parts = path.split("/")
    first_glob = next(i for i, p in enumerate(parts) if _GLOB_CHARS.search(p))
    base = "/".join(parts[:first_glob]) or "/"
    wanted = parts[first_glob:]
    selector = pafs.FileSelector(base, recursive=len(wanted) > 1, allow_not_found=True)
    matches, names_by_folder = [], collections.defaultdict(set)
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        names_by_folder[_parent_path(info.path)].add(info.base_name)
        rel = info.path[len(base.rstrip("/")) + 1:].split("/")
        if len(rel) == len(wanted) and all(map(_component_matches, rel, wanted)):
            matches.append(info.path)
    return matches, names_by_folder


def _component_matches(name: str, pattern: str) -> bool:
    """fnmatch, except that a wildcard never reveals a hidden ('.', '_') name."""
    if name.startswith(_HIDDEN_PREFIXES) and not pattern.startswith(name[0]):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def _is_data_name(name: str) -> bool:
    return not name.startswith(_HIDDEN_PREFIXES) and name not in NON_DATA_NAMES


def _require_dir(fs: pafs.FileSystem, path: str, uri: str) -> None:
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{uri}: not an existing directory. Check the path.")


def _uri_prefix(uri: str) -> str:
    """What to put before a pyarrow path to get a URI in the same scheme as ``uri``."""
    loc = stores.locate(uri)
    return "" if loc is None else loc.prefix


@functools.lru_cache(maxsize=None)
def _process_tempdir() -> str:
    path = tempfile.mkdtemp(prefix="recdistill-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
