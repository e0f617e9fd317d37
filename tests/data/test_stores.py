"""Failures of object stores: clear errors naming the URI and the fix, in seconds, never a hang.

Each test points the real client at a real server on loopback (moto's S3 server, the GCS
emulator), at a closed port, or at a socket that accepts and never answers.
"""

import socket
import threading
import time

import pytest

from recdistill.data import filesystems as fsys
from recdistill.data import stores

# Generous: the bound under test is 1-2 s per call (RECDISTILL_STORE_TIMEOUT_S), plus retries.
_FAST_S = 12


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in accepted:
        conn.close()


@pytest.fixture
def s3_env(monkeypatch):
    """Sets S3 variables for one test, with a 1 s bound; returns a setter for the endpoint."""
    monkeypatch.setenv(stores.TIMEOUT_ENV, "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return lambda url: monkeypatch.setenv("AWS_ENDPOINT_URL", url)


def _timed_failure(call, *args):
    start = time.monotonic()
    with pytest.raises(OSError) as err:
        call(*args)
    return err.value, time.monotonic() - start


_VERBS = {
    "exists": lambda u: fsys.exists(u),
    "listdir": lambda u: fsys.listdir(u),
    "open_input": lambda u: fsys.open_input(u),
    "open_output": lambda u: fsys.open_output(u).close(),
    "expand": lambda u: fsys.expand(u + "/*.csv"),
    "localize": lambda u: fsys.localize(u),
    "copy_tree": lambda u: fsys.copy_tree(u, u + "-copy"),
    "delete_tree": lambda u: fsys.delete_tree(u),
    "is_complete": lambda u: fsys.is_complete(u),
    "atomic_dir": lambda u: fsys.atomic_dir(u).__enter__(),
}


@pytest.mark.parametrize("scheme, verb", [("s3", v) for v in sorted(_VERBS)] + [
    ("minio", "open_input")])
def test_unreachable_s3_endpoint_fails_fast_and_says_so(verb, scheme, s3_env, closed_port):
    s3_env(f"http://127.0.0.1:{closed_port}")
    uri = f"{scheme}://bkt/data/part"
    error, elapsed = _timed_failure(_VERBS[verb], uri)
    assert isinstance(error, stores.StoreError)
    assert elapsed < _FAST_S
    message = str(error)
    assert message.startswith(uri)
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{closed_port}" in message
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_ENDPOINT_URL" in message


def test_hung_s3_endpoint_is_cut_by_the_bound(s3_env, silent_port):
    s3_env(f"http://127.0.0.1:{silent_port}")
    error, elapsed = _timed_failure(fsys.open_input, "s3://bkt/x.csv")
    assert isinstance(error, stores.StoreError) and "cannot reach" in str(error)
    assert elapsed < _FAST_S


@pytest.mark.parametrize("verb", ["exists", "expand", "localize"])
def test_unreachable_gcs_emulator_fails_fast_and_says_so(verb, monkeypatch, closed_port):
    monkeypatch.setenv(stores.TIMEOUT_ENV, "1")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed_port}")
    error, elapsed = _timed_failure(_VERBS[verb], "gs://bkt/data")
    assert isinstance(error, stores.StoreError)
    assert elapsed < _FAST_S
    assert str(error).startswith("gs://bkt/data")
    assert f"cannot reach the GCS emulator STORAGE_EMULATOR_HOST=http://127.0.0.1:{closed_port}" \
        in str(error)


def test_gcs_without_credentials_names_the_ways_to_give_them(monkeypatch, tmp_path, closed_port):
    """Off GCP with no key file and no gcloud login: today's 17-minute hang."""
    monkeypatch.setenv(stores.TIMEOUT_ENV, "1")
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{closed_port}")  # no metadata server
    error, elapsed = _timed_failure(fsys.localize, "gs://bkt/model")
    assert isinstance(error, stores.StoreError)
    assert elapsed < _FAST_S
    message = str(error)
    assert message.startswith("gs://bkt/model: no credentials are configured")
    for fix in ("GOOGLE_APPLICATION_CREDENTIALS=", "gcloud auth application-default login",
                "STORAGE_EMULATOR_HOST"):
        assert fix in message


@pytest.mark.parametrize("keys, expected", [
    (None, "no credentials are configured (AWS_ACCESS_KEY_ID is unset"),
    (("wrong", "wrong"), "refused the credentials"),
])
def test_s3_credentials_refused_or_missing(keys, expected, s3_env, s3_server_with_auth,
                                           monkeypatch, tmp_path):
    s3_env(s3_server_with_auth)
    monkeypatch.setenv("HOME", str(tmp_path))
    if keys is None:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[1])
    error, elapsed = _timed_failure(fsys.open_output, "minio://mlpipeline/v2/artifacts/x")
    assert isinstance(error, stores.StoreError)
    assert elapsed < _FAST_S
    assert str(error).startswith("minio://mlpipeline/v2/artifacts/x: ")
    assert expected in str(error)
    assert "AWS_SECRET_ACCESS_KEY" in str(error)


def test_missing_s3_bucket_is_named(s3_bucket):
    uri = s3_bucket + "-absent/out/part-0.csv"
    with pytest.raises(stores.StoreError, match="bucket does not exist on the S3 endpoint") as err:
        with fsys.open_output(uri) as f:
            f.write(b"x")
    assert str(err.value).startswith(uri)
    with pytest.raises(stores.StoreError, match="bucket does not exist"):
        fsys.makedirs(s3_bucket + "-absent/out")


def test_minio_needs_an_endpoint(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with pytest.raises(ValueError, match="minio://mlpipeline/x: .*Set AWS_ENDPOINT_URL"):
        fsys.exists("minio://mlpipeline/x")


def test_s3_specific_endpoint_variable_wins(s3_bucket, s3_server, monkeypatch, closed_port):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    fsys.makedirs(s3_bucket + "/ok")
    assert fsys.exists(s3_bucket)


@pytest.mark.parametrize("uri, message", [
    ("ftp://host/x", "unsupported scheme 'ftp:'. Use a local path or one of gs://bucket/path, "
                     "s3://bucket/path, minio://bucket/path"),
    ("s3:/bkt/x", "two slashes"),
    ("s3://Bad_Bucket/x", "bucket name 'Bad_Bucket' is not valid"),
    ("minio://ab/x", "bucket name 'ab' is not valid"),
    ("s3://bkt//x", "empty path component"),
])
def test_malformed_s3_uris(uri, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        fsys.exists(uri)


def test_bad_timeout_variable(monkeypatch):
    monkeypatch.setenv(stores.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="RECDISTILL_STORE_TIMEOUT_S='soon': expected a positive"):
        fsys.exists("gs://bkt/x")


def test_bucket_uri_and_is_remote():
    assert fsys.bucket_uri("s3://bkt/a/b") == "s3://bkt"
    assert fsys.bucket_uri("minio://mlpipeline/v2") == "minio://mlpipeline"
    assert fsys.bucket_uri("gs://bkt") == "gs://bkt"
    assert fsys.is_remote("minio://mlpipeline/v2") and fsys.is_remote("s3://bkt")
    assert fsys.join("s3://bkt/", "a/", "/b") == "s3://bkt/a/b"
    with pytest.raises(ValueError, match="local path has no bucket"):
        fsys.bucket_uri("/tmp/x")
