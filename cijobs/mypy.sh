#!/usr/bin/env bash
# Strict type checking of the package, its tests and the benchmark (settings in pyproject.toml).
# /// cidag
# timeout = 300
# markers = ["lint"]
# ///
set -euo pipefail
"$CIDAG_PYTHON" -m mypy
