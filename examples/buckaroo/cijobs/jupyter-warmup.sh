#!/usr/bin/env bash
# jupyter-warmup: 11s in buckaroo's CI
# /// cidag
# timeout = 30
# inputs = ["cijobs/_lib.sh"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 11 0
