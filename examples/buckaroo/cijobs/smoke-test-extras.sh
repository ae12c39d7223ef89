#!/usr/bin/env bash
# smoke-test-extras: 20s in buckaroo's CI, starts 2s late
# /// cidag
# needs = ["build-wheel"]
# timeout = 40
# inputs = ["cijobs/_lib.sh"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 20 2
echo "using ${CIDAG_NEEDS_BUILD_WHEEL_WHEEL:-no wheel output}"
