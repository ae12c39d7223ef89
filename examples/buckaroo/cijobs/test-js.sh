#!/usr/bin/env bash
# test-js: 2s in buckaroo's CI
# /// cidag
# timeout = 30
# inputs = ["cijobs/_lib.sh", "src/js/"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 2 0
