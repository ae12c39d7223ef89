#!/usr/bin/env bash
# playwright-storybook: 10s in buckaroo's CI
# /// cidag
# needs = ["build-js"]
# markers = ["playwright"]
# timeout = 30
# inputs = ["cijobs/_lib.sh"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 10 0
