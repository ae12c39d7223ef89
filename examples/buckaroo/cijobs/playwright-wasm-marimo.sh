#!/usr/bin/env bash
# playwright-wasm-marimo: 35s in buckaroo's CI, starts 2s late
# /// cidag
# markers = ["playwright", "slow"]
# timeout = 70
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 35 2
