#!/usr/bin/env bash
# Build the wheel into the run directory and publish its path as an output.
# /// cidag
# timeout = 300
# markers = ["package"]
# ///
set -euo pipefail
out="$CIDAG_RUN_DIR/dist"
rm -rf "$out"
"$CIDAG_PYTHON" -m pip wheel --no-deps --quiet --wheel-dir "$out" .
wheel=$(ls "$out"/pytest_cidag-*.whl)
echo "built $wheel"
echo "wheel=$wheel" >> "$CIDAG_OUTPUT"
