#!/usr/bin/env bash
# test-js: 2s in buckaroo's CI
# /// cidag
# timeout = 30
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 2 0
