"""The Dockerfiles install exactly the pinned stack, as a non-root user."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
PIN = re.compile(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([A-Za-z0-9_.+\-]+)")


def _constraints():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = PIN.fullmatch(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_there_is_a_runtime_and_a_trainer_image():
    assert [p.parent.name for p in DOCKERFILES] == ["runtime", "trainer"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_pip_install_uses_the_constraints_file(dockerfile):
    installs = re.findall(r"pip install[^\n\\&]*", dockerfile.read_text())
    assert installs
    for command in installs:
        assert "-c constraints.txt" in command, command


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_versions_pinned_in_a_dockerfile_agree_with_the_project(dockerfile):
    constraints = _constraints()
    setup_pip = re.search(r'"pip==([\d.]+)"', (ROOT / "dev/setup.sh").read_text()).group(1)
    pins = dict((name.lower(), version) for name, version in PIN.findall(dockerfile.read_text()))
    assert pins, "expected explicit pins"
    for name, version in pins.items():
        expected = setup_pip if name == "pip" else constraints[name]
        assert version == expected, f"{dockerfile}: {name}=={version}, constraints say {expected}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_use_python_3_11_and_a_non_root_user(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
