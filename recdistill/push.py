"""Push: publish a blessed export as the next TF Serving version, atomically.

Layout under a destination ``<URI>`` (local folder or ``gs://bucket/path``)::

    <URI>/1/ saved_model.pb variables/ ... recdistill.json recdistill_push.json
    <URI>/2/ ...
    <URI>/CHAMPION          {"version": 2, "path": "<URI>/2", ...}

TF Serving polls ``<URI>`` and serves the highest integer folder, ignoring other names; it also
ignores the extra files inside a version. A reader must never see half a version, so:

* local: the copy goes to a hidden sibling ``<URI>/.<version>.push-<random>`` that becomes
  ``<URI>/<version>`` in one ``rename``;
* gs:// (no rename): the files go straight to ``<URI>/<version>/`` with ``saved_model.pb``
  after every other model file, as TFX's Pusher does, since TF Serving and SavedModel readers
  take that file as the sign a model is there.

Either way ``recdistill_push.json`` (version, source, metrics, time) is written last and is the
completion marker: :func:`list_versions` and :func:`champion_from` ignore a version without
it, and the next successful push deletes such leftovers of a killed push. Before the marker is
written the pushed copy is loaded and must predict the same as the source on a few rows.

One pusher per destination at a time (a pipeline runs with max concurrency 1); this module
does not lock. It does all IO through ``recdistill.data.filesystems`` and never imports kfp.
"""

import dataclasses
import datetime
import json
import logging
import os
import re
import shutil
import uuid

import numpy as np

from recdistill import evaluation, exported
from recdistill.data import filesystems

logger = logging.getLogger(__name__)

PUSH_METADATA_FILE = "recdistill_push.json"
CHAMPION_FILE = "CHAMPION"
_STAGING = re.compile(r"^\.(\d+)\.push-[0-9a-f]+$")
#: Rows the pushed copy is checked on, synthesised from the serving signature's dtypes.
_PROBE_ROWS = 8


@dataclasses.dataclass
class PushResult:
    """What :func:`push_model` did.

    Attributes:
      pushed: False when the model was not blessed and ``force`` was off (nothing written).
      reason: one line saying why it was (not) pushed.
      version: the new integer version, or None when not pushed.
      version_uri: ``<destination>/<version>``, or None when not pushed.
      destination: the normalised destination.
      source: the export folder that was copied.
      blessed: the evaluation's verdict (None without an evaluation).
      forced: whether ``force`` overrode a missing or negative verdict.
      deleted_versions: older complete versions removed to keep ``keep``.
      metadata: the contents of ``<uri>/recdistill_push.json`` (empty when not pushed).
    """

    pushed: bool
    reason: str
    version: int | None
    version_uri: str | None
    destination: str
    source: str
    blessed: bool | None
    forced: bool
    deleted_versions: list
    metadata: dict


def check_destination(destination: str) -> str:
    """Validates a destination and returns it normalised (absolute, no trailing slash).

    Raises:
      ValueError: empty, an unsupported scheme, a malformed ``gs://`` URI (e.g. ``gs:/x``) or a
        path with ``..`` segments (a serving base path must say where it is).
    """
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError(f"push destination must be a folder or gs:// URI, got {destination!r}.")
    if ".." in destination.replace("\\", "/").split("/"):
        raise ValueError(f"push destination {destination!r} has '..' segments. Give the serving "
                         "base path directly, e.g. /models/recdistill or gs://bucket/models.")
    try:
        remote = filesystems.is_remote(destination)
    except ValueError as e:
        raise ValueError(f"push destination: {e}") from e
    return destination.rstrip("/") if remote else os.path.abspath(destination)


def _children(destination: str) -> list:
    """Names of the entries directly under ``destination`` (empty when it does not exist)."""
    if not filesystems.exists(destination):
        return []
    return [name.rstrip("/").rsplit("/", 1)[-1] for name in filesystems.listdir(destination)]


def _version_names(destination: str) -> list:
    """Every integer-named entry, complete or not, as ints."""
    return sorted(int(name) for name in _children(destination) if name.isdigit())


def _is_complete(destination: str, version: int) -> bool:
    return filesystems.exists(filesystems.join(destination, str(version), PUSH_METADATA_FILE))


def list_versions(destination: str) -> list:
    """Complete pushed versions under ``destination``, ascending (ignores partial pushes)."""
    destination = check_destination(destination)
    return [v for v in _version_names(destination) if _is_complete(destination, v)]


def _read_json(uri: str):
    with filesystems.open_input(uri) as f:
        return json.loads(f.read())


def _write_json(uri: str, value) -> None:
    with filesystems.open_output(uri) as f:
        f.write(json.dumps(value, indent=2, sort_keys=True).encode())


def champion_from(destination: str) -> str | None:
    """The export folder of the current champion under ``destination``, for ``evaluate``.

    Reads ``<destination>/CHAMPION``; when it is missing, unreadable or names a version that
    is gone or incomplete, falls back to the latest complete version (with a warning).

    Returns:
      ``<destination>/<version>``, or None when nothing has been pushed yet.
    """
    destination = check_destination(destination)
    pointer = filesystems.join(destination, CHAMPION_FILE)
    if filesystems.exists(pointer):
        try:
            version = int(_read_json(pointer)["version"])
        except (ValueError, KeyError, TypeError) as e:
            logger.warning("%s is unreadable (%s); using the latest complete version", pointer, e)
        else:
            if _is_complete(destination, version):
                return filesystems.join(destination, str(version))
            logger.warning("%s names version %d, which is not a complete push; using the "
                           "latest complete version", pointer, version)
    versions = list_versions(destination)
    return filesystems.join(destination, str(versions[-1])) if versions else None


def _check_writable(destination: str) -> None:
    """Creates ``destination`` if needed and fails early when it cannot be written."""
    if filesystems.is_remote(destination):
        bucket = filesystems.bucket_uri(destination)
        if not filesystems.exists(bucket):
            raise ValueError(f"{destination}: bucket {bucket} does not exist or is not "
                             "reachable. Create it or fix the destination.")
        return
    try:
        filesystems.makedirs(destination)
    except OSError as e:
        raise ValueError(f"{destination}: cannot create the push destination ({e}). Choose a "
                         "writable folder.") from e
    if not os.path.isdir(destination) or not os.access(destination, os.W_OK | os.X_OK):
        raise ValueError(f"{destination}: not a writable folder. Choose a writable folder.")


def _model_files(local_export: str) -> list:
    """Relative paths of the export's files, ``saved_model.pb`` last, without an old marker."""
    files = []
    for root, dirs, names in os.walk(local_export):
        dirs.sort()
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(root, name), local_export).replace(os.sep, "/")
            if rel not in (exported.SAVED_MODEL_FILE, PUSH_METADATA_FILE):
                files.append(rel)
    return files + [exported.SAVED_MODEL_FILE]


def _copy_files(local_export: str, target: str) -> int:
    """Copies the export into ``target`` in :func:`_model_files` order; returns bytes copied."""
    copied = 0
    for rel in _model_files(local_export):
        with open(os.path.join(local_export, rel), "rb") as src, \
                filesystems.open_output(filesystems.join(target, rel)) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            copied += src.tell()
    return copied


def _probe_columns(model: exported.ExportedModel) -> dict:
    """A few synthetic rows matching the serving signature's inputs."""
    import tensorflow as tf

    columns = {}
    for name, dtype in model.inputs.items():
        if dtype == tf.string:
            columns[name] = np.array([f"probe_{i}" for i in range(_PROBE_ROWS)], dtype=object)
        elif dtype.is_integer or dtype.is_bool:
            columns[name] = np.arange(_PROBE_ROWS) % 2 if dtype.is_bool else np.arange(_PROBE_ROWS)
        else:
            columns[name] = np.linspace(-1.0, 1.0, _PROBE_ROWS)
    return columns


def _verify(source: exported.ExportedModel, pushed_uri: str) -> None:
    """Loads the pushed copy and checks it predicts what the source predicts."""
    pushed = exported.load_exported(pushed_uri)
    columns = _probe_columns(source)
    expected, actual = source.predict(columns), pushed.predict(columns)
    for name, values in expected.items():
        if name not in actual or not np.allclose(values, actual[name], rtol=1e-5, atol=1e-6):
            raise RuntimeError(f"{pushed_uri}: the pushed copy predicts {name!r} differently from "
                               f"{source.uri} ({actual.get(name)} vs {values}). Nothing was "
                               "published; check the destination storage and push again.")
    logger.info("verified %s: same outputs as the source on %d rows", pushed_uri, _PROBE_ROWS)


def _same_location(a: str, b: str) -> bool:
    if filesystems.is_remote(a) or filesystems.is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def _verdict(evaluation_dir: str | None, source_uri: str) -> tuple:
    """(blessed, student metrics, reason) from the evaluation of ``source_uri``.

    No evaluation, or an evaluation of another model, counts as not blessed.
    """
    if evaluation_dir is None:
        return None, {}, "no evaluation was given, so the model is not blessed"
    result = evaluation.read_evaluation(evaluation_dir)
    student = result.get("models", {}).get(evaluation.STUDENT, {})
    evaluated = student.get("uri")
    if evaluated and not _same_location(evaluated, source_uri):
        return False, student, (f"{evaluation_dir} evaluated {evaluated}, not {source_uri}; "
                                "evaluate this model and pass that evaluation")
    reasons = "; ".join(result.get("blessing", {}).get("reasons", []))
    word = "blessed" if result[evaluation.BLESSED_KEY] else "not blessed"
    return result[evaluation.BLESSED_KEY], student, f"the evaluation says {word}: {reasons}"


def _is_partial(destination: str, name: str, version: int) -> bool:
    """Whether ``name`` is a gs:// version a killed push left: older, no marker, no model.

    Versions with a saved_model.pb but no marker were not pushed by recdistill (or died right
    before the marker); they are left alone, like any local folder without the marker.
    """
    if not (filesystems.is_remote(destination) and name.isdigit() and int(name) < version):
        return False
    folder = filesystems.join(destination, name)
    return not (filesystems.exists(filesystems.join(folder, PUSH_METADATA_FILE))
                or filesystems.exists(filesystems.join(folder, exported.SAVED_MODEL_FILE)))


def _remove_leftovers(destination: str, version: int, keep: int | None) -> list:
    """Deletes killed pushes' leftovers and, with ``keep``, complete versions beyond the last N.

    Only what recdistill wrote is deleted: its staging folders, its partial gs:// versions and
    its complete versions; folders other tools put under ``destination`` stay.
    """
    for name in _children(destination):
        if _STAGING.match(name) or _is_partial(destination, name, version):
            logger.warning("removing %s/%s, left by an interrupted push", destination, name)
            filesystems.delete_tree(filesystems.join(destination, name))
    if keep is None:
        return []
    old = list_versions(destination)[:-keep]
    for v in old:
        filesystems.delete_tree(filesystems.join(destination, str(v)))
    if old:
        logger.info("deleted versions %s under %s (keep=%d)", old, destination, keep)
    return old


def push_model(model_uri: str, destination: str, *, evaluation_dir: str | None = None,
               keep: int | None = None, force: bool = False) -> PushResult:
    """Copies a blessed export to ``<destination>/<next version>/`` and makes it the champion.

    Args:
      model_uri: model_dir, export folder or pushed version folder (local or gs://).
      destination: the TF Serving base path (local folder or gs://bucket/path).
      evaluation_dir: the ``out_dir`` of ``evaluate`` for this model; its ``blessed`` decides.
      keep: keep only the newest ``keep`` versions (>= 1); older ones are deleted after the
        new one is complete. None keeps everything.
      force: push even when not blessed or not evaluated (logged as a warning).

    Returns:
      PushResult; ``pushed`` is False (and nothing is written) for a model not blessed
      without ``force``, as TFX's Pusher does.

    Raises:
      ValueError: a malformed or unwritable destination, keep < 1, a model without
        ``serving_default``, or an unreadable evaluation.
      FileNotFoundError: no saved_model.pb at ``model_uri``, or no metrics.json in
        ``evaluation_dir``.
      RuntimeError: the pushed copy predicts differently (it is removed, nothing published).
    """
    destination = check_destination(destination)
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 (versions to keep), got {keep}.")
    source = exported.load_exported(model_uri)
    source_uri = source.uri
    blessed, student_metrics, reason = _verdict(evaluation_dir, source_uri)
    if not blessed and not force:
        logger.warning("not pushing %s: %s. Pass force=True (--force) to push anyway.",
                       source_uri, reason)
        return PushResult(False, f"not pushed: {reason}", None, None, destination, source_uri,
                          blessed, False, [], {})
    if not blessed:
        logger.warning("force-pushing %s although %s", source_uri, reason)
    _check_writable(destination)

    version = (_version_names(destination) or [0])[-1] + 1
    final = filesystems.join(destination, str(version))
    staging = final if filesystems.is_remote(destination) else filesystems.join(
        destination, f".{version}.push-{uuid.uuid4().hex}")
    metadata = {
        "version": version, "source": source_uri, "destination": destination,
        "evaluation_dir": evaluation_dir, "blessed": blessed, "forced": not blessed,
        "metrics": student_metrics, "model_class": source.metadata.get("model_class"),
        "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    try:
        copied = _copy_files(source.local_path, staging)
        _verify(source, staging)
        _write_json(filesystems.join(staging, PUSH_METADATA_FILE), metadata)
        if staging != final:
            os.rename(staging, final)
    except BaseException:
        if filesystems.exists(staging):
            filesystems.delete_tree(staging)
        raise
    _write_json(filesystems.join(destination, CHAMPION_FILE),
                {"version": version, "path": final, "source": source_uri,
                 "pushed_at": metadata["pushed_at"]})
    logger.info("pushed %s to %s (%d bytes); it is the champion now", source_uri, final, copied)
    deleted = _remove_leftovers(destination, version, keep)
    why = f"pushed as version {version}: {reason}" + (" (forced)" if not blessed else "")
    return PushResult(True, why, version, final, destination, source_uri, blessed,
                      not blessed, deleted, metadata)
