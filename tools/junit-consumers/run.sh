#!/usr/bin/env bash
# Runs the three consumers' own code on a JUnit file and prints what each annotates.
# Usage, in the git checkout the XML's paths are relative to (dorny asks git which files exist):
#   tools/junit-consumers/run.sh CONSUMERS JUNIT_XML
# CONSUMERS holds the checkouts publish-unit-test-result-action, test-reporter and
# action-junit-report, prepared as tools/junit-consumers/README.md says.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
consumers=$(cd "$1" && pwd)
xml=$2
python=${ENRICOMI_PYTHON:-python3}
echo "EnricoMi:             $("$python" "$here/enricomi.py" "$consumers/publish-unit-test-result-action" "$xml")"
# the actions log through @actions/core on stdout: keep the last line, the JSON
echo "mikepenz:             $(GITHUB_WORKSPACE=${GITHUB_WORKSPACE:-$PWD} "$consumers/action-junit-report/node_modules/.bin/tsx" "$here/mikepenz.mts" \
    "$consumers/action-junit-report" "$xml" | tail -n 1)"
echo "dorny (python-xunit): $("$consumers/test-reporter/node_modules/.bin/tsx" "$here/dorny.mts" \
    "$consumers/test-reporter" "$xml" python-xunit | tail -n 1)"
