"""Push: publish a blessed export as the next TF Serving version, atomically.

Layout under a destination ``<URI>`` (local folder or ``gs://bucket/path``)::

    <URI>/1/ saved_model.pb variables/ ... recdistill.json recdistill_push.json
    <URI>/2/ ...
    <URI>/CHAMPION          {"version": 2, "path": "<URI>/2", ...}
    <URI>/.claims/2.<owner>.json   who took version 2 (host, pid, lease)

TF Serving polls ``<URI>`` and serves the highest integer folder, ignoring other names; it also
ignores the extra files inside a version. A reader must never see half a version, so:

* local: the copy goes to a hidden sibling ``<URI>/.<version>.push-<owner>`` that becomes
  ``<URI>/<version>`` in one ``rename``;
* gs:// (no rename): the files go straight to ``<URI>/<version>/`` with ``saved_model.pb``
  after every other model file, as TFX's Pusher does, since TF Serving and SavedModel readers
  take that file as the sign a model is there.

Either way ``recdistill_push.json`` (version, source, digest, metrics, time) is written last and
is the completion marker: :func:`list_versions` and :func:`champion_from` ignore a version
without it. Before the marker is written the pushed copy must have the source's digest (its
graph, variables and assets byte for byte). A blessed model was scored by the evaluation that
names its digest, which refuses NaN/inf predictions, so pushing it needs no TensorFlow; a
forced push of a model no evaluation vouches for loads it and refuses NaN/inf outputs on a few
probe rows before anything is written.

Concurrent pushers (pipeline retries, two runs) each get their own version: a pusher writes a
claim ``.claims/<v>.<owner>.json`` and then lists the claims; it keeps ``v`` only if no other
claim for ``v`` is there, else it deletes its claim and tries ``v + 1``. Stores list
consistently after a write (local disk, GCS, S3), so of two pushers the later one to list sees
the earlier claim, and two that see each other both back off; no store-specific precondition
is needed. Leftovers of a killed push (a staging folder, a partial gs:// version) are deleted
by a later push only when their claim's owner is gone: the same host and a dead pid, or a
lease of :data:`LEASE_S` expired for another host; another pusher's work in progress stays.

A model is only pushed on an evaluation that names it (``metrics.json`` ``model_digest`` equal
to :func:`recdistill.exported.model_digest` of the model) and whose ``blessed`` follows from
its own metrics and thresholds; ``force`` overrides the verdict, never the NaN check. Pushing
the model the latest version already holds (a retried push) writes nothing and returns that
version. All IO goes through ``recdistill.data.filesystems``; this module never imports kfp.
"""

import dataclasses
import datetime
import logging
import os
import random
import re
import shutil
import socket
import time
import uuid

import numpy as np

from recdistill import blessing, evaluation, exported
from recdistill.data import filesystems, json_files

logger = logging.getLogger(__name__)

PUSH_METADATA_FILE = "recdistill_push.json"
CHAMPION_FILE = "CHAMPION"
CLAIMS_DIR = ".claims"
#: The key of the model's digest in ``metrics.json`` and ``recdistill_push.json``.
DIGEST_KEY = evaluation.MODEL_DIGEST_KEY
_STAGING = re.compile(r"^\.(\d+)\.push-([0-9a-f]+)$")
_CLAIM = re.compile(r"^(\d+)\.([0-9a-f]+)\.json$")
#: How long a claim from another host protects its push from other pushers' cleanup.
LEASE_S = 6 * 3600
#: Claims tried before giving up (each lost one means another pusher took that version).
_CLAIM_ATTEMPTS = 30
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
      unchanged: True when the latest version already held this model (a retried push):
        nothing was written and ``version`` is that version.
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
    unchanged: bool = False


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
            version = int(json_files.read_json(pointer)["version"])
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


def _probe(model: exported.ExportedModel, uri: str) -> dict:
    """Refuses a model with a NaN/inf output on the probe rows; returns its metadata.

    Raises:
      ValueError: an output is not finite (a NaN model is never pushed, ``force`` or not).
    """
    for name, values in model.predict(_probe_columns(model)).items():
        values = np.asarray(values)
        if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
            raise ValueError(
                f"{uri}: the model predicts non-finite {name!r} ({values.ravel()[:4]}) on "
                f"{_PROBE_ROWS} probe rows, so it is not pushed (force does not override "
                "this). Its weights are NaN/inf: retrain it after checking the training data "
                "for NaN/inf values.")
    return model.metadata


def _verify(digest: str, pushed_uri: str) -> None:
    """Checks that the pushed copy's graph, variables and assets are the source's, byte for byte.

    A digest, not a reload: a byte-identical copy predicts what the source predicts, and the
    check needs no TensorFlow (the push step of a pipeline then never imports it).

    Raises:
      OSError: the copy differs (the storage did not keep the files intact).
    """
    copied = exported.model_digest(pushed_uri)
    if copied != digest:
        raise OSError(f"{pushed_uri}: the pushed copy's files differ from the source's (digest "
                      f"{copied} vs {digest}). Nothing was published; check the destination "
                      "storage and push again.")
    logger.info("verified %s: the same model files as the source (%s)", pushed_uri, digest)


def _consistent_verdict(result: dict, uri: str) -> str | None:
    """Why ``metrics.json``'s verdict does not follow from its own metrics (None if it does)."""
    models = result.get("models")
    if not isinstance(models, dict) or not isinstance(models.get(evaluation.STUDENT), dict):
        return f"{uri} has no metrics of the {evaluation.STUDENT!r} model"
    try:
        thresholds = blessing.parse_thresholds(result.get("thresholds") or {}, uri)
        recomputed = blessing.bless(models, thresholds).blessed
    except (ValueError, TypeError, KeyError) as e:
        return f"{uri}: its thresholds or metrics cannot be checked ({e})"
    stated = {result[evaluation.BLESSED_KEY], (result.get("blessing") or {}).get("blessed")}
    if stated != {recomputed}:
        return (f"{uri} says blessed={result[evaluation.BLESSED_KEY]}, but its own metrics and "
                f"thresholds give blessed={recomputed}")
    return None


def _verdict(evaluation_dir: str | None, digest: str) -> tuple:
    """(blessed, student metrics, reason) from the evaluation of the model with ``digest``.

    No evaluation, an evaluation of another model (by digest) or one whose verdict does not
    follow from its metrics counts as not blessed.
    """
    if evaluation_dir is None:
        return None, {}, "no evaluation was given, so the model is not blessed"
    result = evaluation.read_evaluation(evaluation_dir)
    uri = filesystems.join(evaluation_dir, evaluation.METRICS_FILE)
    models = result.get("models")
    student = models.get(evaluation.STUDENT, {}) if isinstance(models, dict) else {}
    evaluated = result.get(DIGEST_KEY)
    if evaluated != digest:
        what = (f"names model {evaluated}" if evaluated else
                f"names no {DIGEST_KEY} (hand-written or from an older recdistill)")
        return False, student, (f"{uri} {what}, not this model ({digest}); evaluate this "
                                "model and pass that evaluation")
    inconsistent = _consistent_verdict(result, uri)
    if inconsistent:
        return False, student, f"{inconsistent}; re-run the evaluation"
    reasons = "; ".join(result.get("blessing", {}).get("reasons", []))
    word = "blessed" if result[evaluation.BLESSED_KEY] else "not blessed"
    return result[evaluation.BLESSED_KEY], student, f"the evaluation says {word}: {reasons}"


# ---------------------------------------------------------------- claims and leftovers


def _claims(destination: str) -> dict:
    """version -> owners of the claims for it."""
    claims = {}
    for name in _children(filesystems.join(destination, CLAIMS_DIR)):
        match = _CLAIM.match(name)
        if match:
            claims.setdefault(int(match[1]), []).append(match[2])
    return claims


def _claim_uri(destination: str, version: int, owner: str) -> str:
    return filesystems.join(destination, CLAIMS_DIR, f"{version}.{owner}.json")


def _claim_version(destination: str, owner: str) -> int:
    """Claims the next free version for ``owner``; see the module docstring for why it is safe.

    Raises:
      OSError: every attempt lost to another pusher.
    """
    for attempt in range(_CLAIM_ATTEMPTS):
        claims = _claims(destination)
        version = max([0, *_version_names(destination), *claims]) + 1
        claim = _claim_uri(destination, version, owner)
        now = time.time()
        json_files.write_json(claim, {"version": version, "owner": owner,
                                      "host": socket.gethostname(), "pid": os.getpid(),
                                      "claimed_at": now, "expires_at": now + LEASE_S})
        rivals = set(_claims(destination).get(version, [])) - {owner}
        if not rivals and not filesystems.exists(filesystems.join(destination, str(version))):
            return version
        filesystems.delete_tree(claim)
        logger.info("version %d under %s was taken by another pusher; trying the next",
                    version, destination)
        time.sleep(random.uniform(0.0, 0.05 * (attempt + 1)))  # two that met must not meet again
    raise OSError(f"{destination}: could not claim a version in {_CLAIM_ATTEMPTS} attempts; "
                  "other pushers took every one. Push again later.")


def _alive(claim: dict) -> bool:
    """Whether a claim's pusher may still be running."""
    if claim.get("host") == socket.gethostname():
        try:
            os.kill(int(claim["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() < float(claim.get("expires_at", 0))


def _owner_alive(destination: str, version: int, owners) -> bool:
    """Whether any of ``owners``' claims on ``version`` belongs to a pusher still running."""
    for owner in owners:
        try:
            claim = json_files.read_json(_claim_uri(destination, version, owner))
        except (OSError, ValueError):
            continue  # no readable claim: from an older recdistill, or already withdrawn
        if _alive(claim):
            return True
    return False


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


def _abandoned(destination: str, name: str, version: int, claims: dict) -> bool:
    """Whether ``name`` is what a killed push left (never another pusher's work in progress)."""
    staging = _STAGING.match(name)
    if staging:
        return not _owner_alive(destination, int(staging[1]), [staging[2]])
    if _is_partial(destination, name, version):
        return not _owner_alive(destination, int(name), claims.get(int(name), []))
    return False


def _remove_leftovers(destination: str, version: int, keep: int | None) -> list:
    """Deletes killed pushes' leftovers and, with ``keep``, complete versions beyond the last N.

    Only what recdistill wrote is deleted: its abandoned staging folders and partial gs://
    versions, and its complete versions (with their claims); folders other tools put under
    ``destination`` stay.
    """
    claims = _claims(destination)
    for name in _children(destination):
        if _abandoned(destination, name, version, claims):
            logger.warning("removing %s/%s, left by an interrupted push", destination, name)
            filesystems.delete_tree(filesystems.join(destination, name))
    if keep is None:
        return []
    old = list_versions(destination)[:-keep]
    for v in old:
        filesystems.delete_tree(filesystems.join(destination, str(v)))
        for owner in claims.get(v, []):
            filesystems.delete_tree(_claim_uri(destination, v, owner))
    if old:
        logger.info("deleted versions %s under %s (keep=%d)", old, destination, keep)
    return old


def _set_champion(destination: str, version: int, record: dict) -> None:
    """Points CHAMPION at ``version`` in one atomic write, unless a newer push got there first.

    A concurrent pusher that claimed a higher version and finished first stays the champion
    (the window between the check and the write is a few milliseconds).
    """
    pointer = filesystems.join(destination, CHAMPION_FILE)
    try:
        current = int(json_files.read_json(pointer)["version"])
    except (OSError, ValueError, KeyError, TypeError):
        current = 0
    if current == version or (current > version and _is_complete(destination, current)):
        logger.info("%s names version %d already, or a newer one: left as it is", pointer,
                    current)
        return
    # Atomic: a local file is replaced by a rename, an object appears whole when uploaded.
    json_files.write_json(pointer, record)


def _latest_holding(destination: str, digest: str) -> tuple:
    """(version, metadata) of the latest complete version when it holds ``digest``, else None."""
    versions = list_versions(destination) if filesystems.exists(destination) else []
    if not versions:
        return None
    metadata = json_files.read_json(filesystems.join(destination, str(versions[-1]), PUSH_METADATA_FILE))
    return (versions[-1], metadata) if metadata.get(DIGEST_KEY) == digest else None


def push_model(model_uri: str, destination: str, *, evaluation_dir: str | None = None,
               keep: int | None = None, force: bool = False) -> PushResult:
    """Copies a blessed export to ``<destination>/<next version>/`` and makes it the champion.

    Args:
      model_uri: model_dir, export folder or pushed version folder (local or gs://).
      destination: the TF Serving base path (local folder or gs://bucket/path).
      evaluation_dir: the ``out_dir`` of ``evaluate`` for this model; its ``blessed`` decides
        when its ``model_digest`` names this model and its verdict follows from its metrics.
      keep: keep only the newest ``keep`` versions (>= 1); older ones are deleted after the
        new one is complete. None keeps everything.
      force: push even when not blessed or not evaluated (logged as a warning).

    Returns:
      PushResult; ``pushed`` is False (and nothing is written) for a model not blessed
      without ``force``, as TFX's Pusher does. When the latest version already holds this
      model (same digest), nothing is written and that version is returned (``unchanged``).

    Raises:
      ValueError: a malformed or unwritable destination, keep < 1, an unreadable evaluation,
        or (forced without a blessing) a model without ``serving_default`` or predicting
        NaN/inf.
      FileNotFoundError: no saved_model.pb at ``model_uri``, or no metrics.json in
        ``evaluation_dir``.
      OSError: the pushed copy's files differ from the source's (it is removed, nothing
        published), or no version could be claimed.
    """
    destination = check_destination(destination)
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 (versions to keep), got {keep}.")
    source_uri = exported.resolve_export(model_uri)
    local_source = filesystems.localize(source_uri)
    digest = exported.model_digest(local_source)
    blessed, student_metrics, reason = _verdict(evaluation_dir, digest)
    if not blessed and not force:
        logger.warning("not pushing %s: %s. Pass force=True (--force) to push anyway.",
                       source_uri, reason)
        return PushResult(False, f"not pushed: {reason}", None, None, destination, source_uri,
                          blessed, False, [], {})
    if blessed:
        # The evaluation scored these very files through serving_default, and its metrics
        # refuse non-finite predictions: the model loads and predicts numbers (no TF needed).
        model_metadata = exported.read_metadata(local_source)
    else:
        logger.warning("force-pushing %s although %s", source_uri, reason)
        # Nothing vouches for the model: load it here (serving_default, no NaN/inf outputs).
        model_metadata = _probe(exported.load_exported(local_source), source_uri)
    _check_writable(destination)
    owner = uuid.uuid4().hex
    held = _latest_holding(destination, digest)
    if held:
        version, metadata = held
        final = filesystems.join(destination, str(version))
        logger.info("%s already holds %s (%s); nothing to push", final, source_uri, digest)
        _set_champion(destination, version, {"version": version, "path": final,
                                             "source": metadata.get("source"),
                                             "pushed_at": metadata.get("pushed_at")})
        return PushResult(True, f"already pushed as version {version}", version, final,
                          destination, source_uri, blessed, not blessed, [], metadata,
                          unchanged=True)

    version = _claim_version(destination, owner)
    final = filesystems.join(destination, str(version))
    staging = final if filesystems.is_remote(destination) else filesystems.join(
        destination, f".{version}.push-{owner}")
    metadata = {
        "version": version, "source": source_uri, "destination": destination,
        DIGEST_KEY: digest, "evaluation_dir": evaluation_dir, "blessed": blessed,
        "forced": not blessed, "metrics": student_metrics,
        "model_class": model_metadata.get("model_class"),
        "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    try:
        copied = _copy_files(local_source, staging)
        _verify(digest, staging)
        json_files.write_json(filesystems.join(staging, PUSH_METADATA_FILE), metadata)
        if staging != final:
            os.rename(staging, final)
    except BaseException:
        if filesystems.exists(staging):
            filesystems.delete_tree(staging)
        raise
    _set_champion(destination, version, {"version": version, "path": final,
                                         "source": source_uri,
                                         "pushed_at": metadata["pushed_at"]})
    logger.info("pushed %s to %s (%d bytes); it is the champion now", source_uri, final, copied)
    deleted = _remove_leftovers(destination, version, keep)
    why = f"pushed as version {version}: {reason}" + (" (forced)" if not blessed else "")
    return PushResult(True, why, version, final, destination, source_uri, blessed,
                      not blessed, deleted, metadata)
