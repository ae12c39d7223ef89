#!/usr/bin/env bash
# xdist's own remote workers: execnet socket servers, one in this network namespace and others
# in network namespaces of their own with a copy of the checkout at another path
# (tests/test_remote.py), which the test suite's default run leaves out (each run copies
# pytest to its workers). The namespace tests need root and iproute2 and skip without them.
# /// cidag
# timeout = 600
# markers = ["tests"]
# ///
set -euo pipefail
"$CIDAG_PYTHON" -m pytest -m remote tests/test_remote.py -p no:randomly -p no:cacheprovider -q -rs
