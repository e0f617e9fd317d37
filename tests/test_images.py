"""The Dockerfiles install exactly the pinned stack on a replaceable base: the KFP step images
as a non-root user that any uid can stand in for; the Beam worker image is the runtime image
plus the SDK harness of the pinned Beam."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
STEP_IMAGES = [p for p in DOCKERFILES if p.parent.name in ("runtime", "trainer")]
PIN = re.compile(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([A-Za-z0-9_.+\-]+)")


def _constraints():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = PIN.fullmatch(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _base_default(dockerfile):
    """The default of ``ARG BASE_IMAGE``, which must be what ``FROM`` uses."""
    text = dockerfile.read_text()
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M), "the image must be FROM BASE_IMAGE"
    return re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1)


def test_there_are_runtime_trainer_and_beam_worker_images():
    assert [p.parent.name for p in DOCKERFILES] == ["beam", "runtime", "trainer"]


@pytest.mark.parametrize("dockerfile", STEP_IMAGES, ids=lambda p: p.parent.name)
def test_every_pip_install_uses_the_constraints_file(dockerfile):
    installs = re.findall(r"pip install[^\n\\&]*", dockerfile.read_text())
    assert installs
    for command in installs:
        assert "-c constraints.txt" in command, command


@pytest.mark.parametrize("dockerfile", STEP_IMAGES, ids=lambda p: p.parent.name)
def test_versions_pinned_in_a_dockerfile_agree_with_the_project(dockerfile):
    constraints = _constraints()
    setup_pip = re.search(r'"pip==([\d.]+)"', (ROOT / "dev/setup.sh").read_text()).group(1)
    pins = dict((name.lower(), version) for name, version in PIN.findall(dockerfile.read_text()))
    assert pins, "expected explicit pins"
    for name, version in pins.items():
        expected = setup_pip if name == "pip" else constraints[name]
        assert version == expected, f"{dockerfile}: {name}=={version}, constraints say {expected}"


@pytest.mark.parametrize("dockerfile", STEP_IMAGES, ids=lambda p: p.parent.name)
def test_step_images_default_to_python_3_11_slim(dockerfile):
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", _base_default(dockerfile))


def test_beam_worker_image_is_the_runtime_image_plus_the_harness_of_the_pinned_beam():
    from components.images import RUNTIME_IMAGE

    text = (ROOT / "images/beam/Dockerfile").read_text()
    assert _base_default(ROOT / "images/beam/Dockerfile") == RUNTIME_IMAGE
    sdk = re.search(r"^ARG BEAM_SDK_IMAGE=(\S+)$", text, re.M).group(1)
    assert sdk == f"apache/beam_python3.11_sdk:{_constraints()['apache-beam']}"
    assert re.search(r"^FROM \$\{BEAM_SDK_IMAGE\} AS harness$", text, re.M)
    assert "COPY --from=harness /opt/apache/beam /opt/apache/beam" in text
    assert re.search(r'^ENTRYPOINT \["/opt/apache/beam/boot"\]$', text, re.M)


@pytest.mark.parametrize("dockerfile", STEP_IMAGES, ids=lambda p: p.parent.name)
def test_step_images_run_as_a_non_root_user_with_writable_artifact_roots(dockerfile):
    text = dockerfile.read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    # KFP's launcher writes /gcs, /minio, /s3 (kubeflow/pipelines#5673); any uid with gid 0
    # (OpenShift, kfp.local's mapped host user) must write them and HOME.
    assert re.search(r"useradd [^\n]*--uid 1000 --gid 0", text)
    assert "mkdir -p /gcs /minio /s3" in text
    assert re.search(r"chown 1000:0 /gcs /minio /s3 (\$HOME|/home/recdistill)", text)
    assert re.search(r"chmod 0775 /gcs /minio /s3", text)
    assert re.search(r"^ENV .*HOME=/home/recdistill", text, re.M)


def test_container_check_builds_with_a_stand_in_base_and_runs_the_docker_runner():
    script = (ROOT / "dev/container_check.sh").read_text()
    assert "debootstrap --variant=minbase --include=python3,python3-venv" in script
    for dockerfile in ("images/runtime/Dockerfile", "images/trainer/Dockerfile"):
        assert dockerfile in script
    assert '--build-arg BASE_IMAGE="$BASE"' in script
    assert "local_run.docker_runner(" in script
