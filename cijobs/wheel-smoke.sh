#!/usr/bin/env bash
# Install the built wheel into a fresh virtualenv and run a tiny job DAG with it:
# proves the package, its dependencies and its pytest11 entry point work outside this checkout.
# /// cidag
# needs = ["build-wheel"]
# timeout = 600
# markers = ["package"]
# ///
set -euo pipefail
wheel=$(ls "$CIDAG_RUN_DIR"/dist/pytest_cidag-*.whl)
venv="$CIDAG_RUN_DIR/smoke-venv"
rm -rf "$venv"
"$CIDAG_PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"

project=$(mktemp -d)
trap 'rm -rf "$project"' EXIT
mkdir -p "$project/cijobs"
cat > "$project/cijobs/build.sh" <<'JOB'
echo "artifact=ok" >> "$CIDAG_OUTPUT"
echo building
JOB
# (printf, because a block written with a here-document would be a second block of this file)
printf '%s\n' '# /// cidag' '# needs = ["build"]' '# matrix = { python = ["3.11", "3.12"] }' \
  '# timeout = 30' '# ///' 'echo "testing on $CIDAG_MATRIX_PYTHON"' > "$project/cijobs/test.sh"
cat > "$project/cijobs/skipped.sh" <<'JOB'
echo "nothing to do here"
exit 77
JOB
cd "$project"
"$venv/bin/python" -m pytest --collect-only -q
"$venv/bin/python" -m pytest -rA --junitxml=junit.xml -p no:cacheprovider | tee out.txt
grep -q "3 passed, 1 skipped" out.txt
grep -q 'tests="4"' junit.xml
# Without the [report] extra (plotly), the timeline report says how to get it: pytest
# before any job runs (a usage error), cidag-report with exit status 1.
status=0
"$venv/bin/python" -m pytest --cidag-report -p no:cacheprovider > report.txt 2>&1 || status=$?
cat report.txt
[ "$status" = 4 ]
grep -q "pip install 'pytest-cidag\[report\]'" report.txt
status=0
"$venv/bin/cidag-report" .cidag/runs/latest > report.txt 2>&1 || status=$?
cat report.txt
[ "$status" = 1 ]
grep -q "pip install 'pytest-cidag\[report\]'" report.txt
echo "the installed wheel ran a job DAG"
