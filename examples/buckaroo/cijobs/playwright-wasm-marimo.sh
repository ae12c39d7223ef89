#!/usr/bin/env bash
# playwright-wasm-marimo: 35s in buckaroo's CI, starts 2s late
# /// cidag
# markers = ["playwright", "slow"]
# timeout = 70
# inputs = ["cijobs/_lib.sh"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 35 2
