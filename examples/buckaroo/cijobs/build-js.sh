#!/usr/bin/env bash
# build-js: 3s in buckaroo's CI
# /// cidag
# timeout = 30
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 3 0
