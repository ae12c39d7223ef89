#!/usr/bin/env bash
# test-mcp-wheel: 11s in buckaroo's CI
# /// cidag
# needs = ["build-wheel"]
# timeout = 30
# inputs = ["cijobs/_lib.sh"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 11 0
echo "using ${CIDAG_NEEDS_BUILD_WHEEL_WHEEL:-no wheel output}"
