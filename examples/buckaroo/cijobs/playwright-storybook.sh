#!/usr/bin/env bash
# playwright-storybook: 10s in buckaroo's CI
# /// cidag
# needs = ["build-js"]
# markers = ["playwright"]
# timeout = 30
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 10 0
