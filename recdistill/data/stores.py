"""Which store a URI names, how to reach it, and what to say when it cannot be reached.

Schemes (anything else is rejected with the list of these):

* a local path or ``file:`` URI: ``pyarrow.fs.LocalFileSystem``;
* ``gs://bucket/key``: ``pyarrow.fs.GcsFileSystem``. Credentials come from Google's default
  chain (``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``, the
  metadata server on GCP). ``STORAGE_EMULATOR_HOST=http://host:port`` talks plain HTTP to an
  emulator, anonymously;
* ``s3://bucket/key`` and ``minio://bucket/key`` (the URIs Kubeflow's bundled MinIO gives
  artifacts): ``pyarrow.fs.S3FileSystem``. The endpoint comes from ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL`` (required for ``minio://``, e.g. ``http://minio-service.kubeflow:9000``),
  the region from ``AWS_REGION`` or ``AWS_DEFAULT_REGION`` (``us-east-1`` for a custom
  endpoint), credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
  (``AWS_SESSION_TOKEN``) or else the AWS SDK's default chain (profiles, web identity, instance
  role).

Every remote call is bounded, so a missing credential or an unreachable endpoint fails within
about ``RECDISTILL_STORE_TIMEOUT_S`` seconds (default 30) instead of retrying for minutes: GCS
retries for at most that long; S3 gives up on a connection after 5 s, on a stalled request after
that long, and makes 3 attempts. :func:`store_errors` turns the store's raw ``OSError`` into a
:class:`StoreError` naming the URI, the endpoint and how to give credentials.

Known bound: pyarrow's GCS client has no per-request timeout, so a GCS endpoint that accepts
connections but never answers is cut only by the client's own stall timeout (120 s measured).

This module imports nothing from recdistill.
"""

import contextlib
import datetime
import functools
import os
import re
from typing import Iterator, NamedTuple

import pyarrow.fs as pafs

REMOTE_SCHEMES = ("gs", "s3", "minio")
TIMEOUT_ENV = "RECDISTILL_STORE_TIMEOUT_S"
_DEFAULT_TIMEOUT_S = 30.0
# An emulator answers at once or not at all; do not let tests wait the full default.
_EMULATOR_TIMEOUT_S = 10.0
_S3_CONNECT_TIMEOUT_S = 5.0
_S3_ATTEMPTS = 3
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# GCS: 3-222 chars of lowercase letters, digits, '-', '_' and '.'; S3: 3-63, no '_'.
_BUCKET_RES = {
    "gs": (re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"), "3-222 lowercase characters"),
    "s3": (re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
           "3-63 lowercase letters, digits, '.' and '-'"),
}
_STORE_NAMES = {"gs": "GCS", "s3": "S3", "minio": "MinIO"}
_DETAIL_CHARS = 300
_NO_BUCKET_RE = re.compile(r"no_?such_?bucket|bucket '[^']*' not found|bucket does not exist",
                           re.IGNORECASE)


class StoreError(OSError):
    """A store could not be used (credentials, endpoint, bucket); the message says the fix."""


class Location(NamedTuple):
    """A remote URI split into its parts (bucket-relative ``key`` without slashes at the ends)."""

    scheme: str
    bucket: str
    key: str

    @property
    def prefix(self) -> str:
        """What goes before a pyarrow path (``bucket/key``) to make this URI's scheme."""
        return f"{self.scheme}://"


def locate(uri: str) -> Location | None:
    """Splits a remote URI; returns None for a local path (or ``file:`` URI).

    Raises:
        ValueError: not a string, an unsupported scheme or a malformed remote URI; the message
            names the URI and how to write it.
    """
    if not isinstance(uri, (str, os.PathLike)):
        raise ValueError(f"Expected a path or URI string, got {uri!r}.")
    uri = os.fspath(uri)
    match = _SCHEME_RE.match(uri)
    if match is None or match.group(1).lower() == "file":
        return None
    scheme = match.group(1).lower()
    if scheme not in REMOTE_SCHEMES:
        raise ValueError(
            f"{uri!r}: unsupported scheme '{scheme}:'. Use a local path or one of "
            f"{', '.join(s + '://bucket/path' for s in REMOTE_SCHEMES)}.")
    head = f"{scheme}://"
    if not uri.lower().startswith(head):
        raise ValueError(f"{uri!r}: malformed {_STORE_NAMES[scheme]} URI. Write it as "
                         f"{head}bucket/path (two slashes).")
    bucket, _, rest = uri[len(head):].partition("/")
    pattern, rule = _BUCKET_RES["gs" if scheme == "gs" else "s3"]
    if not pattern.match(bucket):
        raise ValueError(f"{uri!r}: bucket name {bucket!r} is not valid. Write {head}bucket/path "
                         f"with a bucket name of {rule}.")
    if rest.startswith("/") or "//" in rest:
        raise ValueError(f"{uri!r}: empty path component ('//'). Remove the extra slash.")
    return Location(scheme, bucket, rest.rstrip("/"))


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Returns the pyarrow filesystem for ``uri`` and the path to give it.

    Raises:
        ValueError: see :func:`locate`; or a ``minio://`` URI without an endpoint.
    """
    loc = locate(uri)
    if loc is None:
        path = os.fspath(uri)
        if path.startswith("file:"):
            path = "/" + path[len("file:"):].lstrip("/")
        return _local_filesystem(), os.path.abspath(os.path.expanduser(path))
    path = f"{loc.bucket}/{loc.key}" if loc.key else loc.bucket
    if loc.scheme == "gs":
        return _gcs_filesystem(os.environ.get("STORAGE_EMULATOR_HOST", ""), _timeout_s()), path
    endpoint = _s3_endpoint()
    if loc.scheme == "minio" and not endpoint:
        raise ValueError(
            f"{uri}: a minio:// URI needs the MinIO endpoint. Set AWS_ENDPOINT_URL (e.g. "
            "http://minio-service.kubeflow:9000) and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or (
        "us-east-1" if endpoint else "")
    keys = tuple(os.environ.get(k, "") for k in
                 ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
    return _s3_filesystem(endpoint, region, keys, _timeout_s()), path


def where(uri: str) -> str:
    """Says which endpoint ``uri`` is served from, for error messages."""
    loc = locate(uri)
    if loc is None:
        return "local disk"
    if loc.scheme == "gs":
        host = os.environ.get("STORAGE_EMULATOR_HOST")
        return f"the GCS emulator STORAGE_EMULATOR_HOST={host}" if host else "Google Cloud Storage"
    endpoint = _s3_endpoint()
    return f"the S3 endpoint {endpoint}" if endpoint else "AWS S3"


@contextlib.contextmanager
def store_errors(*uris: str) -> Iterator[None]:
    """Re-raises a store's raw ``OSError`` as :class:`StoreError` naming ``uris`` and the fix.

    Errors that already say what is wrong (``FileNotFoundError`` and the other ``OSError``
    subclasses, a ``StoreError`` from a nested call) pass unchanged.
    """
    try:
        yield
    except OSError as e:
        if type(e) is not OSError:
            raise
        remote = [u for u in uris if locate(u) is not None]
        if not remote:
            raise
        raise StoreError(_explain(remote, str(e))) from e


def _explain(uris: list[str], detail: str) -> str:
    uri = uris[0]
    scheme = locate(uri).scheme
    text = detail.replace("\n", " ")
    lowered = text.lower()
    if _NO_BUCKET_RE.search(text):
        problem = f"the bucket does not exist on {where(uri)}. Create it or fix the URI."
    elif any(s in lowered for s in ("access_denied", "accessdenied", "invalid_access_key",
                                    "signature", "unauthenticated", "permission_denied",
                                    "oauth2", "credential", "forbidden")):
        problem = (f"{where(uri)} refused the credentials (or found none). "
                   f"{_credential_hint(scheme)}")
    elif any(s in lowered for s in ("network", "connect", "resolve", "timeout", "unavailable",
                                    "too slow")):
        problem = (f"cannot reach {where(uri)} (each call is bounded by {TIMEOUT_ENV}="
                   f"{_timeout_s():g} s). Check the endpoint and the network. "
                   f"{_credential_hint(scheme)}")
    else:
        problem = f"{where(uri)} failed. {_credential_hint(scheme)}"
    unset = _missing_credentials(scheme)
    if unset:
        problem = f"no credentials are configured ({unset}); {problem}"
    if len(text) > _DETAIL_CHARS:
        text = text[:_DETAIL_CHARS] + "..."
    return f"{' -> '.join(uris)}: {problem} (store said: {text})"


def _credential_hint(scheme: str) -> str:
    if scheme == "gs":
        return ("Give GCS credentials with GOOGLE_APPLICATION_CREDENTIALS=<service-account key "
                "file> or `gcloud auth application-default login`, or point "
                "STORAGE_EMULATOR_HOST at an emulator.")
    return ("Give S3 access with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the endpoint of a "
            "MinIO or other S3-compatible store with AWS_ENDPOINT_URL, and AWS_REGION.")


def _missing_credentials(scheme: str) -> str:
    """Says which credential sources are all absent, '' when one is configured (or unknowable).

    Only sources that can be seen without network are checked; a cloud metadata server may
    still provide credentials, which is why this only adds to the message.
    """
    env = os.environ
    if scheme == "gs":
        gcloud = os.path.join(env.get("CLOUDSDK_CONFIG") or os.path.expanduser("~/.config/gcloud"),
                              "application_default_credentials.json")
        if env.get("STORAGE_EMULATOR_HOST") or env.get("GOOGLE_APPLICATION_CREDENTIALS") or (
                os.path.exists(gcloud)):
            return ""
        return "GOOGLE_APPLICATION_CREDENTIALS is unset and there is no gcloud login"
    names = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
             "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    files = [env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials"),
             env.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")]
    if any(env.get(n) for n in names) or any(os.path.exists(f) for f in files):
        return ""
    return "AWS_ACCESS_KEY_ID is unset and there is no ~/.aws profile"


def _timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return _DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds.")
    return value


def _s3_endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""


def _split_endpoint(url: str, default_scheme: str) -> tuple[str, str]:
    scheme, sep, hostport = url.partition("://")
    if not sep:
        scheme, hostport = default_scheme, url
    return scheme, hostport.rstrip("/")


@functools.lru_cache(maxsize=None)
def _local_filesystem() -> pafs.LocalFileSystem:
    return pafs.LocalFileSystem()


@functools.lru_cache(maxsize=None)
def _gcs_filesystem(emulator_host: str, timeout_s: float) -> pafs.GcsFileSystem:
    """Builds (once per setting) the GCS filesystem; '' means real GCS, default credentials."""
    if not emulator_host:
        return pafs.GcsFileSystem(retry_time_limit=datetime.timedelta(seconds=timeout_s))
    scheme, hostport = _split_endpoint(emulator_host, "http")
    return pafs.GcsFileSystem(
        anonymous=True, scheme=scheme, endpoint_override=hostport,
        retry_time_limit=datetime.timedelta(seconds=min(timeout_s, _EMULATOR_TIMEOUT_S)))


@functools.lru_cache(maxsize=None)
def _s3_filesystem(endpoint: str, region: str, keys: tuple[str, str, str],
                   timeout_s: float) -> pafs.S3FileSystem:
    """Builds (once per setting) the S3 filesystem.

    Args:
        endpoint: ``AWS_ENDPOINT_URL[_S3]``, '' for AWS itself.
        region: '' lets the AWS SDK decide.
        keys: access key id, secret, session token from the environment; without the first two
            the SDK's default chain (profiles, web identity, instance role) applies.
        timeout_s: the stall and retry bound.
    """
    options = {
        "region": region or None,
        "connect_timeout": min(_S3_CONNECT_TIMEOUT_S, timeout_s),
        "request_timeout": timeout_s,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=_S3_ATTEMPTS),
    }
    if endpoint:
        options["scheme"], options["endpoint_override"] = _split_endpoint(endpoint, "https")
    access_key, secret_key, token = keys
    if access_key and secret_key:
        options.update(access_key=access_key, secret_key=secret_key, session_token=token or None)
    return pafs.S3FileSystem(**options)
