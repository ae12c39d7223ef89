#!/usr/bin/env bash
# The test suite against the newest pre-releases of pytest, pytest-xdist and the plugins
# this project leans on (past pyproject.toml's upper bounds too), so a break in an upcoming
# release is seen here before users see it. pytest_cidag/internals.py lists what is most
# likely to break. Left out of the default run (addopts in pyproject.toml):
#   pytest cijobs -m prerelease
# /// cidag
# timeout = 1200
# markers = ["prerelease"]
# ///
set -euo pipefail
venv="$CIDAG_RUN_DIR/venv-prerelease"
# A machine that sets PYTHONDONTWRITEBYTECODE would compile pytest and every plugin again
# in each of the suite's hundreds of pytest processes (about twice as slow): keep bytecode.
unset PYTHONDONTWRITEBYTECODE
"$CIDAG_PYTHON" -m venv "$venv"
"$venv/bin/pip" install -q --pre -e '.[dev]'
"$venv/bin/pip" install -q --pre --upgrade pytest pytest-xdist pytest-timeout pytest-dependency execnet pluggy
"$venv/bin/pip" list 2>/dev/null | grep -iE '^(pytest|pytest-xdist|pytest-timeout|pytest-dependency|execnet|pluggy) '
"$venv/bin/pytest" -n 2 -p no:cacheprovider
