#!/usr/bin/env bash
# build-js: 3s in buckaroo's CI
# /// cidag
# timeout = 30
# inputs = ["cijobs/_lib.sh", "src/js/"]
# outputs = ["dist/js/"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 3 0
mkdir -p dist/js && cat src/js/*.js > dist/js/bundle.js
