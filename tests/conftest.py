"""Shared fixtures: a GCS emulator, an S3 server, fresh buckets, and the shared data folder.

The servers run as subprocesses, not in-process: pyarrow's GCS client holds the GIL
while it waits for some responses (e.g. ``open_input_file``), which deadlocks against an
emulator thread in the same interpreter.
"""

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
_EMULATOR_START_TIMEOUT_S = 30


def pytest_collection_modifyitems(items):
    """Runs the files that hold slow tests first, each file's tests still together and in order.

    dev/test.sh hands whole files to two pytest-xdist workers in this order (with
    ``--no-loadscope-reorder``; xdist would otherwise start with the files holding the most
    tests, the quick ones). Long files first leaves the many quick files to even out the end,
    instead of one worker running a kfp.local file alone while the other idles.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _server(name: str, command: list, port: int, env: dict, server_env: dict | None = None):
    """Runs ``command`` (a server on 127.0.0.1:port) and sets ``env`` while it is up.

    ``server_env`` adds variables for the server process only.
    """
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(server_env or {})})
    deadline = time.monotonic() + _EMULATOR_START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except urllib.error.HTTPError:  # it answered, so it is up
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{name} did not start on {url}")
            time.sleep(0.1)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def gcs_emulator():
    """Starts gcp-storage-emulator on loopback; yields its http://host:port URL.

    Sets STORAGE_EMULATOR_HOST (read by google-cloud-storage, Beam's GcsIO and
    recdistill.data.filesystems) and points credential look-ups at an unused port so
    they fail fast instead of retrying for ~24 s.
    """
    port = _free_port()
    command = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
               "--port", str(port), "--in-memory"]
    env = {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
        "NO_GCE_CHECK": "True",
        "GCE_METADATA_HOST": f"127.0.0.1:{_free_port()}",
        "GOOGLE_CLOUD_PROJECT": "test",
    }
    with _server("gcp-storage-emulator", command, port, env) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server():
    """Starts moto's S3 server on loopback; yields its http://host:port URL.

    Sets the standard AWS variables (endpoint, region, keys) the way a Kubeflow pod gets
    them for its MinIO, and disables the EC2 metadata look-up so nothing leaves loopback.
    """
    port = _free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with _server("moto S3 server", command, port, env) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server_with_auth():
    """A second moto S3 server that checks credentials (it knows none, so it refuses all).

    Yields its URL without changing the environment: a test points AWS_ENDPOINT_URL at it.
    """
    port = _free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _server("moto S3 server with auth", command, port, {},
                 server_env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as url:
        yield url


@pytest.fixture(scope="session")
def new_s3_bucket(s3_server):
    """Makes a fresh, empty bucket on the S3 server and returns it as ``s3://<name>``; for
    module-scoped fixtures, which cannot use the per-test ``s3_bucket``."""
    import pyarrow.fs as pafs

    def make() -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                          scheme="http", endpoint_override=s3_server.split("://", 1)[1],
                          allow_bucket_creation=True).create_dir(name)
        return f"s3://{name}"

    return make


@pytest.fixture
def s3_bucket(new_s3_bucket):
    """A fresh, empty bucket on the S3 server, as ``s3://<name>``."""
    return new_s3_bucket()


@pytest.fixture
def gcs_bucket(gcs_emulator):
    """A fresh, empty bucket on the emulator, as ``gs://<name>``."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials())
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    return f"gs://{name}"


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """The team's shared folder (<repo root>/../shared)."""
    return SHARED_DIR


@pytest.fixture(scope="session")
def movielens_dir(shared_dir) -> pathlib.Path:
    """The MovieLens 100K folder; skips the test when it has not been downloaded."""
    path = shared_dir / "data" / "ml-100k"
    if not (path / "u.data").exists():
        pytest.skip(f"MovieLens 100K not found: {path / 'u.data'} is absent "
                    "(put the unzipped ml-100k folder under shared/data/).")
    return path
