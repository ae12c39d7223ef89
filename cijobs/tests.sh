#!/usr/bin/env bash
# The test suite, on two xdist workers. CIDAG_TESTCASES narrows it (a pytest -k expression).
# /// cidag
# timeout = 900
# markers = ["tests"]
# ///
set -euo pipefail
args=(tests -q -n 2 -p no:cacheprovider)
if [ -n "${CIDAG_TESTCASES:-}" ]; then
  args+=(-k "$CIDAG_TESTCASES")
fi
"$CIDAG_PYTHON" -m pytest "${args[@]}"
