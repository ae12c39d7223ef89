#!/usr/bin/env bash
# test-python-3.14: 25s in buckaroo's CI, starts 10s late
# /// cidag
# needs = ["build-wheel"]
# timeout = 50
# inputs = ["cijobs/_lib.sh", "src/buckaroo/**/*.py", "suite/**/*.py"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# testcases = true
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
run_suite
work 25 10
echo "using ${CIDAG_NEEDS_BUILD_WHEEL_WHEEL:-no wheel output}"
