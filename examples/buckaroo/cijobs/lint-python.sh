#!/usr/bin/env bash
# lint-python: 5s in buckaroo's CI
# /// cidag
# timeout = 30
# inputs = ["cijobs/_lib.sh", "src/buckaroo/**/*.py", "suite/**/*.py"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 5 0
