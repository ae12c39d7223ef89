#!/usr/bin/env bash
# Strict type checking of the package (settings in pyproject.toml).
# /// cidag
# timeout = 300
# markers = ["lint"]
# ///
set -euo pipefail
"$CIDAG_PYTHON" -m mypy
