"""Outputs over a cap fail their producer, naming the cap; a dependent whose needs' outputs
do not fit in its environment fails naming them. Real jobs, with and without xdist."""

from __future__ import annotations

import pytest

from pytest_cidag.core.outputs import MAX_FILE_BYTES, MAX_OUTPUTS, MAX_VARIABLE_BYTES
from tests.conftest import JobWriter

WORKERS = pytest.mark.parametrize("workers", ["0", "2"])
USE_A_FILE = "write big data to a file under $CIDAG_RUN_DIR and output its path"


def run(pytester: pytest.Pytester, workers: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-n", workers, "-p", "no:randomly", "-rs")


BLOB_ROOM = MAX_VARIABLE_BYTES - len("CIDAG_NEEDS_P_BLOB") - 2  # "=" and the NUL
OVER_A_CAP = {
    "size": (
        f'{{ printf a=; head -c {MAX_FILE_BYTES} /dev/zero | tr "\\0" x; echo; }} >> "$CIDAG_OUTPUT"',
        f"job 'p' failed: outputs file .cidag/runs/*/p.outputs is {MAX_FILE_BYTES + 3} bytes, over the cap "
        f"of {MAX_FILE_BYTES} (1 MiB, as GitHub Actions caps a job's outputs): {USE_A_FILE}",
    ),
    "count": (
        f'for i in $(seq {MAX_OUTPUTS + 1}); do echo "k$i=$i"; done >> "$CIDAG_OUTPUT"',
        f"job 'p' failed: outputs file .cidag/runs/*/p.outputs has {MAX_OUTPUTS + 1} outputs, over the "
        f"cap of {MAX_OUTPUTS} per job (each is an environment variable of every dependent): write them to a "
        "file under $CIDAG_RUN_DIR and output its path",
    ),
    # 200 000 bytes: over Linux's 128 KiB for one environment string, no dependent could start
    "value": (
        'echo ok=1 >> "$CIDAG_OUTPUT"; printf "blob=%0200000d\\n" 0 >> "$CIDAG_OUTPUT"',
        f"job 'p' failed: output 'blob' at .cidag/runs/*/p.outputs:2 is 200000 bytes, over the {BLOB_ROOM} "
        f"that CIDAG_NEEDS_P_BLOB can hold (Linux caps one environment variable at {MAX_VARIABLE_BYTES} "
        f"bytes, 128 KiB): {USE_A_FILE}",
    ),
}


@WORKERS
@pytest.mark.parametrize("cap", list(OVER_A_CAP))
def test_outputs_over_a_cap_fail_their_producer_naming_it(
    pytester: pytest.Pytester, job: JobWriter, workers: str, cap: str
) -> None:
    body, message = OVER_A_CAP[cap]
    job("p", body)
    job("use", "true", needs='["p"]')
    result = run(pytester, workers)
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines([message, "SKIPPED * upstream job 'p' failed"])
    assert "Argument list too long" not in result.stdout.str()


@WORKERS
def test_needs_outputs_too_big_together_fail_the_consumer_naming_them(
    pytester: pytest.Pytester, job: JobWriter, workers: str
) -> None:
    """Each producer is within the caps, but seven of them are more than Linux lets a
    process start with (at most 6 MiB of command line and environment, whatever the
    stack limit): the consumer fails naming the outputs and their sizes, not a bare E2BIG."""
    job(
        "big",
        'v=$(head -c 120000 /dev/zero | tr "\\0" x)\n'
        'for i in 1 2 3 4 5 6 7 8; do echo "v$i=$v"; done >> "$CIDAG_OUTPUT"',
        matrix='{ n = ["1", "2", "3", "4", "5", "6", "7"] }',
    )
    job("use", "true", needs='["big"]')
    result = run(pytester, workers)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        [
            "job 'use' failed: could not start: [[]Errno 7[]] Argument list too long: the outputs of what it needs "
            "take 6720000 bytes of its environment, 56 variables; the biggest: 'big[[]1[]]' (v1) 120000 bytes, "
            "'big[[]1[]]' (v2) 120000 bytes, 'big[[]1[]]' (v3) 120000 bytes, and 53 more: "
            "hand big data over in files under $CIDAG_RUN_DIR"
        ]
    )
