#!/usr/bin/env bash
# Lint and formatting, with the ruff configured in pyproject.toml.
# /// cidag
# timeout = 120
# markers = ["lint"]
# ///
set -euo pipefail
"$CIDAG_PYTHON" -m ruff check .
"$CIDAG_PYTHON" -m ruff format --check .
