#!/usr/bin/env bash
# build-wheel: 8s in buckaroo's CI
# /// cidag
# needs = ["build-js"]
# timeout = 30
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 8 0
echo "wheel=dist/buckaroo-0.12.12-py3-none-any.whl" >> "$CIDAG_OUTPUT"
