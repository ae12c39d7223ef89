#!/usr/bin/env bash
# playwright-marimo: 42s in buckaroo's CI
# /// cidag
# needs = ["build-wheel"]
# markers = ["playwright", "slow"]
# timeout = 84
# inputs = ["cijobs/_lib.sh"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 42 0
echo "using ${CIDAG_NEEDS_BUILD_WHEEL_WHEEL:-no wheel output}"
