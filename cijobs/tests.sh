#!/usr/bin/env bash
# The test suite on each Python this project supports, with the README's test command
# (a fresh virtualenv, an editable install with the dev extras, pytest -n 2).
# CIDAG_TESTCASES narrows it (a pytest -k expression). A Python that is not installed here
# skips its leg.
# /// cidag
# timeout = 1200
# markers = ["tests"]
# matrix = { python = ["3.11", "3.12", "3.13"] }
# testcases = true
# ///
set -euo pipefail
version="$CIDAG_MATRIX_PYTHON"
py="python$version"
if ! "$py" -c '' 2>/dev/null; then
  # not on PATH (or only a pyenv shim of a version that is not selected): pyenv's own copy
  py=""
  if command -v pyenv >/dev/null; then
    for candidate in "$(pyenv root)"/versions/"$version".*/bin/"python$version"; do
      [ -x "$candidate" ] && py="$candidate"
    done
  fi
  if [ -z "$py" ]; then
    echo "Python $version is not installed here"
    exit 77
  fi
fi
venv="$CIDAG_RUN_DIR/venv-$CIDAG_MATRIX_PYTHON"
# A machine that sets PYTHONDONTWRITEBYTECODE would compile pytest and every plugin again
# in each of the suite's hundreds of pytest processes (about twice as slow): keep bytecode.
unset PYTHONDONTWRITEBYTECODE
args=(-n 2 -p no:cacheprovider)
if [ -n "${CIDAG_TESTCASES:-}" ]; then
  args+=(-k "$CIDAG_TESTCASES")
fi
"$py" -m venv "$venv" && "$venv/bin/pip" install -q -e '.[dev]' && "$venv/bin/pytest" "${args[@]}"
