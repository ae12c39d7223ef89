# Sourced by the demo jobs (a leading "_" keeps it from being a job itself).
set -euo pipefail

# work SECONDS [DELAY]: pretend to work for SECONDS (scaled by CIDAG_DEMO_SCALE, default 1/16),
# after DELAY seconds (scaled too). Fails on purpose when DEMO_FAIL names this job.
work() {
  local scale="${CIDAG_DEMO_SCALE:-0.0625}"
  local delay
  delay=$(awk -v d="${2:-0}" -v s="$scale" 'BEGIN { printf "%.3f", d * s }')
  [ "$delay" != "0.000" ] && sleep "$delay"
  echo "$CIDAG_JOB: working for $(awk -v d="$1" -v s="$scale" 'BEGIN { printf "%.2f", d * s }')s"
  sleep "$(awk -v d="$1" -v s="$scale" 'BEGIN { printf "%.3f", d * s }')"
  local job="${CIDAG_JOB%%\[*}" # test-python[3.11] and its first pass test-python@first[3.11]: test-python
  job="${job%@first}"
  if [[ ",${DEMO_FAIL:-}," == *",$job,"* ]]; then
    echo "error: $CIDAG_JOB fails because DEMO_FAIL=$DEMO_FAIL asked it to" >&2
    exit 1
  fi
  echo "$CIDAG_JOB: done"
}

# run_suite: the real (tiny) test suite, narrowed by --cidag-testcases when given.
run_suite() {
  "$CIDAG_PYTHON" -m pytest suite/check_buckaroo.py -q -p no:cacheprovider -p no:randomly \
    ${CIDAG_TESTCASES:+-k "$CIDAG_TESTCASES"}
}
