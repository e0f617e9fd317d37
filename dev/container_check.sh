#!/usr/bin/env bash
# Builds both images, compiles the pipeline with them and runs the whole pipeline with
# kfp.local.DockerRunner on the bundled sample, ending with a pushed version. Prints each step's
# time and the total. One command, idempotent (a rerun reuses the base image and Docker's build
# cache); needs root on a Debian bookworm machine (it installs docker.io and debootstrap).
#
#   bash dev/container_check.sh [WORKDIR]      (default /tmp/recdistill-container-check)
#   PYTHON=.venv/bin/python                    a Python with the project, kfp and `docker`
#
# No container registry is reachable from the machines this was written for, so the images
# are built FROM a stand-in Python 3.11 base made from Debian's own packages (bookworm's python3
# is 3.11), given to the Dockerfiles as BASE_IMAGE. Not part of .ci/run: it takes long.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(realpath -m "${1:-/tmp/recdistill-container-check}")
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BASE=recdistill-base:py311-bookworm
RUNTIME=recdistill-runtime:check
TRAINER=recdistill-trainer:check
mkdir -p "$WORK"
cd "$ROOT"

declare -a REPORT=()
TOTAL_START=$(date +%s)
step() {  # step NAME COMMAND...: runs it and records its wall time
  local name=$1 start
  shift
  start=$(date +%s)
  echo "=== $name" >&2
  "$@"
  REPORT+=("$(printf '%-28s %5d s' "$name" $(($(date +%s) - start)))")
}

install_packages() {
  command -v dockerd >/dev/null && command -v debootstrap >/dev/null && return
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
}

DOCKERD_PID=
start_docker() {
  docker info >/dev/null 2>&1 && return
  # No bridge network on these machines: builds and containers use the host's network.
  dockerd --bridge=none --iptables=false >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
  echo "dockerd did not start within 60 s; see $WORK/dockerd.log" >&2
  return 1
}
stop_docker() { [ -z "$DOCKERD_PID" ] || { kill "$DOCKERD_PID"; wait "$DOCKERD_PID" || true; }; }
trap stop_docker EXIT

base_image() {
  docker image inspect "$BASE" >/dev/null 2>&1 && return
  local rootfs="$WORK/rootfs"
  rm -rf "$rootfs"  # a partial bootstrap from an interrupted run
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
    "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
  # pip inside the builds verifies the package index with the host's certificates.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$rootfs" -c . | docker import - "$BASE-raw" >/dev/null
  rm -rf "$rootfs"
  # `python`/`pip` on PATH under /usr/local, as in the official python image.
  printf 'FROM %s\nRUN python3 -m venv /usr/local\nENV PATH=%s LANG=C.UTF-8\n' "$BASE-raw" \
    /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin |
    docker build --network host -q -t "$BASE" - >/dev/null
}

default_image() {  # the image name the components are declared with (components/images.py)
  "$PYTHON" -c "from components import images; print(images.$1)"
}

build() {  # build DOCKERFILE TAG DEFAULT_TAG
  docker build --network host --build-arg BASE_IMAGE="$BASE" -f "$1" -t "$2" -t "$3" . \
    >"$WORK/build-$(basename "$(dirname "$1")").log"
  docker run --rm --network host "$2" python -c \
    "import recdistill, kfp, os; assert os.getuid() != 0, 'runs as root'"
}

compile_pipeline() {
  PYTHONPATH=$ROOT "$PYTHON" -m recdistill.cli compile --output "$WORK/kd_pipeline.yaml" \
    --image "$RUNTIME" --trainer-image "$TRAINER" >/dev/null
  grep -q "image: $RUNTIME" "$WORK/kd_pipeline.yaml"
  grep -q "image: $TRAINER" "$WORK/kd_pipeline.yaml"
}

run_pipeline() {
  rm -rf "$WORK/run"
  PYTHONPATH=$ROOT "$PYTHON" - "$WORK/run" <<'EOF'
import os
import sys

from pipelines import local_run

run = local_run.run_local(sys.argv[1], runner=local_run.docker_runner(network_mode="host"))
print(local_run.format_summary(run))
versions = [v for v in os.listdir(run.serving_dir) if v.isdigit()]
assert versions, f"nothing pushed to {run.serving_dir}"
EOF
}

step "install docker, debootstrap" install_packages
step "start dockerd" start_docker
step "base image (debootstrap)" base_image
step "build runtime image" build images/runtime/Dockerfile "$RUNTIME" "$(default_image RUNTIME_IMAGE)"
step "build trainer image" build images/trainer/Dockerfile "$TRAINER" "$(default_image TRAINER_IMAGE)"
step "compile pipeline" compile_pipeline
step "run pipeline (DockerRunner)" run_pipeline

echo
printf '%s\n' "${REPORT[@]}"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ':check ' || true
printf '%-28s %5d s\n' "total" $(($(date +%s) - TOTAL_START))
