#!/usr/bin/env bash
# Build docker/Dockerfile (the runner image) with buildah and run a job DAG in it as its
# non-root user, twice, with the cache volume kept warm: tests/test_docker.py, which the
# test suite's default run leaves out (it is slow). Skipped where no image builder is installed.
# /// cidag
# timeout = 900
# markers = ["package"]
# ///
set -euo pipefail
if ! command -v buildah >/dev/null; then
  echo "no buildah to build the image with (Debian: apt-get install podman)"
  exit 77
fi
"$CIDAG_PYTHON" -m pytest -m docker tests/test_docker.py -p no:randomly -p no:cacheprovider -q
