#!/usr/bin/env bash
# test-python-3.11 and test-python-3.13: 25s in buckaroo's CI
# /// cidag
# matrix = { python = ["3.11", "3.13"] }
# timeout = 50
# inputs = ["cijobs/_lib.sh", "src/buckaroo/**/*.py", "suite/**/*.py"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# testcases = true
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
run_suite
work 25 0
