#!/usr/bin/env bash
# Do no harm, on real suites: pytest-dependency's and pytest-timeout's own test suites, run
# with this plugin installed and with -p no:cidag, must give the same outcomes. (Their
# suites have no jobs: the plugin must stay out of their way.) A fresh virtualenv without
# this project's dev tools (pytest-randomly there would reorder their inner runs).
# /// cidag
# timeout = 900
# markers = ["harm"]
# ///
set -euo pipefail
work="$CIDAG_RUN_DIR/real-suites"
rm -rf "$work" && mkdir -p "$work"
"$CIDAG_PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -e . pexpect
cd "$work"
"$work/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
  pytest-dependency==0.6.1 pytest-timeout==2.4.0
for archive in *.tar.gz; do tar xzf "$archive"; done
status=0
compare() {  # directory, then pytest's arguments
  local dir=$1; shift
  (cd "$dir" && "$work/venv/bin/python" -m pytest -q -rfE "$@" | tail -1 | sed 's/ in [0-9.]*s.*//') > with.txt || true
  (cd "$dir" && "$work/venv/bin/python" -m pytest -q -rfE -p no:cidag "$@" | tail -1 | sed 's/ in [0-9.]*s.*//') > without.txt || true
  echo "$dir $*: with the plugin: $(cat with.txt); without: $(cat without.txt)"
  cmp -s with.txt without.txt || status=1
}
compare pytest-dependency-0.6.1 tests
compare pytest-dependency-0.6.1 tests -n 2
compare pytest_timeout-2.4.0 test_pytest_timeout.py -n 2
exit $status
