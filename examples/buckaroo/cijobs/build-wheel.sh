#!/usr/bin/env bash
# build-wheel: 8s in buckaroo's CI
# /// cidag
# needs = ["build-js"]
# timeout = 30
# inputs = ["cijobs/_lib.sh", "src/buckaroo/**/*.py"]
# outputs = ["dist/*.whl"]
# env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]
# ///
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
work 8 0
mkdir -p dist && cat dist/js/bundle.js src/buckaroo/*.py > dist/buckaroo-0.12.12-py3-none-any.whl
echo "wheel=dist/buckaroo-0.12.12-py3-none-any.whl" >> "$CIDAG_OUTPUT"
