"""Shared fixtures: a GCS emulator, fresh buckets, and the shared data folder.

The emulator runs as a subprocess, not in-process: pyarrow's GCS client holds the GIL
while it waits for some responses (e.g. ``open_input_file``), which deadlocks against an
emulator thread in the same interpreter.
"""

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_emulator():
    """Starts gcp-storage-emulator on loopback; yields its http://host:port URL.

    Sets STORAGE_EMULATOR_HOST (read by google-cloud-storage, Beam's GcsIO and
    recdistill.data.filesystems) and points credential look-ups at an unused port so
    they fail fast instead of retrying for ~24 s.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
                pytest.fail(f"gcp-storage-emulator did not start on {url}")
            time.sleep(0.1)
    env = {
        "STORAGE_EMULATOR_HOST": url,
        "NO_GCE_CHECK": "True",
        "GCE_METADATA_HOST": f"127.0.0.1:{_free_port()}",
        "GOOGLE_CLOUD_PROJECT": "test",
    }
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
