#!/usr/bin/env bash
# playwright-jupyter: 37s in buckaroo's CI
# /// cidag
# needs = ["build-wheel", "jupyter-warmup"]
# markers = ["playwright", "slow"]
# timeout = 74
# inputs = ["cijobs/_lib.sh"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 37 0
echo "using ${CIDAG_NEEDS_BUILD_WHEEL_WHEEL:-no wheel output}"
