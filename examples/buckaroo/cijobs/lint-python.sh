#!/usr/bin/env bash
# lint-python: 5s in buckaroo's CI
# /// cidag
# timeout = 30
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 5 0
